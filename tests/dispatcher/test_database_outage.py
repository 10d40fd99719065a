"""Postgres lost under a running API: a create answers 503 with Retry-After (never a 500, never
a hang), and once Postgres is back creates go through again. The API reaches Postgres through a
loopback TCP relay the test cuts and restores."""

import contextlib
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.conftest import DATABASE_URL
from tests.processes import Account, free_port, random_number, start_api


class Relay:
    """Loopback port → Postgres, byte for byte, until ``cut()``; ``restore()`` listens again."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        self._track(listener)
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Close the listener and every relayed connection: as if Postgres went away."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                server = socket.create_connection(self.upstream)
            except OSError:
                return  # cut
            self._track(client)
            self._track(server)
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            target.sendall(chunk)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


@pytest.fixture
def relayed_api() -> Iterator[tuple[str, Relay]]:
    parts = urlsplit(DATABASE_URL)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
    netloc = (
        f"{parts.username}@127.0.0.1:{relay.port}" if parts.username else f"127.0.0.1:{relay.port}"
    )
    url = urlunsplit(parts._replace(netloc=netloc))
    try:
        with start_api(free_port(), env={"MYCPAAS_DATABASE_URL": url}) as api:
            yield api, relay
    finally:
        relay.cut()


@pytest.mark.e2e
def test_a_create_while_postgres_is_away_is_a_503_and_the_next_ones_go_through(
    relayed_api: tuple[str, Relay], account: Account
) -> None:
    api, relay = relayed_api
    url = f"{api}/v1/Accounts/{account.sid}/Messages"
    params = {"To": random_number(), "From": account.number, "Body": "outage"}
    # given: the API has served a create (its credentials and sender are verified)
    assert httpx.post(url, data=params, auth=account.auth).status_code == 201
    # when: Postgres goes away
    relay.cut()
    lost = httpx.post(url, data=params, auth=account.auth, timeout=30)
    # then: a clear, retryable refusal
    assert lost.status_code == 503
    assert lost.headers["retry-after"] == "1"
    assert lost.json()["code"] == 20503
    # when: it is back
    relay.restore()
    after = httpx.post(url, data=params, auth=account.auth, timeout=30)
    # then: creates are stored again (the group commit carried on)
    assert after.status_code == 201
    fetched = httpx.get(f"{url}/{after.json()['sid']}", auth=account.auth)
    assert fetched.status_code == 200
