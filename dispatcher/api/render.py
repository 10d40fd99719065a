"""How a message looks on each API surface: ``/v1`` (ISO 8601) and Twilio's ``/2010-04-01``."""

from datetime import UTC, datetime

from sqlmodel import col, select

from schemas.db import session_scope
from schemas.models import Callback, CallbackAttempt, Media, Message, PhoneNumber
from workers.pipeline.transitions import API_VERSION


def v1_path(account_sid: str) -> str:
    return f"/v1/Accounts/{account_sid}/Messages"


def twilio_path(account_sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}/Messages"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _rfc2822(moment: datetime | None) -> str | None:
    """``Thu, 24 Aug 2023 05:01:45 +0000``, as ``email.utils.format_datetime`` of a UTC time
    renders it, at a third of its cost (a 1,000-row page renders 3,000 of these)."""
    if moment is None:
        return None
    m = moment.astimezone(UTC)
    return (
        f"{_DAYS[m.weekday()]}, {m.day:02d} {_MONTHS[m.month - 1]} {m.year:04d} "
        f"{m.hour:02d}:{m.minute:02d}:{m.second:02d} +0000"
    )


def v1_message(message: Message) -> dict[str, object]:
    return {
        "sid": message.sid,
        "account_sid": message.account_sid,
        "to": message.to,
        "from": message.from_,
        "body": message.body,
        "status": message.status,
        "direction": message.direction,
        "num_segments": message.num_segments,
        "num_media": message.num_media,
        "encoding": message.encoding,
        "error_code": message.error_code,
        "error_message": message.error_message,
        "validity_period": message.validity_period_s,
        "status_callback": message.status_callback,
        "messaging_service_sid": message.messaging_service_sid,
        "send_at": _iso(message.send_at),
        "date_created": _iso(message.date_created),
        "date_updated": _iso(message.date_updated),
        "date_sent": _iso(message.date_sent),
        "uri": f"{v1_path(message.account_sid)}/{message.sid}",
    }


def twilio_message(message: Message) -> dict[str, object]:
    resource = f"{twilio_path(message.account_sid)}/{message.sid}"
    return {
        "sid": message.sid,
        "account_sid": message.account_sid,
        "api_version": API_VERSION,
        "to": message.to,
        "from": message.from_,
        "body": message.body,
        "status": message.status,
        "direction": message.direction,
        "num_segments": str(message.num_segments),
        "num_media": str(message.num_media),
        "error_code": message.error_code,
        "error_message": message.error_message,
        "messaging_service_sid": message.messaging_service_sid,
        "price": None,
        "price_unit": "USD",
        "date_created": _rfc2822(message.date_created),
        "date_updated": _rfc2822(message.date_updated),
        "date_sent": _rfc2822(message.date_sent),
        "uri": f"{resource}.json",
        "subresource_uris": {"media": f"{resource}/Media.json"},
    }


def callback_ledger(message_sid: str) -> list[dict[str, object]]:
    """The message's callbacks in order, each with its attempts (time, code, latency, error)."""
    with session_scope() as session:
        rows = session.exec(
            select(Callback).where(Callback.message_sid == message_sid).order_by(col(Callback.id))
        ).all()
        ids = [row.id for row in rows]
        attempts = session.exec(
            select(CallbackAttempt)
            .where(col(CallbackAttempt.callback_id).in_(ids))
            .order_by(col(CallbackAttempt.id))
        ).all()
    by_callback: dict[int | None, list[dict[str, object]]] = {}
    for attempt in attempts:
        by_callback.setdefault(attempt.callback_id, []).append(
            {
                "date_attempted": _iso(attempt.date_attempted),
                "url": attempt.url,
                "status_code": attempt.status_code,
                "latency_ms": attempt.latency_ms,
                "error": attempt.error,
                "response_excerpt": attempt.response_excerpt,
            }
        )
    return [
        {
            "id": row.id,
            "status": row.status,
            "url": row.url,
            "webhook_id": row.webhook_id,
            "state": row.state,
            "attempts": row.attempts,
            "next_attempt_at": _iso(row.next_attempt_at),
            "last_status_code": row.last_status_code,
            "last_error": row.last_error,
            "date_created": _iso(row.date_created),
            "attempt_log": by_callback.get(row.id, []),
        }
        for row in rows
    ]


def media_item(item: Media, surface_path: str, suffix: str) -> dict[str, object]:
    """One attachment on either surface (``suffix`` is ``.json`` on Twilio's)."""
    twilio = suffix == ".json"
    stamp = _rfc2822 if twilio else _iso
    return {
        "sid": item.sid,
        "account_sid": item.account_sid,
        "parent_sid": item.message_sid,
        "content_type": item.content_type,
        "size": item.size_bytes,
        "sha256": item.sha256,
        "date_created": stamp(item.date_created),
        "date_updated": stamp(item.date_created),
        "uri": f"{surface_path}/{item.message_sid}/Media/{item.sid}{suffix}",
    }


def media_page(
    items: list[Media], surface_path: str, message_sid: str, suffix: str
) -> dict[str, object]:
    """All of a message's media as one page (ten at most), with Twilio's paging keys."""
    uri = f"{surface_path}/{message_sid}/Media{suffix}"
    return {
        "media_list" if suffix == ".json" else "media": [
            media_item(item, surface_path, suffix) for item in items
        ],
        "page": 0,
        "page_size": 50,
        "start": 0,
        "end": max(len(items) - 1, 0),
        "uri": f"{uri}?PageSize=50&Page=0",
        "first_page_uri": f"{uri}?PageSize=50&Page=0",
        "next_page_uri": None,
        "previous_page_uri": None,
    }


def incoming_number(
    number: PhoneNumber, service_sid: str | None, surface: str
) -> dict[str, object]:
    """One of the account's numbers as an IncomingPhoneNumber (``surface``: ``/v1`` or Twilio's
    ``/2010-04-01``, which renders dates its way)."""
    twilio = surface == f"/{API_VERSION}"
    stamp = _rfc2822 if twilio else _iso
    suffix = ".json" if twilio else ""
    return {
        "sid": number.sid,
        "account_sid": number.account_sid,
        "friendly_name": number.phone_number,
        "phone_number": number.phone_number,
        "api_version": API_VERSION,
        "capabilities": {"voice": False, "sms": True, "mms": True, "fax": False},
        "status": "in-use",
        "segments_per_second": number.segments_per_second,
        "messaging_service_sid": service_sid,
        "sms_url": number.sms_url,
        "sms_method": number.sms_method,
        "sms_fallback_url": number.sms_fallback_url,
        "sms_fallback_method": number.sms_fallback_method,
        "date_created": stamp(number.date_created),
        "date_updated": stamp(number.date_created),
        "uri": f"{surface}/Accounts/{number.account_sid}/IncomingPhoneNumbers/{number.sid}{suffix}",
    }
