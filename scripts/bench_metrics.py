"""What a /metrics scrape and ``mycpaas queues`` cost on a big record.

    uv run python scripts/bench_metrics.py [-n 1000000] [--scrapes 20]

Creates its own database with N messages (mostly delivered, some failed, a backlog in each
stage and some under lease), N/2 callbacks and a year of counters, starts ``mycpaas serve``
and times scrapes of /metrics and runs of ``mycpaas queues``. Prints medians and one JSON line.
"""

import argparse
import json
import os
import statistics
import subprocess
import time

import httpx
import psycopg
from scratch import free_port, scratch_database, wait_http

REDIS = "redis://127.0.0.1:6379/6"

FILL = """
INSERT INTO accounts VALUES ('ACbench', 'bench', '', '', now());
INSERT INTO messages (sid, account_sid, "to", from_number, body, status, direction,
    num_segments, num_media, encoding, smart_encoded, media_urls, validity_period_s, expires_at,
    stage, next_attempt_at, attempts, throttle_reserved, reconcile, date_created, date_updated)
SELECT 'SM' || lpad(n::text, 32, '0'), 'ACbench', '+4915100000000', '+4915199999999', 'x',
    CASE WHEN n % 50 = 0 THEN 'failed' WHEN n % 1000 < 3 THEN 'queued' ELSE 'delivered' END,
    'outbound-api', 1, 0, 'GSM-7', false, '[]', 36000, now() + interval '1 hour',
    CASE WHEN n % 1000 = 0 THEN 'segment' WHEN n % 1000 = 1 THEN 'carrier'
         WHEN n % 1000 = 2 THEN 'sending' ELSE 'done' END,
    CASE WHEN n % 1000 < 3 THEN now() - interval '2 seconds' END,
    0, false, false, now() - (n || ' milliseconds')::interval, now()
FROM generate_series(1, NROWS) AS n;
INSERT INTO callbacks (message_sid, account_sid, url, status, params, webhook_id, state,
    attempts, next_attempt_at, date_created, date_updated)
SELECT 'SM' || lpad(n::text, 32, '0'), 'ACbench', 'https://example.org/cb', 'delivered', '{}',
    'w' || n, CASE WHEN n % 500 = 0 THEN 'pending' ELSE 'delivered' END, 1,
    CASE WHEN n % 500 = 0 THEN now() END, now(), now()
FROM generate_series(1, NROWS / 2) AS n;
INSERT INTO metric_counters
SELECT 'mycpaas_stage_latency_seconds_bucket', 'le=' || b || ',stage=' || s, 1000
FROM unnest(ARRAY['segment', 'media', 'carrier', 'callbacks']) AS s,
     unnest(ARRAY['0.01', '0.1', '1.0', '+Inf']) AS b;
INSERT INTO stage_activity
SELECT s, (extract(epoch FROM now())::int / 10 - w) * 10, 100
FROM unnest(ARRAY['segment', 'carrier', 'callbacks']) AS s, generate_series(0, 359) AS w;
ANALYZE;
"""


def timed(run: object) -> float:
    started = time.perf_counter()
    run()  # type: ignore[operator]
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--scrapes", type=int, default=20)
    args = parser.parse_args()
    env = {**os.environ, "MYCPAAS_BROKER_URL": REDIS, "MYCPAAS_REDIS_URL": REDIS,
           "MYCPAAS_LOG_LEVEL": "WARNING"}  # fmt: skip
    with scratch_database("mycpaas_bench_metrics", env) as url:
        env["MYCPAAS_DATABASE_URL"] = url
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in FILL.replace("NROWS", str(args.n)).split(";\n"):
                if statement.strip():
                    conn.execute(statement)  # type: ignore[call-overload]
        port = free_port()
        server = subprocess.Popen(["mycpaas", "serve", "--port", str(port)], env=env)
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz")
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                client.get("/metrics")  # warm the caches
                scrapes = [timed(lambda: client.get("/metrics").raise_for_status())
                           for _ in range(args.scrapes)]  # fmt: skip
            queues = [timed(lambda: subprocess.run(["mycpaas", "queues"], env=env, check=True,
                                                   capture_output=True))
                      for _ in range(3)]  # fmt: skip
        finally:
            server.terminate()
            server.wait()
    result = {
        "messages": args.n,
        "metrics_median_ms": round(statistics.median(scrapes), 1),
        "metrics_max_ms": round(max(scrapes), 1),
        "queues_command_median_ms": round(statistics.median(queues), 1),
    }
    print(f"/metrics at {args.n:,} messages: median {result['metrics_median_ms']} ms, "
          f"max {result['metrics_max_ms']} ms; `mycpaas queues` (process start included): "
          f"median {result['queues_command_median_ms']} ms")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
