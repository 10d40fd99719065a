"""Callbacks per second to one fast local receiver: the commonest deployment, one webhook host.

    uv run python scripts/bench_callbacks.py pipeline [-n 5000]
    uv run python scripts/bench_callbacks.py drain [-n 5000] [--workers 1]

``pipeline`` runs ``mycpaas bench --spawn --callbacks`` (the whole platform, 20 ms carrier,
32 clients, every message with a StatusCallback on one receiver) and reports when the last
callback arrived after the last message settled: callbacks must keep pace with the pipeline.
``drain`` creates its own database, stores N delivered messages each owing one callback to a
receiver on loopback (a minimal ASGI app under uvicorn that answers 200), starts
``mycpaas worker -Q callbacks`` and times from the first wake-up until every callback is
recorded as delivered: the callbacks stage alone, with nothing else running.
Each prints a summary and one JSON line.
"""

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime

import psycopg
from scratch import ADMIN_URL, free_port, scratch_database, wait_http

REDIS = "redis://127.0.0.1:6379/6"
RECEIVER = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["pipeline", "drain"])
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=1, help="callbacks workers (drain)")
    args = parser.parse_args()
    env = {
        **os.environ,
        "MYCPAAS_BROKER_URL": REDIS,
        "MYCPAAS_REDIS_URL": REDIS,
        "MYCPAAS_REDIS_PREFIX": f"bench-cb-{secrets.token_hex(3)}:",
        "MYCPAAS_OUTBOUND_ALLOW_CIDRS": "127.0.0.0/8",
        "MYCPAAS_LOG_LEVEL": "WARNING",
    }
    if args.scenario == "pipeline":
        pipeline(args, env)
        return
    with scratch_database("mycpaas_bench_callbacks", env) as db_url:
        run(args, {**env, "MYCPAAS_DATABASE_URL": db_url}, db_url)


def pipeline(args: argparse.Namespace, env: dict[str, str]) -> None:
    """The whole platform with every callback to one receiver (``mycpaas bench`` does it)."""
    api, sink = f"http://127.0.0.1:{free_port()}", str(free_port())
    command = ["mycpaas", "bench", "--spawn", "-n", str(args.n), "-c", "32", "--latency-ms", "20",
               "--url", api, "--callbacks", sink]  # fmt: skip
    subprocess.run(command, env={**env, "MYCPAAS_DATABASE_URL": ADMIN_URL}, check=True)


def run(args: argparse.Namespace, env: dict[str, str], db_url: str) -> None:
    os.environ.update(env)
    from dispatcher.intake.accounts import add_number, create_account
    from schemas.db import session_scope
    from workers.stages.callbacks import endpoint_of

    with session_scope() as session:
        account, _token = create_account(session, "bench")
        add_number(session, account.sid, "+15005550006")
    port = free_port()
    receiver_file = f"/tmp/bench_receiver_{port}.py"
    with open(receiver_file, "w") as handle:
        handle.write(RECEIVER)
    receiver = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", "/tmp", f"bench_receiver_{port}:app",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/status"
    now = datetime.now(UTC)
    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        with cur.copy(
            'COPY messages (sid, account_sid, "to", from_number, body, status, direction,'
            " num_segments, num_media, encoding, smart_encoded, media_urls, status_callback,"
            " validity_period_s, expires_at, stage, attempts, throttle_reserved, reconcile,"
            " date_created, date_updated) FROM STDIN"
        ) as copy:
            sids = ["SM" + secrets.token_hex(16) for _ in range(args.n)]
            for sid in sids:
                copy.write_row((sid, account.sid, "+14155552671", "+15005550006", "x",
                                "delivered", "outbound-api", 1, 0, "GSM-7", False, "[]", url,
                                36000, now, "done", 0, False, False, now, now))  # fmt: skip
        with cur.copy(
            "COPY callbacks (message_sid, account_sid, url, endpoint, status, params, webhook_id,"
            " state, attempts, next_attempt_at, date_created, date_updated) FROM STDIN"
        ) as copy:
            endpoint = endpoint_of(url)
            for sid in sids:
                params = json.dumps({"MessageSid": sid, "MessageStatus": "delivered",
                                     "AccountSid": account.sid})  # fmt: skip
                copy.write_row((sid, account.sid, url, endpoint, "delivered", params,
                                f"{sid}.delivered", "pending", 0, now, now, now))  # fmt: skip
        conn.commit()
    workers = [
        subprocess.Popen(
            ["mycpaas", "worker", "-Q", "callbacks", "-n", f"cb{i}@%h"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for i in range(args.workers)
    ]
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        time.sleep(3)  # workers connect to the broker
        from workers.pipeline import wakeup

        started = time.monotonic()
        wakeup.wake("callbacks")
        done = 0
        with psycopg.connect(db_url, autocommit=True) as conn:
            while time.monotonic() - started < 300:
                done = conn.execute(
                    "SELECT count(*) FROM callbacks WHERE state = 'delivered'"
                ).fetchone()[0]  # type: ignore[index]
                if done >= args.n:
                    break
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            latency = conn.execute(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),"
                " percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) FROM callback_attempts"
            ).fetchone()
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(20)
        receiver.terminate()
        receiver.wait(10)
        os.unlink(receiver_file)
    report = {
        "callbacks": args.n,
        "delivered": done,
        "workers": args.workers,
        "seconds": round(elapsed, 2),
        "per_s": round(done / elapsed, 1),
        "attempt_p50_ms": round(latency[0], 2),
        "attempt_p99_ms": round(latency[1], 2),
    }
    print(f"{done}/{args.n} callbacks delivered in {elapsed:.2f} s = {report['per_s']}/s "
          f"with {args.workers} worker(s); POST p50 {report['attempt_p50_ms']} ms, "
          f"p99 {report['attempt_p99_ms']} ms")  # fmt: skip
    print(json.dumps(report))


if __name__ == "__main__":
    main()
