"""Our HTTP processes' server loop wakes once a second, yet stops at once when told to."""

import signal
import subprocess
import sys
import time
from email.utils import parsedate_to_datetime

import httpx

from tests.processes import free_port, start, stop, wait_http

# A server whose tick is half a minute: only the signal's own wake-up can stop it promptly.
SLOW_TICK = """
import sys, uvicorn
from workers import serving

async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

serving.TICK_S = 30.0
serving.serve(uvicorn.Config(app, port=int(sys.argv[1]), lifespan="off", log_config=None))
"""


def test_a_server_refreshes_its_date_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = start(["mycpaas", "carrier-sim", "--port", str(port)], output=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        wait_http(url, proc=proc)
        first = parsedate_to_datetime(httpx.get(url).headers["date"])
        time.sleep(2.2)  # the Date header is refreshed on the loop's one-second tick
        assert (parsedate_to_datetime(httpx.get(url).headers["date"]) - first).total_seconds() >= 1
        proc.send_signal(signal.SIGTERM)
        # uvicorn raises the signal again once it has stopped: the default action ends it.
        assert proc.wait(10) in (0, -signal.SIGTERM)
    finally:
        stop(proc)


def test_sigterm_wakes_the_loop_instead_of_waiting_for_its_tick() -> None:
    port = free_port()
    proc = start([sys.executable, "-c", SLOW_TICK, str(port)], output=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/", proc=proc)
        proc.send_signal(signal.SIGTERM)
        asked = time.monotonic()
        assert proc.wait(20) in (0, -signal.SIGTERM)
        assert time.monotonic() - asked < 10  # 30 s had it waited for the tick
    finally:
        stop(proc)


def test_a_server_that_cannot_bind_exits_non_zero() -> None:
    port = free_port()
    first = start(["mycpaas", "carrier-sim", "--port", str(port)], output=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=first)
        second = start(["mycpaas", "carrier-sim", "--port", str(port)], output=subprocess.DEVNULL)
        assert second.wait(30) != 0
    finally:
        stop(first)
