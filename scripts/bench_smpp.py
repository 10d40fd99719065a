"""Segments per second through one SMPP bind, driver and simulated SMSC alone (no database).

    uv run python scripts/bench_smpp.py [-n 4000] [--latency-ms 20] [--window 10] [--threads 4]

Starts ``mycpaas carrier-sim --smpp-port`` answering every ``submit_sm`` after ``--latency-ms``,
opens one SMPP session as a carrier worker does, and submits ``-n`` single-part segments in
batches of 100 from ``--threads`` threads (a carrier worker's task threads) until every one is
answered. The window allows ``window / latency`` segments per second; what is missing from that
is the cost of the driver and the SMSC on this machine. Prints a line and one JSON line.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from scratch import free_port, wait_http

from workers.carriers.base import Accepted, Submission
from workers.carriers.smpp.bind import BindConfig
from workers.carriers.smpp.driver import SmppCarrierDriver, SmppConfig

BATCH = 100  # segments per hand-off, as the carrier stage claims them


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", "--count", type=int, default=4000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    http_port, smpp_port = free_port(), free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "carrier-sim", "--port", str(http_port),
         "--smpp-port", str(smpp_port), "--latency-ms", str(args.latency_ms)],
        env={**os.environ, "MYCPAAS_LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    receipts: list[dict[str, Any]] = []
    try:
        wait_http(f"http://127.0.0.1:{http_port}/healthz")
        bind = BindConfig("127.0.0.1", smpp_port, "bench", "bench", window=args.window)
        driver = SmppCarrierDriver(SmppConfig(bind=bind), receipts.extend)
        while not driver.sender.bound:
            time.sleep(0.05)
        batches = [
            [Submission(f"SM{start:08d}{i:04d}-1", f"+1202{start + i:07d}", "+4915112345678",
                        "bench message", 1, 1, 0) for i in range(min(BATCH, args.count - start))]
            for start in range(0, args.count, BATCH)
        ]  # fmt: skip
        started = time.monotonic()
        with ThreadPoolExecutor(args.threads) as pool:
            results = [r for batch in pool.map(driver.submit, batches) for r in batch]
        took_s = time.monotonic() - started
        driver.close()
    finally:
        sim.terminate()
        sim.wait(10)
    accepted = sum(isinstance(result, Accepted) for result in results)
    ceiling = args.window / (args.latency_ms / 1000)
    report = {"segments": args.count, "accepted": accepted, "seconds": round(took_s, 2),
              "segments_per_s": round(accepted / took_s, 1), "window": args.window,
              "latency_ms": args.latency_ms, "ceiling_per_s": round(ceiling, 1),
              "receipts": len(receipts), "load_average": os.getloadavg()[0]}  # fmt: skip
    print(f"{accepted} segments in {took_s:.2f} s = {report['segments_per_s']}/s through one bind "
          f"(window {args.window}, {args.latency_ms:g} ms: at most {ceiling:.0f}/s)")  # fmt: skip
    print(json.dumps(report))


if __name__ == "__main__":
    main()
