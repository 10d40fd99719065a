"""Create throughput of the Messages API: server workers x client concurrency, CPU per request.

Run it from the repository root::

    uv run python scripts/bench_creates.py                  # 5,000 creates, 1,000,000 rows
    uv run python scripts/bench_creates.py --keep --concurrency 16,32,64 --workers 2,3  # sweep
    uv run python scripts/bench_creates.py --rows 20000 --creates 500   # a quick check

It seeds its own database (or reuses it): the creates go into a table of ``--rows`` messages.
For each worker count it starts ``mycpaas serve`` (see ``api_bench.py``) and measures create
throughput (``POST /v1/.../Messages``, form-encoded) at each concurrency, with the CPU each
party used per request, the database connections the server opened, and ``GET /healthz`` at
the first concurrency as the HTTP stack's floor. Then it prints a table and, as its last
line, one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import re
import resource
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
from api_bench import (
    HTTP_TIMEOUT_S,
    Bench,
    Server,
    argument_parser,
    basic_auth,
    int_list,
    percentile,
    prepare,
    report,
    running,
    serving,
)
from seeded_database import to_numbers

from dispatcher.bench import cputime

V1_CREATE = "/v1/Accounts/{account}/Messages"


@dataclass
class CreateRun:
    kind: str  # "create", or "healthz": the HTTP stack's floor, GET /healthz, no database
    workers: int
    concurrency: int
    total: int
    elapsed_s: float
    req_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    bad: int  # answers other than 201 (create) or 200 (healthz), transport errors included
    bad_statuses: dict[str, int]
    client_cpu_ms_per_req: float
    server_cpu_ms_per_req: float
    postgres_cpu_ms_per_req: float
    db_connections_opened: int
    machine_busy_pct: float
    unattributed_busy_pct: float


@dataclass
class Results:
    creates: list[CreateRun] = field(default_factory=list)
    floor: list[CreateRun] = field(default_factory=list)


Send = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


async def _fire(
    clients: Sequence[httpx.AsyncClient], total: int, send: Send, expect: int,
    latencies: list[float], statuses: Counter[int], errors: list[str],
) -> float:  # fmt: skip
    """``total`` requests spread over the clients, each with one keep-alive connection."""
    counter = itertools.count()

    async def one_client(client: httpx.AsyncClient) -> None:
        while (n := next(counter)) < total:
            started = time.perf_counter()
            try:
                response = await send(client, n)
            except httpx.HTTPError as exc:
                statuses[0] += 1
                errors.append(repr(exc))
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[response.status_code] += 1
            if response.status_code != expect and len(errors) < 5:
                errors.append(f"{response.status_code}: {response.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(one_client(client) for client in clients))
    return time.perf_counter() - started


async def _create_phase(
    server: Server, account: str, token: str, sender: str, total: int, concurrency: int,
    warmup: int, db_url: str, kind: str,
) -> CreateRun:  # fmt: skip
    path = V1_CREATE.format(account=account)
    numbers = to_numbers()

    async def create(client: httpx.AsyncClient, n: int) -> httpx.Response:
        data = {"To": numbers[n % len(numbers)], "From": sender, "Body": f"Bench create {n}"}
        return await client.post(path, data=data)

    async def healthz(client: httpx.AsyncClient, _n: int) -> httpx.Response:
        return await client.get("/healthz")

    send, expect = (create, 201) if kind == "create" else (healthz, 200)
    db_name = urlsplit(db_url).path.lstrip("/")
    # One client per simulated caller: httpx's pool scans every connection on each request,
    # so one pool of 64 connections costs the (shared, 2-core) machine more than the server.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    headers = {"Authorization": basic_auth(account, token)}
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=server.url, headers=headers, limits=limits, timeout=HTTP_TIMEOUT_S
                )
            )
            for _ in range(concurrency)
        ]
        await _fire(clients, warmup, send, expect, [], Counter(), [])
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        errors: list[str] = []
        await asyncio.sleep(1.5)  # let the warm-up's statistics reach pg_stat_database
        sessions0 = pg_sessions(db_url)
        server_pids = server.pids()
        pg0 = {pid: proc_cpu_s([pid]) for pid in postgres_backends(db_name)}
        cpu0 = (resource.getrusage(resource.RUSAGE_SELF), proc_cpu_s(server_pids))
        busy0, all0 = machine_cpu()
        elapsed = await _fire(clients, total, send, expect, latencies, statuses, errors)
        busy1, all1 = machine_cpu()
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        server_cpu = proc_cpu_s(server_pids) - cpu0[1]
        pg_cpu = backends_cpu_s(pg0, db_name)
        await asyncio.sleep(1.5)
        opened = pg_sessions(db_url) - sessions0 - 1  # minus the one that asked
    client_cpu = (usage1.ru_utime + usage1.ru_stime) - (cpu0[0].ru_utime + cpu0[0].ru_stime)
    busy_s = (busy1 - busy0) / cputime.TICKS_PER_S
    cores = os.cpu_count() or 1
    bad = sum(n for code, n in statuses.items() if code != expect)
    for line in errors[:5]:
        print(f"    unexpected answer: {line}", flush=True)
    per = 1000 / max(total, 1)
    return CreateRun(
        kind=kind,
        workers=server.workers,
        concurrency=concurrency,
        total=total,
        elapsed_s=round(elapsed, 2),
        req_per_s=round(total / elapsed, 1),
        p50_ms=round(percentile(latencies, 50), 2) if latencies else float("nan"),
        p95_ms=round(percentile(latencies, 95), 2) if latencies else float("nan"),
        p99_ms=round(percentile(latencies, 99), 2) if latencies else float("nan"),
        bad=bad,
        bad_statuses={str(k): v for k, v in statuses.items() if k != expect},
        client_cpu_ms_per_req=round(client_cpu * per, 3),
        server_cpu_ms_per_req=round(server_cpu * per, 3),
        postgres_cpu_ms_per_req=round(pg_cpu * per, 3),
        db_connections_opened=opened,
        machine_busy_pct=round(100 * (busy1 - busy0) / max(all1 - all0, 1), 1),
        unattributed_busy_pct=round(
            100 * max(0.0, busy_s - client_cpu - server_cpu - pg_cpu) / (elapsed * cores), 1
        ),
    )


def bench_creates(
    server: Server, account: str, token: str, sender: str, total: int, concurrency: int,
    db_url: str, kind: str = "create",
) -> CreateRun:  # fmt: skip
    warmup = max(200, concurrency * 5)
    run = asyncio.run(
        _create_phase(server, account, token, sender, total, concurrency, warmup, db_url, kind)
    )
    print(
        f"  {run.kind:<7} workers={run.workers} concurrency={run.concurrency:<3}"
        f" {run.req_per_s:>8.1f}/s"
        f"  p50={run.p50_ms:.1f} p95={run.p95_ms:.1f} p99={run.p99_ms:.1f} ms"
        f"  unexpected={run.bad}  cpu ms/req: client {run.client_cpu_ms_per_req:.2f}"
        f" server {run.server_cpu_ms_per_req:.2f} pg {run.postgres_cpu_ms_per_req:.2f}"
        f"  db connects {run.db_connections_opened}"
        f"  machine busy {run.machine_busy_pct:.0f}% (other {run.unattributed_busy_pct:.0f}%)",
        flush=True,
    )
    return run


def proc_cpu_s(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        stat = cputime.read_stat(pid)
        if stat is not None:
            total += cputime.cpu_s(stat[1])
    return total


def postgres_backends(dbname: str) -> list[int]:
    """Backends serving ``dbname`` on this machine, by their process title."""
    pattern = re.compile(rf"^postgres: (\S+: )?\S+ {re.escape(dbname)} ")  # Debian: "15/main: "
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if pattern.match(title):
                found.append(int(entry.name))
    return found


def pg_sessions(db_url: str) -> int:
    """Connections ever opened to the bench database (pg_stat_database, flushed ~1 s late)."""
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def backends_cpu_s(before: dict[int, float], dbname: str) -> float:
    """CPU the bench database's backends used since ``before`` (pid -> seconds).

    Backends that exited meanwhile are lost, so with connection churn this is a lower bound.
    """
    total = 0.0
    for pid in postgres_backends(dbname):
        total += proc_cpu_s([pid]) - before.get(pid, 0.0)
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


def sweep(server: Server, bench: Bench, args: argparse.Namespace, results: Results) -> None:
    """Creates at each concurrency, then the HTTP floor at the first one, on one server."""
    print(f"creates ({args.creates:,} per run, rate limiter off):", flush=True)
    for concurrency in args.concurrency:
        results.creates.append(
            bench_creates(
                server, bench.account, bench.token, bench.sender, args.creates, concurrency,
                bench.db_url,
            )
        )  # fmt: skip
    print("  HTTP floor for comparison (GET /healthz, no database):", flush=True)
    floor = bench_creates(
        server, bench.account, bench.token, bench.sender, args.creates, args.concurrency[0],
        bench.db_url, kind="healthz",
    )  # fmt: skip
    results.floor.append(floor)


def print_runs(results: Results) -> None:
    """The report's table: one line a run, the floor last, then the best run."""
    print(
        f"\n{'kind':<8} {'workers':>7} {'conc':>5} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8}"
        f" {'p99 ms':>8} {'bad':>5} {'cli cpu':>8} {'srv cpu':>8} {'pg cpu':>7}"
        f" {'db conn':>7} {'busy%':>6} {'other%':>6}"
    )
    for r in [*results.creates, *results.floor]:
        print(
            f"{r.kind:<8} {r.workers:>7} {r.concurrency:>5} {r.req_per_s:>9.1f}"
            f" {r.p50_ms:>8.1f} {r.p95_ms:>8.1f} {r.p99_ms:>8.1f} {r.bad:>5}"
            f" {r.client_cpu_ms_per_req:>8.2f} {r.server_cpu_ms_per_req:>8.2f}"
            f" {r.postgres_cpu_ms_per_req:>7.2f} {r.db_connections_opened:>7}"
            f" {r.machine_busy_pct:>6.0f} {r.unattributed_busy_pct:>6.0f}"
        )
    best = max(results.creates, key=lambda r: r.req_per_s)
    print(
        f"best: {best.req_per_s:.1f} creates/s at workers={best.workers},"
        f" concurrency={best.concurrency}. cpu columns: ms of CPU per request (pg: lower"
        " bound); db conn: connections opened during the run; other%: machine CPU used by"
        " processes outside the bench"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argument_parser(__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--creates", type=int, default=5000, help="measured creates per config")
    parser.add_argument(
        "--concurrency", type=int_list, default=[32], help="clients, e.g. 32 or 16,32,64"
    )
    parser.add_argument(
        "--workers", type=int_list, default=[2], help="server processes, e.g. 2 or 2,3"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    own = {"creates": args.creates, "concurrency": args.concurrency, "workers": args.workers}
    bench = prepare(args, own)
    results = Results()
    with running(bench):
        for workers in args.workers:
            with serving(bench.env, workers) as server:
                sweep(server, bench, args, results)
    best = max(results.creates, key=lambda r: r.req_per_s) if results.creates else None
    report(
        bench,
        lambda: print_runs(results),
        creates=[asdict(r) for r in results.creates],
        best_create=asdict(best) if best else None,
        http_floor=[asdict(r) for r in results.floor],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
