"""Messaging Services (``MG…``): a pool of an account's numbers that picks each message's sender,
and defaults for the messages sent through it (status callback, validity, smart encoding).

Of Twilio's service parameters, ``FriendlyName``, ``StatusCallback``, ``StickySender``,
``SmartEncoding`` and ``ValidityPeriod`` are implemented; the inbound and validation ones are
stored and shown but change nothing sent (the platform receives no messages); those that would
change delivery and are not implemented are accepted only with their no-op value.
"""

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from dispatcher.errors import ApiError, BadRequest, InvalidParameter, NotFound
from dispatcher.intake.params import Params, is_http_url, reject_unknown, single, validity_period
from schemas.ids import is_sid, new_sid
from schemas.models import (
    MessagingService,
    PhoneNumber,
    ServiceNumber,
    sticky_senders_table,
)
from schemas.types import utcnow

MAX_FRIENDLY_NAME = 64  # Twilio's limit
IN_ANOTHER_SERVICE = 21710  # a number belongs to one Messaging Service at most
METHODS = ("GET", "POST")

# Parameter -> the value that changes nothing; any other value would change delivery.
NO_OP_VALUES = {"MmsConverter": "false", "FallbackToLongCode": "false",
                "AreaCodeGeomatch": "false", "ScanMessageContent": "inherit"}  # fmt: skip


def _bool(raw: str, name: str) -> bool:
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise BadRequest(f"Parameter {name} must be true or false")


def _url(raw: str, name: str) -> str | None:
    if not raw:
        return None
    if not is_http_url(raw):
        raise InvalidParameter(f"The {name} {raw!r} is not a valid http(s) URL.", code=21609)
    return raw


def _method(raw: str, name: str) -> str:
    if raw.upper() not in METHODS:
        raise BadRequest(f"Parameter {name} must be GET or POST")
    return raw.upper()


def _friendly_name(raw: str, name: str) -> str:
    if not raw.strip() or len(raw) > MAX_FRIENDLY_NAME:
        raise BadRequest(f"{name} must be 1 to {MAX_FRIENDLY_NAME} characters")
    return raw


@dataclass(frozen=True)
class Field:
    column: str
    read: Callable[[str, str], object]


# Parameter -> the column it sets and how its value is read.
FIELDS = {
    "FriendlyName": Field("friendly_name", _friendly_name),
    "StatusCallback": Field("status_callback", _url),
    "StickySender": Field("sticky_sender", _bool),
    "SmartEncoding": Field("smart_encoding", _bool),
    "ValidityPeriod": Field("validity_period_s", validity_period),
    "InboundRequestUrl": Field("inbound_request_url", _url),
    "InboundMethod": Field("inbound_method", _method),
    "FallbackUrl": Field("fallback_url", _url),
    "FallbackMethod": Field("fallback_method", _method),
    "SynchronousValidation": Field("synchronous_validation", _bool),
    "Usecase": Field("usecase", _friendly_name),
    "UseInboundWebhookOnNumber": Field("use_inbound_webhook_on_number", _bool),
}


def _changes(params: Params) -> dict[str, object]:
    reject_unknown(params, frozenset(FIELDS) | frozenset(NO_OP_VALUES))
    for name, harmless in NO_OP_VALUES.items():
        value = single(params, name)
        if value is not None and value.lower() != harmless:
            raise BadRequest(f"Parameter {name} is supported only as {name}={harmless}")
    changes = {}
    for name, field in FIELDS.items():
        raw = single(params, name)
        if raw is not None:
            changes[field.column] = field.read(raw, name)
    return changes


def create_service(session: Session, account_sid: str, params: Params) -> MessagingService:
    changes = _changes(params)
    if "friendly_name" not in changes:
        raise BadRequest("FriendlyName is required")
    service = MessagingService.model_validate(
        {"sid": new_sid("MG"), "account_sid": account_sid, **changes}
    )
    session.add(service)
    session.commit()
    return service


def update_service(session: Session, service: MessagingService, params: Params) -> None:
    for column, value in _changes(params).items():
        setattr(service, column, value)
    service.date_updated = utcnow()
    session.add(service)
    session.commit()


