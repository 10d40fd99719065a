"""A status-callback sink for ``mycpaas bench``: answers every POST 200 (empty) at once and
counts.

    python -m dispatcher.bench.sink --port 8300

A bare asyncio HTTP/1.1 server (keep-alive, Content-Length bodies), so the receiver costs
next to nothing beside the platform it measures: the customer's fast webhook host. ``GET
/stats`` answers ``{"count", "by_status", "first_at", "last_at"}`` (epoch seconds), what the
bench reads at the end; each callback's ``MessageStatus`` is counted from its form body.
``GET /reset`` forgets what was counted (the bench's warm-up).
"""

import asyncio
import contextlib
import json
import time
from collections import Counter
from urllib.parse import parse_qs

import click

MAX_HEADER_BYTES = 65_536  # a callback's request head is a few hundred bytes


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.by_status: Counter[str] = Counter()
        self.first_at: float | None = None
        self.last_at: float | None = None

    def add(self, body: bytes) -> None:
        status = parse_qs(body.decode("utf-8", "replace")).get("MessageStatus", ["?"])[0]
        self.by_status[status] += 1
        self.last_at = time.time()
        if self.first_at is None:
            self.first_at = self.last_at

    def as_json(self) -> bytes:
        return json.dumps(
            {"count": sum(self.by_status.values()), "by_status": dict(self.by_status),
             "first_at": self.first_at, "last_at": self.last_at}
        ).encode()  # fmt: skip


def _response(status: str, body: bytes, content_type: str = "text/plain") -> bytes:
    head = (f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n"
            f"content-length: {len(body)}\r\n\r\n")  # fmt: skip
    return head.encode() + body


async def _serve_connection(
    stats: Stats, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ValueError):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > MAX_HEADER_BYTES:
                return
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            length = 0
            for line in header_lines:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            if request_line.startswith("GET /stats"):
                writer.write(_response("200 OK", stats.as_json(), "application/json"))
            elif request_line.startswith("GET /reset"):
                stats.reset()
                writer.write(_response("200 OK", b""))
            else:
                if request_line.startswith("POST"):
                    stats.add(body)
                writer.write(_response("200 OK", b""))  # for an inbound webhook: no reply
            await writer.drain()
    writer.close()


async def serve(host: str, port: int) -> None:
    stats = Stats()
    server = await asyncio.start_server(
        lambda reader, writer: _serve_connection(stats, reader, writer), host, port
    )
    async with server:
        await server.serve_forever()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8300, show_default=True)
def main(host: str, port: int) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(host, port))


if __name__ == "__main__":
    main()
