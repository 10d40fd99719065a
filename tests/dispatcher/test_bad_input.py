"""Malformed requests get a clear 4xx in the error envelope, never a 500."""

import httpx
import pytest

from tests.processes import Account

CASES = [
    ("malformed JSON", {"content-type": "application/json"}, b'{"To": ', 400, 20001),
    ("JSON not an object", {"content-type": "application/json"}, b"[1, 2]", 400, 20001),
    ("JSON nested value", {"content-type": "application/json"}, b'{"Body": {"a": 1}}', 400, 20001),
    ("non-UTF-8 form", {"content-type": "application/x-www-form-urlencoded"}, b"Body=%ff%fe", 400, 20001),
    ("non-UTF-8 JSON", {"content-type": "application/json"}, b'{"Body": "\xff"}', 400, 20001),
    ("malformed form", {"content-type": "application/x-www-form-urlencoded"}, b"=&&==%", 400, 20001),
    ("wrong content type", {"content-type": "text/plain"}, b"To=+4915112345678", 415, 20415),
    ("xml", {"content-type": "application/xml"}, b"<Message/>", 415, 20415),
    ("huge body", {"content-type": "application/x-www-form-urlencoded"}, b"Body=" + b"a" * 300_000, 413, 20413),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "headers", "body", "status", "code"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_bodies_are_refused_cleanly(
    api_url: str, account: Account, case: str, headers: dict, body: bytes, status: int, code: int
) -> None:
    # when
    response = httpx.post(
        f"{api_url}/v1/Accounts/{account.sid}/Messages",
        content=body,
        headers=headers,
        auth=account.auth,
    )
    # then
    assert response.status_code == status, (case, response.text)
    assert response.json()["code"] == code
    assert "Traceback" not in response.text


def test_unknown_list_parameter_is_refused(api_url: str, account: Account) -> None:
    response = httpx.get(
        f"{api_url}/v1/Accounts/{account.sid}/Messages", params={"Sort": "asc"}, auth=account.auth
    )
    assert response.status_code == 400
    assert response.json()["code"] == 20001


@pytest.mark.parametrize(
    "params",
    [{"PageSize": "ten"}, {"Page": "-1"}, {"PageToken": "garbage"}, {"DateSent": "yesterday"},
     {"Status": "lost"}],
    ids=["PageSize", "Page", "PageToken", "DateSent", "Status"],
)  # fmt: skip
def test_bad_list_parameters_are_400(api_url: str, account: Account, params: dict) -> None:
    response = httpx.get(
        f"{api_url}/v1/Accounts/{account.sid}/Messages", params=params, auth=account.auth
    )
    assert response.status_code == 400
    assert response.json()["code"] == 20001


def test_unknown_route_and_method_use_the_envelope(api_url: str, account: Account) -> None:
    missing = httpx.get(f"{api_url}/v1/Nothing", auth=account.auth)
    wrong_method = httpx.put(f"{api_url}/v1/Accounts/{account.sid}/Messages", auth=account.auth)
    assert (missing.status_code, missing.json()["code"]) == (404, 20404)
    assert (wrong_method.status_code, wrong_method.json()["code"]) == (405, 20405)


def test_openapi_and_docs_are_served(api_url: str) -> None:
    spec = httpx.get(f"{api_url}/openapi.json").json()
    assert "/v1/Accounts/{account_sid}/Messages" in spec["paths"]
    assert httpx.get(f"{api_url}/docs").status_code == 200
