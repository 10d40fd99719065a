"""CPU of one status callback's POST: the callbacks' client against httpx, on one thread.

    uv run python scripts/bench_poster.py [-n 3000]

A keep-alive HTTP server on loopback answers every POST at once with a two-byte body; one
thread POSTs a callback-sized form body ``-n`` times through each client, both behind the SSRF
guard (loopback allowed), and the thread's own CPU time is divided by ``-n``. Each client runs
twice, alternating, after a warm-up. Prints a line per run and one JSON line.
"""

import argparse
import http.server
import json
import resource
import ssl
import threading
import time
from collections.abc import Callable

import httpx

from workers.outbound.guard import GuardedTransport, allowed_networks, prompt_transport
from workers.outbound.poster import Poster

LOOPBACK = allowed_networks("127.0.0.0/8")
BODY = (b"AccountSid=AC0123456789abcdef0123456789abcdef&MessageSid=SM0123456789abcdef0123456789"
        b"abcdef&MessageStatus=delivered&From=%2B15005551426&To=%2B15551234567&ApiVersion=2010"
        b"-04-01&SmsSid=SM0123456789abcdef0123456789abcdef&SmsStatus=delivered")  # fmt: skip
HEADERS = {
    "content-type": "application/x-www-form-urlencoded",
    "x-twilio-signature": "x" * 28,
    "webhook-id": "msg_0123456789abcdef0123456789abcdef",
    "webhook-timestamp": "1800000000",
    "webhook-signature": "v1," + "x" * 44,
}


class Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = -1  # the answer leaves in one write

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
        self.wfile.flush()

    def log_message(self, *_: object) -> None:
        pass


def thread_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


def measure(send: Callable[[], object], count: int) -> tuple[float, float]:
    """(µs of this thread's CPU, µs of wall time) per request."""
    for _ in range(200):
        send()
    cpu, wall = thread_cpu_s(), time.perf_counter()
    for _ in range(count):
        send()
    return (thread_cpu_s() - cpu) / count * 1e6, (time.perf_counter() - wall) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=3000, help="POSTs per run")
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/status"
    tls = ssl.create_default_context()
    poster = Poster(tls, 5.0, allow=LOOPBACK)
    client = httpx.Client(transport=GuardedTransport(prompt_transport(), allow=LOOPBACK))

    def through_httpx() -> None:
        with client.stream("POST", url, content=BODY, headers=HEADERS) as response:
            response.read()

    results: dict[str, list[float]] = {"poster": [], "httpx": []}
    for _ in range(2):
        for name, send in (("poster", lambda: poster.post(url, BODY, HEADERS)),
                           ("httpx", through_httpx)):  # fmt: skip
            cpu_us, wall_us = measure(send, args.n)
            results[name].append(round(cpu_us))
            print(f"{name:7} {cpu_us:6.0f} µs CPU per POST (wall {wall_us:.0f} µs)")
    server.shutdown()
    print(json.dumps({"posts": args.n, "cpu_us_per_post": results}))


if __name__ == "__main__":
    main()