def find_service(session: Session, account_sid: str, sid: str) -> MessagingService:
    """The account's service ``sid``; another account's is as unknown as none (404)."""
    if is_sid(sid, "MG"):
        service = session.get(MessagingService, sid)
        if service is not None and service.account_sid == account_sid:
            return service
    raise NotFound(f"The requested resource /Services/{sid} was not found")


def list_services(
    session: Session, account_sid: str, offset: int, limit: int
) -> list[MessagingService]:
    return list(
        session.exec(
            select(MessagingService)
            .where(col(MessagingService.account_sid) == account_sid)
            .order_by(col(MessagingService.date_created), col(MessagingService.sid))
            .offset(offset)
            .limit(limit)
        ).all()
    )


def delete_service(session: Session, service: MessagingService) -> None:
    """The service, its pool and its sticky choices; its messages keep its sid."""
    session.execute(
        delete(sticky_senders_table).where(sticky_senders_table.c.service_sid == service.sid)
    )
    session.execute(delete(ServiceNumber).where(col(ServiceNumber.service_sid) == service.sid))
    session.delete(service)
    session.commit()


def find_number(session: Session, account_sid: str, sid_or_number: str) -> PhoneNumber:
    """The account's number by its ``PN…`` sid (or E.164, for the CLI)."""
    column = (
        col(PhoneNumber.sid) if sid_or_number.startswith("PN") else col(PhoneNumber.phone_number)
    )
    number = session.exec(select(PhoneNumber).where(column == sid_or_number)).first()
    if number is None or number.account_sid != account_sid:
        raise NotFound(f"The requested resource /PhoneNumbers/{sid_or_number} was not found")
    return number


def add_to_pool(session: Session, service: MessagingService, number: PhoneNumber) -> ServiceNumber:
    """Put the number in the service's pool (again: no change); one service per number."""
    member = session.get(ServiceNumber, number.phone_number)
    if member is not None and member.service_sid != service.sid:
        raise ApiError(
            f"{number.phone_number} is already in Messaging Service {member.service_sid}",
            code=IN_ANOTHER_SERVICE,
            http_status=409,
        )
    if member is None:
        member = ServiceNumber(phone_number=number.phone_number, service_sid=service.sid)
        session.add(member)
        try:
            session.commit()
        except IntegrityError:  # a concurrent request put the number in a pool first
            session.rollback()
            if session.get(ServiceNumber, number.phone_number) is None:  # no: one was deleted
                raise NotFound(
                    f"Messaging Service {service.sid} or {number.phone_number} was deleted"
                ) from None
            return add_to_pool(session, service, number)
    return member


def pool(session: Session, service_sid: str) -> list[tuple[ServiceNumber, PhoneNumber]]:
    """The service's numbers, oldest member first."""
    rows = session.exec(
        select(ServiceNumber, PhoneNumber)
        .join(PhoneNumber, col(PhoneNumber.phone_number) == col(ServiceNumber.phone_number))
        .where(col(ServiceNumber.service_sid) == service_sid)
        .order_by(col(ServiceNumber.date_created), col(PhoneNumber.sid))
    ).all()
    return [(member, number) for member, number in rows]


def pool_member(
    session: Session, service: MessagingService, number_sid: str
) -> tuple[ServiceNumber, PhoneNumber]:
    for member, number in pool(session, service.sid):
        if number.sid == number_sid:
            return member, number
    raise NotFound(f"The requested resource /PhoneNumbers/{number_sid} was not found")


def remove_from_pool(session: Session, service: MessagingService, number: PhoneNumber) -> None:
    """Take the number out of the pool; destinations stuck to it get a new sender next time."""
    s = sticky_senders_table.c
    session.execute(
        delete(sticky_senders_table).where(
            s.service_sid == service.sid, s.phone_number == number.phone_number
        )
    )
    session.execute(
        delete(ServiceNumber).where(col(ServiceNumber.phone_number) == number.phone_number)
    )
    session.commit()
