"""Replies to inbound messages, against the real database: the automatic reply to a keyword
(Twilio's text, an account's, a service's, none), the replies a webhook's TwiML answer asks for,
made once under the delivery's lease, what cannot be sent recorded on the inbound message, and
a failed webhook's fallback (once) or retries (until MYCPAAS_INBOUND_WEBHOOK_TTL_S)."""

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from schemas.db import session_scope
from schemas.inbound import keyword_replies_table
from schemas.models import (
    MessagingService,
    ServiceNumber,
    callbacks_table,
    message_events_table,
    messages_table,
    phone_numbers_table,
    segments_table,
)
from schemas.types import utcnow
from tests.processes import Account, random_number
from tests.workers.test_inbound import inbound_from, join, store, with_webhook
from workers.stages.inbound import MoPart
from workers.twoway import replies
from workers.twoway.optouts import opt_out
from workers.webhooks import outcomes

m, c = messages_table.c, callbacks_table.c
XML = "text/xml"


def replies_to(handset: str) -> list[dict[str, Any]]:
    with session_scope() as session:
        rows = session.execute(
            select(m.sid, m.body, m.from_number, m.direction, m.status, m.stage,
                   m.status_callback, m.num_media, m.messaging_service_sid)
            .where(m.to == handset).order_by(m.date_created, m.sid)
        ).all()  # fmt: skip
    return [dict(row._mapping) for row in rows]


def texted(account: Account, body: str) -> str:
    handset = random_number()
    store(MoPart(handset, account.number, body))
    join()
    return handset


def test_keywords_get_twilios_replies_even_after_stop(account: Account) -> None:
    handset = texted(account, "stop")
    [reply] = replies_to(handset)
    assert reply["body"] == replies.DEFAULT_TEXTS["STOP"]
    assert (reply["direction"], reply["status"], reply["from_number"]) == (
        "outbound-reply", "queued", account.number
    )  # fmt: skip
    # ready for the carrier stage, its segments stored with it
    assert reply["stage"] == "carrier"
    with session_scope() as session:
        segments = session.execute(
            select(segments_table.c.number).where(segments_table.c.message_sid == reply["sid"])
        ).all()
    assert len(segments) == 1
    store(MoPart(handset, account.number, "HELP"))
    join()
    assert [r["body"] for r in replies_to(handset)][1] == replies.DEFAULT_TEXTS["HELP"]
    # a body that only contains a keyword gets no reply
    assert replies_to(texted(account, "please stop the noise")) == []


def set_text(scope: str, keyword: str, text: str) -> None:
    with session_scope() as session:
        session.execute(insert(keyword_replies_table).values(
            scope=scope, keyword=keyword, text=text, date_updated=utcnow()))  # fmt: skip
        session.commit()


def test_a_service_text_comes_before_its_accounts_and_empty_sends_none(account: Account) -> None:
    set_text(account.sid, "HELP", "Call us on 0800 123")
    set_text(account.sid, "START", "")
    assert [r["body"] for r in replies_to(texted(account, "info"))] == ["Call us on 0800 123"]
    assert replies_to(texted(account, "start")) == []
    # the number joins a Messaging Service with its own HELP text
    service = "MG" + random_number()[1:].rjust(32, "0")
    with session_scope() as session:
        session.add(MessagingService(sid=service, account_sid=account.sid, friendly_name="svc"))
        session.flush()
        session.add(ServiceNumber(service_sid=service, phone_number=account.number))
        session.commit()
    set_text(service, "HELP", "Service help")
    [reply] = replies_to(texted(account, "help"))
    assert (reply["body"], reply["messaging_service_sid"]) == ("Service help", service)


def delivering(handset: str) -> tuple[int, Any]:
    """Claim the webhook of the handset's message as a delivery would: (id, lease)."""
    [message] = inbound_from(handset)
    lease = utcnow() + timedelta(seconds=30)
    with session_scope() as session:
        row = session.execute(
            update(callbacks_table).where(c.message_sid == message["sid"])
            .values(state="delivering", next_attempt_at=lease).returning(callbacks_table)
        ).one()  # fmt: skip
        session.commit()
    return row, lease


def answer(row: Any, lease: Any, text: str, content_type: str = XML) -> None:
    outcome = outcomes.attempted(row, lease, 200, 3.0, None, None, "delivered", text[:20],
                                  (content_type, text))  # fmt: skip
    with session_scope() as session:
        outcomes.record(session, [outcome])


def test_a_twiml_answer_is_sent_once_however_often_it_is_recorded(account: Account) -> None:
    with_webhook(account, "http://127.0.0.1:9/sms")
    handset = texted(account, "what are your hours?")
    row, lease = delivering(handset)
    twiml = (
        '<Response><Message action="https://example.test/status">9 to 5</Message>'
        f'<Message to="{handset}"><Body>Photo</Body><Media>https://m.test/a.png</Media>'
        "</Message></Response>"
    )
    # when: the answer is recorded, and again (a flush retried after its commit was lost)
    answer(row, lease, twiml)
    answer(row, lease, twiml)
    # then: two replies, once each: text to the carrier stage, MMS to the media stage
    got = sorted(replies_to(handset), key=lambda r: r["body"])
    assert [(r["body"], r["direction"], r["stage"]) for r in got] == [
        ("9 to 5", "outbound-reply", "carrier"), ("Photo", "outbound-reply", "media")
    ]  # fmt: skip
    assert {r["body"]: r["status_callback"] for r in got}["9 to 5"] == "https://example.test/status"
    assert {r["body"]: r["num_media"] for r in got} == {"9 to 5": 0, "Photo": 1}
    with session_scope() as session:
        state = session.execute(select(c.state).where(c.id == row.id)).scalar()
    assert state == "delivered"


