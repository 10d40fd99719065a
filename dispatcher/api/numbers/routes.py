"""The account's numbers as Twilio's IncomingPhoneNumbers, on ``/v1`` and ``/2010-04-01``: how
the twilio SDK learns the ``PN…`` sid a Messaging Service's pool is given."""

from collections.abc import Sequence
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from dispatcher.api.messages.listing import PAGE_QUERY_DOC, offset_page, page_and_size
from dispatcher.api.messages.routes import AccountDep
from dispatcher.api.numbers.representation import (
    IncomingPhoneNumber,
    IncomingPhoneNumberPage,
    TwilioIncomingPhoneNumber,
    TwilioIncomingPhoneNumberPage,
)
from dispatcher.api.openapi import errors, ok, request_body
from dispatcher.api.render import incoming_number
from dispatcher.api.representation import NUMBER_SID
from dispatcher.errors import BadRequest, InvalidParameter, NotFound
from dispatcher.intake.params import (
    FORM,
    JSON,
    Params,
    is_http_url,
    parse_query,
    read_body,
    reject_unknown,
    single,
)
from schemas.db import session_scope
from schemas.ids import is_sid
from schemas.models import PhoneNumber, ServiceNumber
from schemas.phone import to_e164

LIST_PARAMS = frozenset({"PhoneNumber", "FriendlyName", "Page", "PageSize"})
PAGE_KEY = "incoming_phone_numbers"
LIST_QUERY_DOC = [
    {"name": name, "in": "query", "required": False, "description": description,
     "schema": {"type": "string"}}
    for name, description in [
        ("PhoneNumber", "The number, E.164: lists it alone"),
        ("FriendlyName", "The same as PhoneNumber (a number's friendly name is the number)"),
    ]
] + PAGE_QUERY_DOC  # fmt: skip
NumberSid = Annotated[
    str, Path(description="The number's PN… sid", json_schema_extra={"pattern": NUMBER_SID})
]


def _with_services(
    numbers: Sequence[PhoneNumber],
) -> list[tuple[PhoneNumber, str | None]]:
    """Each number with the Messaging Service whose pool holds it, if any."""
    with session_scope() as session:
        members = session.exec(
            select(ServiceNumber).where(
                col(ServiceNumber.phone_number).in_([n.phone_number for n in numbers])
            )
        ).all()
    service_of = {member.phone_number: member.service_sid for member in members}
    return [(number, service_of.get(number.phone_number)) for number in numbers]


def numbers_router(surface: str, suffix: str) -> APIRouter:
    router = APIRouter(prefix=surface, tags=[surface.strip("/")], responses=errors(401, 404))
    path = "/Accounts/{account_sid}/IncomingPhoneNumbers"
    twilio = bool(suffix)
    number_model = TwilioIncomingPhoneNumber if twilio else IncomingPhoneNumber
    page_model = TwilioIncomingPhoneNumberPage if twilio else IncomingPhoneNumberPage

    @router.get(
        f"{path}{suffix}",
        responses=ok(page_model) | errors(400),
        openapi_extra={"parameters": LIST_QUERY_DOC},
    )
    def list_numbers(request: Request, account: AccountDep) -> JSONResponse:
        """The account's numbers, oldest first; ``PhoneNumber`` or ``FriendlyName`` (both the
        E.164 number) find one."""
        params = parse_query(request.scope["query_string"])
        reject_unknown(params, LIST_PARAMS)
        page, size = page_and_size(params)
        statement = select(PhoneNumber).where(col(PhoneNumber.account_sid) == account)
        filters = []
        for name in ("PhoneNumber", "FriendlyName"):
            raw = single(params, name)
            if raw is not None:
                filters.append((name, raw))
                number = to_e164(raw) or raw
                statement = statement.where(col(PhoneNumber.phone_number) == number)
        statement = statement.order_by(col(PhoneNumber.date_created), col(PhoneNumber.sid))
        with session_scope() as session:
            rows = session.exec(statement.offset(page * size).limit(size + 1)).all()
        shown = _with_services(rows[:size])
        base = f"{surface}/Accounts/{account}/IncomingPhoneNumbers{suffix}"
        numbers = [incoming_number(n, service, surface) for n, service in shown]
        return JSONResponse(
            offset_page(PAGE_KEY, numbers, len(rows) > size, base, filters, page, size)
        )

    @router.get(f"{path}/{{sid}}{suffix}", responses=ok(number_model))
    def fetch_number(sid: NumberSid, account: AccountDep) -> JSONResponse:
        """One of the account's numbers, by its ``PN…`` sid."""
        with session_scope() as session:
            number = _owned(session, account, sid)
        [(found, service)] = _with_services([number])
        return JSONResponse(incoming_number(found, service, surface))

    @router.post(
        f"{path}/{{sid}}{suffix}",
        responses=ok(number_model, "The number, changed") | errors(400, 413, 415),
        openapi_extra=request_body({FORM: NumberUpdate, JSON: NumberUpdate}),
    )
    async def update_number(sid: NumberSid, request: Request, account: AccountDep) -> JSONResponse:
        """Set where messages the number receives go: ``SmsUrl``, ``SmsMethod``,
        ``SmsFallbackUrl``, ``SmsFallbackMethod`` (an empty URL clears it)."""
        changes = number_changes(await read_body(request))

        def run() -> tuple[PhoneNumber, str | None]:
            with session_scope() as session:
                number = _owned(session, account, sid)
                for name, value in changes.items():
                    setattr(number, name, value)
                session.add(number)
                session.commit()
                session.refresh(number)
            [(found, service)] = _with_services([number])
            return found, service

        found, service = await run_in_threadpool(run)
        return JSONResponse(incoming_number(found, service, surface))

    return router


UPDATE_PARAMS = {
    "SmsUrl": "sms_url",
    "SmsMethod": "sms_method",
    "SmsFallbackUrl": "sms_fallback_url",
    "SmsFallbackMethod": "sms_fallback_method",
}


class NumberUpdate(BaseModel):
    """What may change on a number; each given field is changed."""

    SmsUrl: str | None = Field(None, description="http(s) URL; empty clears it")
    SmsMethod: Literal["POST"] | None = Field(None, description="POST (GET is not supported)")
    SmsFallbackUrl: str | None = Field(None, description="http(s) URL; empty clears it")
    SmsFallbackMethod: Literal["POST"] | None = None


def number_changes(params: Params) -> dict[str, str | None]:
    """The columns an update sets, checked (21609 for a URL that is not http(s))."""
    reject_unknown(params, frozenset(UPDATE_PARAMS))
    changes: dict[str, str | None] = {}
    for name, column in UPDATE_PARAMS.items():
        value = single(params, name)
        if value is None:
            continue
        if name.endswith("Url"):
            if value and not is_http_url(value):
                raise InvalidParameter(f"The {name} {value!r} is not a valid http(s) URL.",
                                       code=21609)  # fmt: skip
            changes[column] = value or None
        else:
            if value.upper() != "POST":
                raise BadRequest(f"{name} must be POST: webhooks are posted")
            changes[column] = "POST"
    return changes


def _owned(session: Session, account: str, sid: str) -> PhoneNumber:
    number = (
        session.exec(select(PhoneNumber).where(col(PhoneNumber.sid) == sid)).first()
        if is_sid(sid, "PN")
        else None
    )
    if number is None or number.account_sid != account:
        raise NotFound(f"The requested resource /IncomingPhoneNumbers/{sid} was not found")
    return number


v1_numbers_router = numbers_router("/v1", "")
twilio_numbers_router = numbers_router("/2010-04-01", ".json")
