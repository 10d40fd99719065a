"""A carrier that refuses our credentials is the platform's fault: messages wait, it is loud."""

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Platform, launch
from tests.http_server import HttpServer, Request, Response, serving
from tests.processes import random_number


class Gateway(HttpServer):
    """A generic HTTP carrier gateway that answers 401 while ``refusing`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.refusing = threading.Event()

    def answer(self, request: Request) -> Response:
        if self.refusing.is_set():
            status, answer = 401, {"message": "invalid token"}
        else:
            status, answer = 200, {"carrier_id": f"gw-{json.loads(request.body)['reference']}"}
        return Response(status, json.dumps(answer).encode(), {"content-type": "application/json"})


@pytest.fixture
def gateway() -> Iterator[tuple[Gateway, str]]:
    with serving(Gateway()) as running:
        yield running, running.base


def gauge(platform: Platform) -> float:
    for line in httpx.get(f"{platform.api}/metrics").text.splitlines():
        if line.startswith("mycpaas_carrier_credentials_refused "):
            return float(line.split()[1])
    raise AssertionError("no mycpaas_carrier_credentials_refused gauge")


def test_refused_credentials_defer_messages_and_say_so_once(
    gateway: tuple[Gateway, str], tmp_path: Path
) -> None:
    running, url = gateway
    running.refusing.set()
    log_path = tmp_path / "carrier.log"
    with (
        launch(tmp_path, workers=("segment", "maintenance"), MYCPAAS_CARRIER="http",
               MYCPAAS_CARRIER_URL=url) as platform,
        log_path.open("wb") as log,
    ):  # fmt: skip
        platform.start_worker("carrier", output=log)
        account = platform.new_account()
        # given: the carrier refuses our token
        sids = [platform.send(account, random_number(), f"m{i}")["sid"] for i in range(3)]
        deadline = time.monotonic() + 30
        while len(running.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(running.requests) >= 3  # tried again and again, with backoff
        # then: no message failed for it, the platform says what is wrong
        assert set(platform.column(sids, "status").values()) <= {"queued", "sending"}
        ready = httpx.get(f"{platform.api}/readyz")
        assert ready.status_code == 503
        assert ready.json()["carrier"].startswith("refuses our credentials since")
        assert ready.json()["database"] == ready.json()["broker"] == "ok"
        assert gauge(platform) == 1.0
        # when: the token is fixed at the carrier
        running.refusing.clear()
        deadline = time.monotonic() + 60
        while set(platform.column(sids, "status").values()) != {"sent"}:
            assert time.monotonic() < deadline, platform.column(sids, "status")
            time.sleep(0.2)
        # then: the messages go out and the platform is ready again
        assert httpx.get(f"{platform.api}/readyz").status_code == 200
        assert gauge(platform) == 0.0
    lines = [
        line for line in log_path.read_text().splitlines() if "refuses our credentials" in line
    ]
    assert len(lines) == 1, lines  # once per minute, not once per message or per try
