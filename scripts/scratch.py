"""What the benchmark scripts share: a scratch database of their own and a free loopback port."""

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import psycopg

# Processes pointed at Postgres refuse the built-in development key; scratch stores get this one.
os.environ.setdefault("MYCPAAS_SECRET_KEY", "bench-secret-key")
ADMIN_URL = os.environ.get("MYCPAAS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def scratch_database(name: str, env: dict[str, str]) -> Iterator[str]:
    """A fresh, migrated database ``name`` (dropped first if a run left it), dropped on exit."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    url = database_url(name)
    try:
        subprocess.run(["mycpaas", "migrate"], env={**env, "MYCPAAS_DATABASE_URL": url},
                       check=True, capture_output=True)  # fmt: skip
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def wait_http(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
