"""Starting Celery workers and beat with the pool that fits each queue."""

import os
from pathlib import Path

from workers.app import QUEUES, app

# Threads for queues that wait on the network or the database; a stage drains in batches, so
# a few threads per process keep it busy. Scale a queue with more processes, not more threads.
DEFAULT_POOL = {
    "segment": ("threads", 2),
    "media": ("threads", 2),  # each message's URLs are fetched on the stage's own 10 threads
    "carrier": ("threads", 4),
    "callbacks": ("threads", 2),  # deliveries run on the stage's own pool of 64 threads
    "maintenance": ("threads", 2),
}


def run_worker(
    queues: list[str],
    pool: str | None,
    concurrency: int | None,
    loglevel: str,
    hostname: str | None,
) -> None:
    unknown = [queue for queue in queues if queue not in QUEUES]
    if unknown:
        raise ValueError(f"unknown queue(s) {unknown}; the queues are {', '.join(QUEUES)}")
    default_pool, default_concurrency = DEFAULT_POOL[queues[0]]
    argv = [
        "worker",
        "--queues", ",".join(queues),
        "--pool", pool or default_pool,
        "--concurrency", str(concurrency or default_concurrency),
        "--loglevel", loglevel,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    argv += ["--hostname", hostname or f"{'-'.join(queues)}-{os.getpid()}@%h"]
    app.worker_main(argv)


def run_beat(schedule_file: Path, loglevel: str) -> None:
    app.start(["beat", "--schedule", str(schedule_file), "--loglevel", loglevel])
