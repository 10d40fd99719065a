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


# Found by the schema-based fuzzer: each of these answered 500.
UNSTORABLE = [
    ("NUL in a form value", {"content-type": "application/x-www-form-urlencoded"}, b"To=%2B4915112345678&Body=a%00b"),
    ("NUL in a JSON value", {"content-type": "application/json"}, b'{"To": "+4915112345678", "Body": "a\\u0000b"}'),
    ("lone surrogate in JSON", {"content-type": "application/json"}, b'{"To": "+4915112345678", "Body": "a\\ud800b"}'),
    ("NUL in StatusCallback", {"content-type": "application/x-www-form-urlencoded"}, b"To=%2B4915112345678&Body=x&StatusCallback=http://a%00b/"),
    ("non-ASCII digit in ValidityPeriod", {"content-type": "application/x-www-form-urlencoded"}, "To=%2B4915112345678&Body=x&ValidityPeriod=²".encode()),
]  # fmt: skip


@pytest.mark.parametrize(("case", "headers", "body"), UNSTORABLE, ids=[c[0] for c in UNSTORABLE])
def test_values_the_database_cannot_store_are_refused(
    api_url: str, account: Account, case: str, headers: dict, body: bytes
) -> None:
    # given: From is added so that only the value under test is wrong
    if headers["content-type"] == "application/json":
        body = body.replace(b"{", b'{"From": "%s", ' % account.number.encode(), 1)
    else:
        body += b"&From=" + account.number.replace("+", "%2B").encode()
    # when
    response = httpx.post(
        f"{api_url}/v1/Accounts/{account.sid}/Messages",
        content=body,
        headers=headers,
        auth=account.auth,
    )
    # then
    assert response.status_code == 400, (case, response.text)
    assert response.json()["code"] == 20001


@pytest.mark.parametrize(
    ("params", "status"),
    [({"To": "+49\x00"}, 400), ({"Page": "²"}, 400), ({"PageSize": "³"}, 400),
     ({"Page": "6326994769491944069632268173312"}, 400), ({"Page": "1" * 5000}, 400),
     ({"PageSize": "9" * 5000}, 200), ({"DateSent": "9999-12-31"}, 200),
     ({"DateSent<": "9999-12-31"}, 200), ({"DateSent>": "0001-01-01T00:00:00+14:00"}, 400)],
    ids=["NUL in To", "superscript Page", "superscript PageSize", "Page past bigint",
         "Page of 5000 digits", "PageSize of 5000 digits is clamped", "last day",
         "before the last day", "before the first instant"],
)  # fmt: skip
def test_list_parameters_that_answered_500(
    api_url: str, account: Account, params: dict, status: int
) -> None:
    response = httpx.get(
        f"{api_url}/v1/Accounts/{account.sid}/Messages", params=params, auth=account.auth
    )
    assert response.status_code == status, response.text
    if status == 200 and "PageSize" in params:
        assert response.json()["page_size"] == 1000


def test_blank_list_parameters_count_as_absent(api_url: str, account: Account) -> None:
    response = httpx.get(
        f"{api_url}/v1/Accounts/{account.sid}/Messages?PageSize=&Page=&Status=&To=",
        auth=account.auth,
    )
    assert response.status_code == 200, response.text
    assert response.json()["page_size"] == 50


@pytest.mark.parametrize("query", ["=", "Sort=", "DateSent=&="])
def test_unknown_list_parameter_is_refused_even_blank(
    api_url: str, account: Account, query: str
) -> None:
    response = httpx.get(f"{api_url}/v1/Accounts/{account.sid}/Messages?{query}", auth=account.auth)
    assert (response.status_code, response.json()["code"]) == (400, 20001)


def test_nul_in_basic_credentials_is_401(api_url: str, account: Account) -> None:
    response = httpx.get(
        f"{api_url}/v1/Accounts/{account.sid}/Messages", auth=("AC\x00", account.token)
    )
    assert (response.status_code, response.json()["code"]) == (401, 20003)
