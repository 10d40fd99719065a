"""Starting the platform's real processes for tests, and making accounts to test with."""

import contextlib
import os
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import httpx

from dispatcher.intake.accounts import add_number, create_account
from schemas.db import session_scope

STARTUP_TIMEOUT_S = 60.0  # a process answers in 2-5 s; parallel tests on two busy cores, 20+


@dataclass(frozen=True)
class Account:
    sid: str
    token: str
    number: str

    @property
    def auth(self) -> tuple[str, str]:
        return (self.sid, self.token)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def random_number() -> str:
    # German mobile numbers (+49 151 …) are valid for libphonenumber and unlikely to collide.
    return f"+49151{random.randrange(10_000_000, 99_999_999)}"


def new_account(sender: str | None = None, sps: float = 1000.0) -> Account:
    """A fresh account owning one sender; fast by default (long codes get 1/s in production)."""
    with session_scope() as session:
        account, token = create_account(session, "test")
        number = add_number(session, account.sid, sender or random_number(), sps)
    return Account(account.sid, token, number.phone_number)


def wait_http(
    url: str, timeout_s: float = STARTUP_TIMEOUT_S, proc: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


def start(
    command: list[str], env: dict[str, str] | None = None, output: IO[bytes] | None = None
) -> subprocess.Popen:
    """A ``mycpaas`` subcommand (or any command) in its own process group; ``output`` takes
    its stdout and stderr."""
    return subprocess.Popen(command, env={**os.environ, **(env or {})}, start_new_session=True,
                            stdout=output, stderr=output)  # fmt: skip


def stop(proc: subprocess.Popen, timeout_s: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout_s)


@contextlib.contextmanager
def serving_on(proc: subprocess.Popen, port: int) -> Iterator[str]:
    """The URL of ``proc``'s HTTP server on a loopback ``port``, once it answers; stopped on
    exit."""
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz", proc=proc)
        yield url
    finally:
        stop(proc)


@contextlib.contextmanager
def start_api(port: int, env: dict[str, str] | None = None, workers: int = 1) -> Iterator[str]:
    """``mycpaas serve`` on a loopback port, with extra environment; stopped on exit."""
    proc = start(["mycpaas", "serve", "--port", str(port), "--workers", str(workers)], env)
    with serving_on(proc, port) as url:
        yield url
