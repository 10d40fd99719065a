"""Creating messages through the real HTTP server: validation, the error table, idempotency."""

import httpx
import pytest

from tests.processes import Account, random_number


def create(api_url: str, account: Account, **params: object) -> httpx.Response:
    return httpx.post(
        f"{api_url}/v1/Accounts/{account.sid}/Messages", data=params, auth=account.auth
    )


def test_create_sms_returns_201_with_the_message(api_url: str, account: Account) -> None:
    # given
    to = random_number()
    # when
    response = create(api_url, account, To=to, From=account.number, Body="hello")
    # then
    assert response.status_code == 201
    message = response.json()
    assert message["sid"].startswith("SM")
    assert len(message["sid"]) == 34
    assert message["account_sid"] == account.sid
    assert (message["to"], message["from"], message["body"]) == (to, account.number, "hello")
    assert message["status"] == "queued"
    assert message["direction"] == "outbound-api"
    assert (message["num_segments"], message["num_media"], message["encoding"]) == (1, 0, "GSM-7")
    assert message["date_created"].endswith("Z")
    assert message["date_sent"] is None
    assert message["uri"] == f"/v1/Accounts/{account.sid}/Messages/{message['sid']}"


def test_create_accepts_json_and_counts_segments(api_url: str, account: Account) -> None:
    # when
    response = httpx.post(
        f"{api_url}/v1/Accounts/{account.sid}/Messages",
        json={"To": random_number(), "From": account.number, "Body": "ж" * 71},
        auth=account.auth,
    )
    # then
    assert response.status_code == 201
    assert (response.json()["num_segments"], response.json()["encoding"]) == (2, "UCS-2")


def test_media_url_makes_an_mms(api_url: str, account: Account) -> None:
    # when
    response = create(
        api_url, account, To=random_number(), From=account.number,
        MediaUrl=["https://example.org/a.jpg", "https://example.org/b.png"],
    )  # fmt: skip
    # then
    assert response.status_code == 201
    assert response.json()["sid"].startswith("MM")
    assert response.json()["num_media"] == 2


def test_unencoded_plus_in_a_form_is_read_as_plus(api_url: str, account: Account) -> None:
    # given: what `curl -d To=+4915…` sends
    to = random_number()
    body = f"To={to}&From={account.number}&Body=hi".encode()
    # when
    response = httpx.post(
        f"{api_url}/v1/Accounts/{account.sid}/Messages",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
        auth=account.auth,
    )
    # then
    assert response.status_code == 201
    assert response.json()["to"] == to


ERROR_TABLE = [
    ("missing To", {"Body": "x"}, 21604),
    ("invalid To", {"To": "+1234", "Body": "x"}, 21211),
    ("missing From", {"To": "+4915112345678", "Body": "x", "From": None}, 21603),
    ("invalid From", {"To": "+4915112345678", "Body": "x", "From": "hello"}, 21212),
    ("From of nobody", {"To": "+4915112345678", "Body": "x", "From": "+4917099999999"}, 21606),
    ("no Body nor MediaUrl", {"To": "+4915112345678"}, 21602),
    ("empty Body", {"To": "+4915112345678", "Body": ""}, 21602),
    ("Body over 1600", {"To": "+4915112345678", "Body": "a" * 1601}, 21617),
    ("media not http", {"To": "+4915112345678", "MediaUrl": "ftp://x.org/a.jpg"}, 21620),
    ("media no host", {"To": "+4915112345678", "MediaUrl": "http:///a.jpg"}, 21620),
    ("eleven media", {"To": "+4915112345678", "MediaUrl": ["https://x.org/a"] * 11}, 21623),
    ("callback not http", {"To": "+4915112345678", "Body": "x", "StatusCallback": "javascript:1"}, 21609),
    ("validity too long", {"To": "+4915112345678", "Body": "x", "ValidityPeriod": "36001"}, 20001),
    ("validity not a number", {"To": "+4915112345678", "Body": "x", "ValidityPeriod": "soon"}, 20001),
    ("unknown parameter", {"To": "+4915112345678", "Body": "x", "Bodyy": "x"}, 20001),
    ("SmartEncoded not boolean", {"To": "+4915112345678", "Body": "x", "SmartEncoded": "yes"}, 20001),
]  # fmt: skip


@pytest.mark.parametrize(("case", "params", "code"), ERROR_TABLE, ids=[c[0] for c in ERROR_TABLE])
def test_error_table(api_url: str, account: Account, case: str, params: dict, code: int) -> None:
    # given
    params = {"From": account.number, **params}
    params = {name: value for name, value in params.items() if value is not None}
    # when
    response = create(api_url, account, **params)
    # then
    assert response.status_code == 400, case
    error = response.json()
    assert error["code"] == code
    assert error["status"] == 400
    assert error["more_info"].endswith(str(code))
    assert error["message"]


