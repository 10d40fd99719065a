"""Fetching and listing messages: filters, keyset paging, isolation between accounts."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from schemas.db import session_scope
from schemas.models import Message
from tests.processes import Account, random_number


def send(api_url: str, account: Account, to: str | None = None, body: str = "x") -> dict:
    response = httpx.post(
        f"{api_url}/v1/Accounts/{account.sid}/Messages",
        data={"To": to or random_number(), "From": account.number, "Body": body},
        auth=account.auth,
    )
    assert response.status_code == 201, response.text
    return response.json()


def list_all(api_url: str, account: Account, **params: object) -> list[dict]:
    """Walk every page through next_page_uri, as a client would."""
    with httpx.Client(base_url=api_url, auth=account.auth) as client:
        page = client.get(f"/v1/Accounts/{account.sid}/Messages", params=params).json()
        messages = list(page["messages"])
        while page["next_page_uri"]:
            page = client.get(page["next_page_uri"]).json()
            messages.extend(page["messages"])
    return messages


def mark_sent(sid: str, moment: datetime, status: str = "sent") -> None:
    with session_scope() as session:
        session.execute(
            update(Message).where(Message.sid == sid).values(date_sent=moment, status=status)  # type: ignore[arg-type]
        )
        session.commit()


def test_fetch_returns_the_message(api_url: str, account: Account) -> None:
    created = send(api_url, account)
    fetched = httpx.get(f"{api_url}{created['uri']}", auth=account.auth)
    assert fetched.status_code == 200
    assert fetched.json() == created


def test_fetch_of_unknown_or_malformed_sid_is_404(api_url: str, account: Account) -> None:
    for sid in ("SM" + "0" * 32, "nonsense", "MM" + "f" * 32):
        response = httpx.get(
            f"{api_url}/v1/Accounts/{account.sid}/Messages/{sid}", auth=account.auth
        )
        assert (response.status_code, response.json()["code"]) == (404, 20404)


def test_another_account_cannot_see_a_message(
    api_url: str, account: Account, other_account: Account
) -> None:
    # given
    mine = send(api_url, account)
    # when: the other account asks in its own path, and in mine
    own_path = httpx.get(
        f"{api_url}/v1/Accounts/{other_account.sid}/Messages/{mine['sid']}", auth=other_account.auth
    )
    my_path = httpx.get(f"{api_url}{mine['uri']}", auth=other_account.auth)
    my_list = httpx.get(f"{api_url}/v1/Accounts/{account.sid}/Messages", auth=other_account.auth)
    own_list = list_all(api_url, other_account)
    # then
    assert own_path.status_code == my_path.status_code == my_list.status_code == 404
    assert own_list == []


def test_list_is_newest_first_and_walks_every_page_once(api_url: str, account: Account) -> None:
    # given
    sids = [send(api_url, account)["sid"] for _ in range(23)]
    # when
    listed = list_all(api_url, account, PageSize=5)
    # then
    assert [m["sid"] for m in listed] == list(reversed(sids))


def test_page_envelope(api_url: str, account: Account) -> None:
    # given
    for _ in range(3):
        send(api_url, account)
    url = f"/v1/Accounts/{account.sid}/Messages"
    # when
    first = httpx.get(f"{api_url}{url}", params={"PageSize": 2}, auth=account.auth).json()
    second = httpx.get(f"{api_url}{first['next_page_uri']}", auth=account.auth).json()
    back = httpx.get(f"{api_url}{second['previous_page_uri']}", auth=account.auth).json()
    # then
    assert (first["page"], first["page_size"], first["start"], first["end"]) == (0, 2, 0, 1)
    assert first["previous_page_uri"] is None
    assert first["first_page_uri"] == f"{url}?PageSize=2&Page=0"
    assert (second["page"], second["start"], len(second["messages"])) == (1, 2, 1)
    assert second["next_page_uri"] is None
    assert [m["sid"] for m in back["messages"]] == [m["sid"] for m in first["messages"]]


def test_page_number_without_token_uses_offset(api_url: str, account: Account) -> None:
    sids = [send(api_url, account)["sid"] for _ in range(5)]
    page = httpx.get(
        f"{api_url}/v1/Accounts/{account.sid}/Messages",
        params={"PageSize": 2, "Page": 1},
        auth=account.auth,
    ).json()
    assert [m["sid"] for m in page["messages"]] == list(reversed(sids))[2:4]


def test_page_size_is_clamped_to_1000(api_url: str, account: Account) -> None:
    send(api_url, account)
    page = httpx.get(
        f"{api_url}/v1/Accounts/{account.sid}/Messages",
        params={"PageSize": 5000},
        auth=account.auth,
    ).json()
    assert page["page_size"] == 1000


def test_filters_to_from_status(api_url: str, account: Account) -> None:
    # given
    target = random_number()
    to_target = [send(api_url, account, to=target)["sid"] for _ in range(3)]
    others = [send(api_url, account)["sid"] for _ in range(2)]
    mark_sent(to_target[0], datetime.now(UTC))
    # when
    by_to = list_all(api_url, account, To=target, PageSize=2)
    by_from = list_all(api_url, account, From=account.number)
    by_status = list_all(api_url, account, Status="sent")
    by_both = list_all(api_url, account, To=target, Status="queued")
    # then
    assert {m["sid"] for m in by_to} == set(to_target)
    assert {m["sid"] for m in by_from} == set(to_target + others)
    assert [m["sid"] for m in by_status] == [to_target[0]]
    assert {m["sid"] for m in by_both} == set(to_target[1:])


def test_next_page_uri_carries_filters_and_encodes_plus(api_url: str, account: Account) -> None:
    target = random_number()
    for _ in range(3):
        send(api_url, account, to=target)
    page = httpx.get(
        f"{api_url}/v1/Accounts/{account.sid}/Messages",
        params={"To": target, "PageSize": 1},
        auth=account.auth,
    ).json()
    assert f"To=%2B{target[1:]}" in page["next_page_uri"]
    assert "PageSize=1" in page["next_page_uri"]
    assert "PageToken=PA" in page["next_page_uri"]


def test_date_sent_filters(api_url: str, account: Account) -> None:
    # given: three messages sent on three days
    day = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    sids = [send(api_url, account)["sid"] for _ in range(3)]
    for offset, sid in enumerate(sids):
        mark_sent(sid, day + timedelta(days=offset))
    send(api_url, account)  # never sent: no date_sent, matches no DateSent filter

    def sids_for(**params: str) -> set[str]:
        return {m["sid"] for m in list_all(api_url, account, **params)}

    # then
    assert sids_for(DateSent="2026-03-11") == {sids[1]}
    assert sids_for(**{"DateSent<": "2026-03-11"}) == {sids[0], sids[1]}
    assert sids_for(**{"DateSent>": "2026-03-11"}) == {sids[1], sids[2]}
    assert sids_for(**{"DateSent>": "2026-03-11T13:00:00Z"}) == {sids[2]}
    assert sids_for(**{"DateSent<": "2026-03-10T11:59:59Z"}) == set()


def test_paging_is_stable_under_concurrent_inserts(api_url: str, account: Account) -> None:
    # given
    before = [send(api_url, account)["sid"] for _ in range(30)]
    # when: a writer keeps inserting while a reader walks the pages
    with ThreadPoolExecutor(1) as pool:
        writer = pool.submit(lambda: [send(api_url, account)["sid"] for _ in range(30)])
        with httpx.Client(base_url=api_url, auth=account.auth) as client:
            page = client.get(f"/v1/Accounts/{account.sid}/Messages", params={"PageSize": 3}).json()
            seen = [m["sid"] for m in page["messages"]]
            while page["next_page_uri"]:
                page = client.get(page["next_page_uri"]).json()
                seen.extend(m["sid"] for m in page["messages"])
        during = writer.result()
    # then: no duplicates, and every message that existed when the walk began is there
    assert len(seen) == len(set(seen))
    assert set(before) <= set(seen)
    assert set(seen) <= set(before) | set(during)


@pytest.mark.parametrize("surface", ["/v1", "/2010-04-01"])
def test_list_of_an_empty_account(api_url: str, account: Account, surface: str) -> None:
    suffix = ".json" if surface != "/v1" else ""
    page = httpx.get(
        f"{api_url}{surface}/Accounts/{account.sid}/Messages{suffix}", auth=account.auth
    ).json()
    assert page["messages"] == []
    assert page["next_page_uri"] is None
