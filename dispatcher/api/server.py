"""Serving the API with uvicorn, with the two settings that keep it fast.

- TCP_NODELAY on every accepted connection. With ``--workers`` uvicorn binds the listening
  socket itself and asyncio then leaves Nagle's algorithm on; a response written as headers
  plus body then waits for the client's delayed ACK, 40 ms on Linux, on every request.
- As many request threads as database connections, so a burst never opens and closes
  connections beyond the pool (or runs Postgres out of them).
"""

import contextlib
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from schemas.settings import get_settings
from workers import serving

CHILD_CHECK_S = 0.5  # how often the parent looks for a dead server process


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol on httptools (a C parser; h11, in pure Python, cost a
    fifth of a create's CPU) with TCP_NODELAY set on the connection."""

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    anyio.to_thread.current_default_thread_limiter().total_tokens = get_settings().db_pool_size
    yield


def _config(host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        "dispatcher.api.fast_path:serving_app",
        factory=True,
        host=host,
        port=port,
        http=NoDelayHttpToolsProtocol,
        access_log=False,
        log_config=None,
    )


def _serve_one(host: str, port: int) -> None:
    """One server process with a listening socket of its own (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    serving.serve(_config(host, port), [sock])


def serve(host: str, port: int, workers: int) -> None:
    """Serve on ``host:port`` with ``workers`` processes.

    Each process listens on its own SO_REUSEPORT socket, so the kernel spreads connections
    evenly; with one shared socket (uvicorn's ``--workers``) a few long-lived client
    connections can all land on one process and leave the others idle.
    """
    if workers <= 1:
        serving.serve(_config(host, port))
        return
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_serve_one, args=(host, port)) for _ in range(workers)]
    for child in children:
        child.start()

    def forward(_signum: int, _frame: object) -> None:
        # Always SIGTERM, uvicorn's graceful stop: after Ctrl-C the children already have the
        # terminal's SIGINT, and a second SIGINT would make them drop requests in flight.
        for child in children:
            if child.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while all(child.is_alive() for child in children):
        time.sleep(CHILD_CHECK_S)
    # One server process died (or all were told to stop): stop the rest and let the
    # supervisor (compose, systemd) restart the whole service.
    forward(signal.SIGTERM, None)
    for child in children:
        child.join()
    if any(child.exitcode not in (0, -signal.SIGTERM, -signal.SIGINT) for child in children):
        raise SystemExit(1)
