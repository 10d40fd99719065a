"""Peak memory of media fetching: ten 5 MB files at once, against a local server.

    uv run python scripts/measure_media_memory.py

Fetches ten URLs of 5 MB each in parallel, as one message (the 5 MB budget stops it: 11751)
and as ten messages on ten threads (each within its own budget), and prints the process's
peak RSS growth. Traffic stays on loopback.
"""

import os
import resource
import threading
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("MYCPAAS_OUTBOUND_ALLOW_CIDRS", "127.0.0.0/8")

from tests.media_server import FILES, JPEG, running_media_server  # noqa: E402
from workers.outbound.fetch import FetchError  # noqa: E402
from workers.stages.media import Fetcher  # noqa: E402

FILES["/five"] = (JPEG[:4] + b"\x00" * (5 * 1024 * 1024 - 4), "image/jpeg")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    with running_media_server() as server:
        fetcher = Fetcher()
        base = peak_mb()
        try:
            fetcher.fetch_all([server.url("/five")] * 10)
        except FetchError as exc:
            print(f"one message, ten 5 MB files: refused with {exc.code}")
        one = peak_mb()
        results: list[int] = []
        lock = threading.Lock()

        def one_message(_: int) -> None:
            fetched = fetcher.fetch_all([server.url("/five")])
            with lock:
                results.append(len(fetched[0].content))
            del fetched

        with ThreadPoolExecutor(10) as pool:
            list(pool.map(one_message, range(10)))
        ten = peak_mb()
        fetcher.close()
    print(f"peak RSS: start {base:.0f} MB, after one message {one:.0f} MB, "
          f"after ten 5 MB messages in parallel {ten:.0f} MB ({len(results)} fetched)")  # fmt: skip


if __name__ == "__main__":
    main()
