"""An MMS a handset sends, against the real database and a real media server: 'receiving' while
the media stage fetches its media through the SSRF guard, then 'received' with its Media stored
and its webhook owed, MediaUrl{N} naming the API's Media resources; media that cannot be fetched
leave it received with the error and a webhook without them."""

from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from schemas.db import session_scope
from schemas.models import callbacks_table, media_table, messages_table, phone_numbers_table
from schemas.settings import get_settings
from tests.media_server import MediaServer, running_media_server
from tests.processes import Account, random_number
from tests.workers.test_inbound import join, store
from workers.stages import media
from workers.stages.inbound import MoPart

m, c = messages_table.c, callbacks_table.c


@pytest.fixture(scope="module")
def media_server() -> Iterator[MediaServer]:
    with running_media_server() as server:
        yield server


@pytest.fixture
def fetcher() -> Iterator[media.Fetcher]:
    fetching = media.Fetcher()
    yield fetching
    fetching.close()


def with_webhook(account: Account) -> None:
    with session_scope() as session:
        session.execute(update(phone_numbers_table)
                        .where(phone_numbers_table.c.phone_number == account.number)
                        .values(sms_url="http://127.0.0.1:9/sms"))  # fmt: skip
        session.commit()


def the_message(handset: str) -> dict[str, object]:
    with session_scope() as session:
        row = session.execute(
            select(m.sid, m.status, m.stage, m.num_media, m.error_code)
            .where(m.from_number == handset)
        ).one()  # fmt: skip
    return dict(row._mapping)


def webhook(sid: object) -> dict[str, str] | None:
    with session_scope() as session:
        found: dict[str, str] | None = session.execute(
            select(c.params).where(c.message_sid == sid)
        ).scalar()
    return found


def fetch_all(fetcher: media.Fetcher) -> None:
    with session_scope() as session:
        while media.fetch_batch(session, fetcher)[0]:
            pass


def test_an_mms_is_received_once_its_media_are_stored(
    account: Account, media_server: MediaServer, fetcher: media.Fetcher
) -> None:
    with_webhook(account)
    handset = random_number()
    urls = (media_server.url("/a.png"), media_server.url("/a.jpg"))
    store(MoPart(handset, account.number, "look", media=urls), carrier="http")
    join()
    # then: receiving, waiting for the media stage, no webhook yet
    message = the_message(handset)
    assert str(message["sid"]).startswith("MM")
    assert (message["status"], message["stage"], message["num_media"]) == ("receiving", "media", 2)
    assert webhook(message["sid"]) is None
    # when: the media stage runs
    fetch_all(fetcher)
    # then: received, both media stored, the webhook names them on the API
    message = the_message(handset)
    assert (message["status"], message["stage"]) == ("received", "done")
    with session_scope() as session:
        stored = session.execute(
            select(media_table.c.sid, media_table.c.content_type)
            .where(media_table.c.message_sid == message["sid"]).order_by(media_table.c.position)
        ).all()  # fmt: skip
    assert [kind for _, kind in stored] == ["image/png", "image/jpeg"]
    params = webhook(message["sid"])
    assert params is not None
    base = get_settings().public_base_url.rstrip("/")
    assert params["NumMedia"] == "2"
    assert params["MediaUrl0"] == (f"{base}/2010-04-01/Accounts/{account.sid}/Messages/"
                                   f"{message['sid']}/Media/{stored[0].sid}")  # fmt: skip
    assert (params["MediaContentType0"], params["MediaContentType1"]) == ("image/png", "image/jpeg")


def test_media_that_cannot_be_fetched_leave_it_received_with_the_error(
    account: Account, media_server: MediaServer, fetcher: media.Fetcher
) -> None:
    with_webhook(account)
    handset = random_number()
    store(MoPart(handset, account.number, "broken", media=(media_server.url("/404"),)),
          carrier="http")  # fmt: skip
    join()
    fetch_all(fetcher)
    message = the_message(handset)
    assert message["status"] == "received"
    assert message["error_code"] is not None
    params = webhook(message["sid"])
    assert params is not None
    assert params["NumMedia"] == "0"
    assert params["Body"] == "broken"
