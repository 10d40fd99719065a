"""CPU time spent by the platform's processes, read from ``/proc`` (Linux), for ``mycpaas bench``.

Each spawned part runs in a session of its own (``start_new_session``), so a part's CPU is the
sum over every process of that session: a server's worker processes, a worker's pool children.
Postgres and Redis are counted by program name, whoever started them. A process that exits
between two snapshots takes its CPU with it: snapshots are taken while the parts still run.
"""

import os
from collections import defaultdict
from pathlib import Path

PROC = Path("/proc")
SHARED = ("postgres", "redis-server")  # servers the platform shares with others on the machine
TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def available() -> bool:
    return (PROC / "self" / "stat").exists()


def snapshot(sessions: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) so far per part: each session id's processes, by the
    part's name, plus the shared servers by program name."""
    by_session = {sid: name for name, sid in sessions.items()}
    totals: dict[str, float] = defaultdict(float)
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone since the listing
            continue
        program = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        session, cpu = int(fields[3]), (int(fields[11]) + int(fields[12])) / TICKS_PER_S
        if session in by_session:
            totals[by_session[session]] += cpu
        elif program in SHARED:
            totals[program] += cpu
    return dict(totals)


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per part between two snapshots."""
    return {name: round(after[name] - before.get(name, 0.0), 3) for name in after}
