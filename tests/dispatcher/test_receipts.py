"""``POST /carrier/receipts`` and ``/carrier/inbound``: the carrier's bearer token, and bad
bodies refused with 400."""

import httpx
import pytest
from sqlalchemy import select

from schemas.db import session_scope
from schemas.inbound import inbound_parts_table
from schemas.settings import get_settings
from tests.processes import Account, random_number


def post(api_url: str, body: bytes, token: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return httpx.post(f"{api_url}/carrier/receipts", content=body, headers=headers)


def test_a_batch_is_stored(api_url: str) -> None:
    # when
    response = post(
        api_url,
        b'{"receipts": [{"carrier_id": "c-1", "status": "delivered", "error_code": null}]}',
        get_settings().receipts_token,
    )
    # then
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 1}


@pytest.mark.parametrize("token", [None, "wrong"], ids=["none", "wrong"])
def test_without_the_carrier_token_is_401(api_url: str, token: str | None) -> None:
    response = post(api_url, b'{"receipts": []}', token)
    assert (response.status_code, response.json()["code"]) == (401, 20003)


# The first three answered 500, found by the schema-based fuzzer.
BAD_BATCHES = [
    ("error_code past 32 bits", b'{"receipts": [{"carrier_id": "c", "status": "failed", "error_code": 2140855573151}]}'),
    ("NUL in carrier_id", b'{"receipts": [{"carrier_id": "c\\u0000", "status": "delivered"}]}'),
    ("lone surrogate in reference", b'{"receipts": [{"carrier_id": "c", "status": "delivered", "reference": "\\udc00"}]}'),
    ("negative error_code", b'{"receipts": [{"carrier_id": "c", "status": "failed", "error_code": -1}]}'),
    ("unknown status", b'{"receipts": [{"carrier_id": "c", "status": "lost"}]}'),
    ("receipts not a list", b'{"receipts": {}}'),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body"), BAD_BATCHES, ids=[c[0] for c in BAD_BATCHES])
def test_bad_batches_are_400(api_url: str, case: str, body: bytes) -> None:
    response = post(api_url, body, get_settings().receipts_token)
    assert (response.status_code, response.json()["code"]) == (400, 20001), (case, response.text)


def test_not_json_is_415(api_url: str) -> None:
    response = httpx.post(
        f"{api_url}/carrier/receipts",
        content=b"receipts=1",
        headers={"authorization": f"Bearer {get_settings().receipts_token}",
                 "content-type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert (response.status_code, response.json()["code"]) == (415, 20415)


def post_inbound(api_url: str, document: object, token: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(f"{api_url}/carrier/inbound", json=document, headers=headers)


def test_a_message_a_gateway_posts_is_stored_before_the_answer(api_url: str) -> None:
    handset = random_number()
    # when
    response = post_inbound(api_url, {"From": handset, "To": "+15005550006", "Body": "hi ✓",
                                      "MediaUrl0": "ignored"}, get_settings().receipts_token)  # fmt: skip
    # then: answered once its part is committed, waiting for the inbound stage
    assert (response.status_code, response.json()) == (200, {"received": 1})
    p = inbound_parts_table.c
    with session_scope() as session:
        [part] = session.execute(
            select(p.carrier, p.to_number, p.text, p.total, p.message_sid)
            .where(p.from_number == handset)
        ).all()  # fmt: skip
    assert tuple(part) == ("http", "+15005550006", "hi ✓", 1, None)


@pytest.mark.parametrize(
    ("document", "token", "status"),
    [
        ({"From": "+4915112345678", "To": "+15005550006"}, None, 401),
        ({"From": "+4915112345678", "To": "+15005550006"}, "wrong", 401),
        ({"From": "nobody", "To": "+15005550006"}, "ok", 400),
        ({"From": "+4915112345678"}, "ok", 400),
        ({"From": "+4915112345678", "To": "+15005550006", "Body": 7}, "ok", 400),
        ({"From": "+4915112345678", "To": "+15005550006", "Body": "\u0000"}, "ok", 400),
    ],
    ids=["no token", "wrong token", "bad From", "no To", "Body not text", "NUL in Body"],
)
def test_a_bad_inbound_post_is_refused(
    api_url: str, document: dict[str, object], token: str | None, status: int
) -> None:
    real = get_settings().receipts_token if token == "ok" else token
    response = post_inbound(api_url, document, real)
    assert response.status_code == status, response.text


def test_an_mms_from_a_gateway_is_stored_and_bad_media_urls_refused(
    api_url: str, account: Account
) -> None:
    headers = {"authorization": f"Bearer {get_settings().receipts_token}"}
    url = f"{api_url}/carrier/inbound"
    mms = {"From": random_number(), "To": account.number, "Body": "",
           "MediaUrl": ["https://media.example.com/a.png"]}  # fmt: skip
    assert httpx.post(url, json=mms, headers=headers).json() == {"received": 1}
    for bad in (["ftp://media.example.com/a.png"], ["https://x.test/"] * 11, [7]):
        refused = httpx.post(url, json={**mms, "MediaUrl": bad}, headers=headers)
        assert refused.status_code == 400, bad
        assert "MediaUrl" in refused.json()["message"]