def test_an_answer_recorded_after_its_lease_ran_out_sends_nothing(account: Account) -> None:
    with_webhook(account, "http://127.0.0.1:9/sms")
    handset = texted(account, "late?")
    row, lease = delivering(handset)
    answer(row, lease - timedelta(seconds=1), "<Response><Message>late</Message></Response>")
    assert replies_to(handset) == []


def problems_of(handset: str) -> tuple[Any, list[int]]:
    [message] = inbound_from(handset)
    e = message_events_table.c
    with session_scope() as session:
        codes = session.execute(
            select(e.error_code).where(e.message_sid == message["sid"], e.error_code.is_not(None))
            .order_by(e.id)
        ).scalars()  # fmt: skip
        return message["error_code"], list(codes)


@pytest.mark.parametrize(
    ("text", "content_type", "codes"),
    [
        ("<Response><Message>unclosed", XML, [12100]),
        ("ok", "text/plain", [12300]),
        ('<Response><Message from="+15005550999">x</Message></Response>', XML, [12200]),
    ],
)
def test_what_an_answer_cannot_send_is_recorded_on_the_inbound_message(
    account: Account, text: str, content_type: str, codes: list[int]
) -> None:
    with_webhook(account, "http://127.0.0.1:9/sms")
    handset = texted(account, "hi")
    answer(*delivering(handset), text, content_type)
    assert replies_to(handset) == []
    assert problems_of(handset) == (codes[0], codes)


def test_a_twiml_reply_to_a_recipient_who_opted_out_is_21610(account: Account) -> None:
    with_webhook(account, "http://127.0.0.1:9/sms")
    handset = texted(account, "hello")
    with session_scope() as session:
        opt_out(session, account.sid, account.number, handset, "operator", utcnow())
        session.commit()
    answer(*delivering(handset), "<Response><Message>hi back</Message></Response>")
    assert replies_to(handset) == []
    assert problems_of(handset) == (21610, [21610])


def fail(row: Any, lease: Any, code: int | None) -> outcomes.Outcome:
    outcome = outcomes.attempted(row, lease, code, 3.0, None, f"HTTP {code}", None)
    with session_scope() as session:
        outcomes.record(session, [outcome])
    return outcome


def webhooks_of(handset: str) -> list[Any]:
    [message] = inbound_from(handset)
    with session_scope() as session:
        return list(
            session.execute(
                select(c.url, c.state, c.params, c.webhook_id, c.next_attempt_at, c.date_created)
                .where(c.message_sid == message["sid"]).order_by(c.id)
            ).all()
        )  # fmt: skip


def test_a_failed_webhook_goes_to_its_fallback_once_whose_answer_replies(
    account: Account,
) -> None:
    with session_scope() as session:
        session.execute(
            update(phone_numbers_table).where(phone_numbers_table.c.phone_number == account.number)
            .values(sms_url="http://127.0.0.1:9/sms", sms_fallback_url="http://127.0.0.1:9/fb")
        )  # fmt: skip
        session.commit()
    handset = texted(account, "anyone there?")
    row, lease = delivering(handset)
    # when: the webhook answers 500, and the same outcome is recorded again
    fail(row, lease, 500)
    fail(row, lease, 500)
    # then: no retry of it; one webhook to the fallback, with Twilio's ErrorCode and ErrorUrl
    first, fallback = webhooks_of(handset)
    assert first.state == "failed"
    assert (fallback.url, fallback.state, fallback.webhook_id) == (
        "http://127.0.0.1:9/fb", "pending", f"{inbound_from(handset)[0]['sid']}.fallback"
    )  # fmt: skip
    assert fallback.params["ErrorCode"] == "11200"
    assert fallback.params["ErrorUrl"] == "http://127.0.0.1:9/sms"
    assert fallback.params["Body"] == "anyone there?"
    # and the fallback's TwiML is sent; were it to fail, there is no fallback of the fallback
    lease = utcnow() + timedelta(seconds=30)
    with session_scope() as session:
        claimed = session.execute(
            update(callbacks_table).where(c.webhook_id == fallback.webhook_id)
            .values(state="delivering", next_attempt_at=lease).returning(callbacks_table)
        ).one()  # fmt: skip
        session.commit()
    answer(claimed, lease, "<Response><Message>Sorry, we are closed</Message></Response>")
    assert [r["body"] for r in replies_to(handset)] == ["Sorry, we are closed"]


def test_without_a_fallback_a_webhook_is_retried_until_its_ttl(account: Account) -> None:
    with_webhook(account, "http://127.0.0.1:9/sms")
    handset = texted(account, "retry me")
    row, lease = delivering(handset)
    # a failure within the TTL is retried
    assert fail(row, lease, None).state == "pending"
    # one whose next try would fall after created + MYCPAAS_INBOUND_WEBHOOK_TTL_S (3600) is dead
    old = SimpleNamespace(**{**row._mapping, "attempts": 8,
                             "date_created": utcnow() - timedelta(seconds=3590)})  # fmt: skip
    with session_scope() as session:
        session.execute(
            update(callbacks_table).where(c.id == row.id)
            .values(state="delivering", next_attempt_at=lease)
        )  # fmt: skip
        session.commit()
    assert fail(old, lease, 503).state == "dead"
    assert [hook.state for hook in webhooks_of(handset)] == ["dead"]
