"""CPU time spent by the platform's processes, read from ``/proc`` (Linux), for ``mycpaas bench``.

Each spawned part runs in a session of its own (``start_new_session``), so a part's CPU is the
sum over every process of that session: a server's worker processes, a worker's pool children.
Postgres and Redis are counted by program name, whoever started them. CPU is summed per process
between two snapshots, so a process that exits in between (a Postgres backend whose connection
closed) takes only its last moments with it, never a negative share.
"""

import json
import os
import time
from collections import defaultdict
from pathlib import Path

PROC = Path("/proc")
SHARED = ("postgres", "redis-server")  # servers the platform shares with others on the machine
TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def available() -> bool:
    return (PROC / "self" / "stat").exists()


Snapshot = dict[tuple[str, int], float]  # (part, pid) → CPU seconds so far


def snapshot(sessions: dict[str, int]) -> Snapshot:
    """CPU seconds (user + system) so far of every process of each part: a session id's
    processes, by the part's name, and the shared servers by program name."""
    by_session = {sid: name for name, sid in sessions.items()}
    seen: Snapshot = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        stat = read_stat(entry.name)
        if stat is None:  # gone since the listing
            continue
        program, fields = stat
        part = by_session.get(int(fields[3])) or (program if program in SHARED else None)
        if part is not None:
            seen[(part, int(entry.name))] = cpu_s(fields)
    return seen


def read_stat(pid: int | str) -> tuple[str, list[str]] | None:
    """A process's program name and its ``stat`` fields from ``state`` (field 3) on, so that
    ``fields[1]`` is the parent, ``fields[3]`` the session; None once the process is gone.

    The program name may hold spaces and parentheses, hence the split at the last ``)``.
    """
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()


def cpu_s(fields: list[str]) -> float:
    """CPU seconds (user + system) a process used so far, from its :func:`read_stat` fields."""
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def spent(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds per part between two snapshots."""
    totals: dict[str, float] = defaultdict(float)
    for (part, pid), cpu in after.items():
        totals[part] += cpu - before.get((part, pid), 0.0)
    return {part: round(seconds, 3) for part, seconds in totals.items()}


def reference_ms(rounds: int = 3) -> float:
    """CPU milliseconds of a fixed piece of Python (the best of ``rounds``): how fast the
    machine is right now. A shared virtual machine's speed drifts by a third or more from one
    hour to the next; CPU per message is comparable between runs of similar reference times."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        rows = [(f"SM{n:032x}", n, "x" * (n % 64)) for n in range(20_000)]
        json.loads(json.dumps(rows))
        sorted(rows, key=lambda row: row[0][::-1])
        best = min(best, time.process_time() - started)
    return round(best * 1000, 1)
