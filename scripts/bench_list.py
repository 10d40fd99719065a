"""List latency of the Messages API at a million rows, over HTTP and from inside the process.

Run it from the repository root::

    uv run python scripts/bench_list.py                         # 1,000,000 rows
    uv run python scripts/bench_list.py --keep                  # reuse an already seeded database
    uv run python scripts/bench_list.py --rows 20000 --reps 5   # a quick check

It seeds its own database (or reuses it) and starts ``mycpaas serve`` (see ``api_bench.py``),
then measures list latency on the Twilio surface with one keep-alive client: the first page,
a deep page by ``Page`` (= OFFSET), a 200-page walk along ``next_page_uri``, deep keyset
pages, ``To`` and ``Status`` filters. It prints the Postgres plans (custom and generic) of
deep keyset queries and an in-process time split (database + ORM, rendering, JSON) of one
list call (see ``list_query.py``), then a table and, as its last line, one JSON object with
every figure.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx
import psycopg
from api_bench import (
    HTTP_TIMEOUT_S,
    Server,
    argument_parser,
    basic_auth,
    percentile,
    prepare,
    report,
    running,
    serving,
)
from list_query import plan_facts, plan_summary, profile
from psycopg import sql
from seeded_database import count_messages, to_numbers

TWILIO_LIST = "/2010-04-01/Accounts/{account}/Messages.json"


@dataclass
class Latency:
    """A latency distribution in milliseconds."""

    name: str
    samples_ms: list[float]
    note: str = ""

    def summary(self) -> dict[str, Any]:
        s = self.samples_ms
        return {
            "n": len(s),
            "median_ms": round(percentile(s, 50), 2),
            "p95_ms": round(percentile(s, 95), 2),
            "min_ms": round(min(s), 2),
            "max_ms": round(max(s), 2),
            "note": self.note,
        }


@dataclass
class Results:
    config: dict[str, Any]  # the run's, shared with the report: the deep pages' URIs go in
    listing: dict[str, dict[str, Any]] = field(default_factory=dict)
    breakdown_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    plans: dict[str, dict[str, str]] = field(default_factory=dict)


def bench_listing(
    server: Server, db_url: str, account: str, token: str, reps: int, walk_pages: int,
    results: Results,
) -> None:  # fmt: skip
    path = TWILIO_LIST.format(account=account)
    headers = {"Authorization": basic_auth(account, token)}
    total = count_messages(db_url, account)
    out = results.listing

    def record(item: Latency) -> None:
        out[item.name] = item.summary()
        s = out[item.name]
        print(
            f"  {item.name:<44} n={s['n']:<4} median={s['median_ms']:>8.2f} ms"
            f"  p95={s['p95_ms']:>8.2f} ms  {item.note}",
            flush=True,
        )

    with httpx.Client(base_url=server.url, headers=headers, timeout=HTTP_TIMEOUT_S) as client:
        print("list latency (Twilio surface, one keep-alive client):", flush=True)
        record(Latency("page0_ps50", repeat(client, f"{path}?PageSize=50", reps)))
        record(Latency("page0_ps1000", repeat(client, f"{path}?PageSize=1000", reps)))

        deep_page = min(10_000, max(1, total // 50 - 1))
        offset_reps = max(3, reps // 8)
        record(
            Latency(
                f"offset_page{deep_page}_ps50",
                repeat(client, f"{path}?PageSize=50&Page={deep_page}", offset_reps, warmup=1),
                note=f"Page=N is OFFSET {deep_page * 50:,}",
            )
        )

        # Follow next_page_uri from page 0, as a client paging through everything would.
        pages = min(walk_pages, max(1, total // 1000 - 1))
        lat, deep_uri, seen = walk(client, f"{path}?PageSize=1000", pages)
        note = f"{len(lat)} pages, {seen:,} rows"
        record(Latency("walk_ps1000_all_pages", lat, note=note))
        tail = lat[-50:]
        first_row = (len(lat) - len(tail)) * 1000
        record(Latency("walk_ps1000_last50_pages", tail, note=f"rows {first_row:,} to {seen:,}"))
        lat50, _, seen50 = walk(client, f"{path}?PageSize=50", walk_pages)
        record(Latency("walk_ps50_all_pages", lat50, note=f"{len(lat50)} pages, {seen50:,} rows"))
        if deep_uri is not None:
            depth = f"after row {seen:,} via next_page_uri"
            record(Latency("next_uri_deep_ps1000", repeat(client, deep_uri, reps), note=depth))
            deep50 = with_query(deep_uri, PageSize="50")
            record(Latency("next_uri_deep_ps50", repeat(client, deep50, reps), note=depth))

        # The same tokens next_page_uri would carry, at half and nearly all of the table.
        for label, depth_rows in (("mid", total // 2), ("end", total - 100)):
            edge = edge_at(db_url, account, depth_rows)
            uri = token_uri(account, edge, 50, depth_rows)
            note = f"token after row {depth_rows:,}"
            record(Latency(f"keyset_{label}_ps50", repeat(client, uri, reps), note=note))
        deep_uris = results.config.setdefault("deep_token_uris", {})
        deep_uris["none"] = token_uri(account, edge_at(db_url, account, total // 2), 50, total // 2)

        # Filters: To (about 1/1000 of the rows each) and Status.
        newest_to = client.get(f"{path}?PageSize=1").json()["messages"][0]["to"]
        to_path = f"{path}?{urlencode({'To': newest_to}, quote_via=quote, safe='')}"
        record(Latency("to_page0_ps50", repeat(client, f"{to_path}&PageSize=50", reps)))
        to_lat: list[float] = []
        to_rows = 0
        for number in to_numbers()[:3]:
            query = urlencode({"To": number, "PageSize": "50"}, quote_via=quote, safe="")
            lat_to, _, rows_to = walk(client, f"{path}?{query}", 10_000)
            to_lat += lat_to
            to_rows += rows_to
        record(Latency("to_walk_ps50_all_pages", to_lat, note=f"3 numbers, {to_rows:,} rows"))
        to_depth = max(1, count_where(db_url, account, "to", newest_to) - 10)
        edge = edge_at(db_url, account, to_depth, "to", newest_to)
        uri = token_uri(account, edge, 50, to_depth, To=newest_to)
        deep_uris[f"To={newest_to}"] = uri
        note = f"token after row {to_depth:,} of one To"
        record(Latency("to_keyset_end_ps50", repeat(client, uri, reps), note=note))

        for status in ("delivered", "failed"):
            status_path = f"{path}?Status={status}"
            first = repeat(client, f"{status_path}&PageSize=50", reps)
            record(Latency(f"status_{status}_page0_ps50", first))
            lat_s, _, seen_s = walk(client, f"{status_path}&PageSize=1000", walk_pages // 2)
            record(
                Latency(
                    f"status_{status}_walk_ps1000_last50",
                    lat_s[-50:],
                    note=f"{len(lat_s)} pages, {seen_s:,} rows",
                )
            )
            depth_rows = max(1, count_where(db_url, account, "status", status) - 100)
            edge = edge_at(db_url, account, depth_rows, "status", status)
            uri = token_uri(account, edge, 50, depth_rows, Status=status)
            deep_uris[f"Status={status}"] = uri
            record(
                Latency(
                    f"status_{status}_keyset_end_ps50",
                    repeat(client, uri, reps),
                    note=f"token after row {depth_rows:,} of {status}",
                )
            )


def timed_get(client: httpx.Client, uri: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.get(uri)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"GET {uri} answered {response.status_code}: {response.text[:300]}")
    return elapsed_ms, response


def repeat(client: httpx.Client, uri: str, times: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        timed_get(client, uri)
    return [timed_get(client, uri)[0] for _ in range(times)]


def walk(client: httpx.Client, uri: str, pages: int) -> tuple[list[float], str | None, int]:
    """Follow ``next_page_uri`` for up to ``pages`` pages: latencies, the next URI, rows seen."""
    latencies: list[float] = []
    seen = 0
    next_uri: str | None = uri
    while next_uri is not None and len(latencies) < pages:
        elapsed_ms, response = timed_get(client, next_uri)
        latencies.append(elapsed_ms)
        body = response.json()
        seen += len(body["messages"])
        next_uri = body["next_page_uri"]
    return latencies, next_uri, seen


def with_query(uri: str, **changes: str) -> str:
    """``uri`` with some query parameters replaced (order kept)."""
    parts = urlsplit(uri)
    pairs = [(k, changes.pop(k) if k in changes else v) for k, v in parse_qsl(parts.query)]
    pairs += list(changes.items())
    return urlunsplit(parts._replace(query=urlencode(pairs, quote_via=quote, safe="")))


def token_uri(
    account: str, edge: tuple[datetime, str], page_size: int, depth: int, **filters: str
) -> str:
    """The URI ``next_page_uri`` carries for the page after ``edge``."""
    from dispatcher.api.messages.listing import Token

    token = Token(True, edge[0], edge[1]).encode()
    pairs = [*filters.items(), ("PageSize", str(page_size)), ("Page", str(depth // page_size))]
    pairs.append(("PageToken", token))
    path = TWILIO_LIST.format(account=account)
    return f"{path}?{urlencode(pairs, quote_via=quote, safe='')}"


def edge_at(
    url: str, account: str, depth: int, column: str | None = None, value: str | None = None
) -> tuple[datetime, str]:
    """The (date_created, sid) of the row ``depth`` rows into the newest-first list."""
    where, params = _where(account, column, value)
    query = sql.SQL(
        "SELECT date_created, sid FROM messages WHERE {} "
        "ORDER BY date_created DESC, sid DESC OFFSET %s LIMIT 1"
    ).format(where)
    with psycopg.connect(url) as conn:
        row = conn.execute(query, [*params, max(0, depth - 1)]).fetchone()
    if row is None:
        raise RuntimeError(f"no row at depth {depth} ({column}={value})")
    return row[0], row[1]


def count_where(url: str, account: str, column: str, value: str) -> int:
    where, params = _where(account, column, value)
    with psycopg.connect(url) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM messages WHERE {}").format(where), params)
        return int(row.fetchone()[0])  # type: ignore[index]


def _where(account: str, column: str | None, value: str | None) -> tuple[sql.Composed, list[Any]]:
    if column is None:
        return sql.SQL("account_sid = %s").format(), [account]
    return sql.SQL("account_sid = %s AND {} = %s").format(sql.Identifier(column)), [account, value]


def print_listing(results: Results) -> None:
    """The report's table: every list scenario, the in-process splits, the plans' key lines."""
    print(f"\n{'list scenario':<44} {'n':>4} {'median ms':>10} {'p95 ms':>9} {'max ms':>9}  note")
    for name, s in results.listing.items():
        print(
            f"{name:<44} {s['n']:>4} {s['median_ms']:>10.2f} {s['p95_ms']:>9.2f}"
            f" {s['max_ms']:>9.2f}  {s['note']}"
        )
    for name, steps in results.breakdown_ms.items():
        print(f"in-process breakdown {name} (median ms): {steps}")
    for name, plans in results.plans.items():
        for mode in ("custom_plan", "generic_plan"):
            print(f"\nplan of a deep keyset page, filter {name} ({mode}):")
            print(f"    {plan_summary(plans[mode])}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argument_parser(__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument("--reps", type=int, default=40, help="repetitions per list scenario")
    parser.add_argument("--walk-pages", type=int, default=200, help="pages to follow")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bench = prepare(args, {"workers": args.workers})
    results = Results(bench.config)
    with running(bench), serving(bench.env, args.workers) as server:
        bench_listing(
            server, bench.db_url, bench.account, bench.token, args.reps, args.walk_pages, results
        )
        results.plans, results.breakdown_ms = profile(
            bench.db_url, bench.account, results.config["deep_token_uris"]
        )
    plans = {
        name: {mode: plan_facts(text) for mode, text in plans.items() if mode.endswith("_plan")}
        for name, plans in results.plans.items()
    }
    report(
        bench,
        lambda: print_listing(results),
        listing=results.listing,
        breakdown_ms=results.breakdown_ms,
        plans=plans,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
