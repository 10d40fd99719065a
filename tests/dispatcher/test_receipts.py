"""``POST /carrier/receipts``: the carrier's bearer token, and bad batches refused with 400."""

import httpx
import pytest

from schemas.settings import get_settings


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
