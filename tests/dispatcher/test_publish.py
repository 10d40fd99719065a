"""Intake wakes the pipeline after commit; a broker that is down loses nothing."""

import base64
import json
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from schemas.db import session_scope
from schemas.models import Message
from tests.processes import Account, free_port, random_number, start_api


def queued_sids(client: redis.Redis, key: str) -> list[str]:
    sids = []
    for raw in client.lrange(key, 0, -1):
        envelope = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        sids.append(args[0])
    return sids


@pytest.fixture
def isolated_api() -> Iterator[tuple[str, str]]:
    """An API whose Redis keys (broker included) carry a prefix of their own."""
    prefix = f"mycpaas-test-{secrets.token_hex(4)}:"
    with start_api(free_port(), env={"MYCPAAS_REDIS_PREFIX": prefix}) as url:
        yield url, prefix


def send(url: str, account: Account) -> dict:
    response = httpx.post(
        f"{url}/v1/Accounts/{account.sid}/Messages",
        data={"To": random_number(), "From": account.number, "Body": "x"},
        auth=account.auth,
    )
    assert response.status_code == 201
    return response.json()


@pytest.mark.e2e
def test_create_wakes_the_carrier_stage_once_for_a_burst(
    isolated_api: tuple[str, str], account: Account, redis_client: redis.Redis
) -> None:
    # given: no worker consumes this prefix's queues
    url, prefix = isolated_api
    # when
    first = send(url, account)
    for _ in range(5):
        send(url, account)
    time.sleep(0.5)  # publishing runs just after each answer
    # then: one wake-up, carrying the first sid; the others were coalesced into it
    assert queued_sids(redis_client, f"{prefix}carrier") == [first["sid"]]
    assert redis_client.get(f"{prefix}wake:carrier") == first["sid"].encode()


@pytest.mark.e2e
def test_broker_down_at_intake_still_accepts_and_keeps_the_row(account: Account) -> None:
    # given: an API whose broker and Redis are a port where nothing listens
    dead = f"redis://127.0.0.1:{free_port()}/0"
    env = {"MYCPAAS_BROKER_URL": dead, "MYCPAAS_REDIS_URL": dead}
    with start_api(free_port(), env=env) as url:
        # when
        started = time.monotonic()
        responses = [send(url, account) for _ in range(5)]
        elapsed = time.monotonic() - started
    # then: every request succeeded, quickly, and every row is due for the sweeper
    assert elapsed < 5
    with session_scope() as session:
        for message in responses:
            row = session.get(Message, message["sid"])
            assert row is not None
            assert row.status == "queued"
            assert row.stage == "carrier"  # stored with its segments
            assert row.next_attempt_at is not None


def test_readyz_reports_the_broker(api_url: str) -> None:
    # given: the session's API (database and Redis up) and one whose broker is gone
    ready = httpx.get(f"{api_url}/readyz")
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with start_api(free_port(), env={"MYCPAAS_BROKER_URL": dead}) as url:
        unready = httpx.get(f"{url}/readyz", timeout=10)
    # then
    assert (ready.status_code, ready.json()) == (
        200,
        {"database": "ok", "broker": "ok", "carrier": "ok"},
    )
    assert unready.status_code == 503
    assert unready.json() == {"database": "ok", "broker": "unavailable", "carrier": "ok"}