def test_body_of_exactly_1600_characters_is_accepted(api_url: str, account: Account) -> None:
    response = create(api_url, account, To=random_number(), From=account.number, Body="a" * 1600)
    assert response.status_code == 201
    assert response.json()["num_segments"] == 11


def test_from_of_another_account_is_refused(
    api_url: str, account: Account, other_account: Account
) -> None:
    response = create(api_url, account, To=random_number(), From=other_account.number, Body="x")
    assert response.status_code == 400
    assert response.json()["code"] == 21606


@pytest.mark.parametrize(
    "auth",
    [None, ("ACffffffffffffffffffffffffffffffff", "x"), "wrong-token"],
    ids=["no credentials", "unknown account", "wrong token"],
)
def test_bad_credentials_get_20003(api_url: str, account: Account, auth: object) -> None:
    credentials = (account.sid, "0" * 32) if auth == "wrong-token" else auth
    response = httpx.post(
        f"{api_url}/v1/Accounts/{account.sid}/Messages",
        data={"To": random_number(), "From": account.number, "Body": "x"},
        auth=credentials,  # type: ignore[arg-type]
    )
    assert response.status_code == 401
    assert response.json()["code"] == 20003


def test_garbage_authorization_header_gets_20003(api_url: str, account: Account) -> None:
    response = httpx.get(
        f"{api_url}/v1/Accounts/{account.sid}/Messages",
        headers={"authorization": "Basic !!!not-base64"},
    )
    assert response.status_code == 401
    assert response.json()["code"] == 20003


def test_sending_in_another_accounts_path_is_404(
    api_url: str, account: Account, other_account: Account
) -> None:
    response = httpx.post(
        f"{api_url}/v1/Accounts/{other_account.sid}/Messages",
        data={"To": random_number(), "From": other_account.number, "Body": "x"},
        auth=account.auth,
    )
    assert response.status_code == 404
    assert response.json()["code"] == 20404


def test_idempotency_key_returns_the_first_message(
    api_url: str, account: Account, idempotency_key: str
) -> None:
    # given
    params = {"To": random_number(), "From": account.number, "Body": "once"}
    headers = {"Idempotency-Key": idempotency_key}
    url = f"{api_url}/v1/Accounts/{account.sid}/Messages"
    # when
    first = httpx.post(url, data=params, headers=headers, auth=account.auth)
    second = httpx.post(url, data=params, headers=headers, auth=account.auth)
    # then
    assert first.status_code == second.status_code == 201
    assert first.json()["sid"] == second.json()["sid"]
    listed = httpx.get(url, params={"To": params["To"]}, auth=account.auth).json()
    assert [m["sid"] for m in listed["messages"]] == [first.json()["sid"]]


def test_idempotency_key_with_other_parameters_is_refused(
    api_url: str, account: Account, idempotency_key: str
) -> None:
    url = f"{api_url}/v1/Accounts/{account.sid}/Messages"
    headers = {"Idempotency-Key": idempotency_key}
    to = random_number()
    httpx.post(
        url,
        data={"To": to, "From": account.number, "Body": "a"},
        headers=headers,
        auth=account.auth,
    )
    again = httpx.post(
        url,
        data={"To": to, "From": account.number, "Body": "b"},
        headers=headers,
        auth=account.auth,
    )
    assert again.status_code == 422
    assert again.json()["code"] == 20409


def test_idempotency_keys_are_per_account(
    api_url: str, account: Account, other_account: Account, idempotency_key: str
) -> None:
    headers = {"Idempotency-Key": idempotency_key}
    sids = set()
    for who in (account, other_account):
        response = httpx.post(
            f"{api_url}/v1/Accounts/{who.sid}/Messages",
            data={"To": "+4915112345678", "From": who.number, "Body": "same"},
            headers=headers,
            auth=who.auth,
        )
        assert response.status_code == 201
        sids.add(response.json()["sid"])
    assert len(sids) == 2


def test_concurrent_requests_with_one_key_make_one_message(
    api_url: str, account: Account, idempotency_key: str
) -> None:
    # given
    from concurrent.futures import ThreadPoolExecutor

    url = f"{api_url}/v1/Accounts/{account.sid}/Messages"
    params = {"To": random_number(), "From": account.number, "Body": "race"}

    def send(_: int) -> httpx.Response:
        return httpx.post(
            url, data=params, headers={"Idempotency-Key": idempotency_key}, auth=account.auth
        )

    # when
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(send, range(16)))
    # then
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["sid"] for r in responses}) == 1
