"""Intake publishes a wake-up call after commit; a broker that is down loses nothing."""

import base64
import json
import time

import httpx
import redis

from schemas.db import session_scope
from schemas.models import Message
from tests.processes import Account, free_port, random_number, start_api


def queued_sids(client: redis.Redis, queue: str) -> set[str]:
    sids = set()
    for raw in client.lrange(queue, 0, -1):
        envelope = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        sids.add(args[0])
    return sids


def test_create_publishes_the_sid_to_its_first_stage(
    api_url: str, account: Account, redis_client: redis.Redis
) -> None:
    # when
    sms = httpx.post(
        f"{api_url}/v1/Accounts/{account.sid}/Messages",
        data={"To": random_number(), "From": account.number, "Body": "x"},
        auth=account.auth,
    ).json()
    mms = httpx.post(
        f"{api_url}/v1/Accounts/{account.sid}/Messages",
        data={"To": random_number(), "From": account.number, "MediaUrl": "https://x.org/a.png"},
        auth=account.auth,
    ).json()
    # then (publishing runs just after the answer)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if sms["sid"] in queued_sids(redis_client, "segment") and mms["sid"] in queued_sids(
            redis_client, "media"
        ):
            break
        time.sleep(0.05)
    assert sms["sid"] in queued_sids(redis_client, "segment")
    assert mms["sid"] in queued_sids(redis_client, "media")


def test_broker_down_at_intake_still_accepts_and_keeps_the_row(account: Account) -> None:
    # given: an API whose broker is a port where nothing listens
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"
    with start_api(free_port(), env={"MYCPAAS_BROKER_URL": dead_broker}) as url:
        # when
        started = time.monotonic()
        responses = [
            httpx.post(
                f"{url}/v1/Accounts/{account.sid}/Messages",
                data={"To": random_number(), "From": account.number, "Body": f"n{i}"},
                auth=account.auth,
            )
            for i in range(5)
        ]
        elapsed = time.monotonic() - started
    # then: every request succeeded, quickly, and every row waits for the sweeper
    assert [r.status_code for r in responses] == [201] * 5
    assert elapsed < 5
    with session_scope() as session:
        for response in responses:
            row = session.get(Message, response.json()["sid"])
            assert row is not None
            assert row.status == "queued"
            assert row.next_attempt_at is not None
