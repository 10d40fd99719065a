"""Messaging Services on Twilio's messaging v1 shape (``/v1/Services``), so the twilio SDK works
with ``client.messaging.base_url`` pointed at the platform. The SDK builds
``{base_url}/v1/Services…``, beside the platform's own ``/v1/Accounts/…``: no path is shared.

The account is the one the credentials name (these paths carry none). Lists page Twilio's v1
way: the records under their key and a ``meta`` object whose URLs are absolute, since the SDK
requests ``meta.next_page_url`` as it is.
"""

from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from dispatcher.api.messages.listing import PAGE_QUERY_DOC, page_and_size
from dispatcher.api.openapi import ACCOUNT_AUTH, errors, ok, request_body
from dispatcher.api.representation import NUMBER_SID, SERVICE_SID
from dispatcher.api.services.representation import (
    Service,
    ServiceCreate,
    ServiceCreateJson,
    ServicePage,
    ServicePhoneNumber,
    ServicePhoneNumberCreate,
    ServicePhoneNumberPage,
    ServiceUpdate,
    ServiceUpdateJson,
)
from dispatcher.errors import BadRequest
from dispatcher.intake.accounts import authenticate, recently_verified
from dispatcher.intake.params import (
    FORM,
    JSON,
    Params,
    parse_query,
    read_typed_body,
    reject_unknown,
    single,
)
from dispatcher.intake.services import (
    add_to_pool,
    create_service,
    delete_service,
    find_number,
    find_service,
    list_services,
    pool,
    pool_member,
    remove_from_pool,
    update_service,
)
from schemas.db import session_scope
from schemas.models import MessagingService, PhoneNumber, ServiceNumber
from schemas.phone import country_of

CAPABILITIES = ["SMS", "MMS"]  # what every number of the platform sends

router = APIRouter(prefix="/v1/Services", tags=["messaging v1"], responses=errors(401))

ServiceSid = Annotated[
    str, Path(description="The Messaging Service", json_schema_extra={"pattern": SERVICE_SID})
]
NumberSid = Annotated[
    str, Path(description="The number's PN… sid", json_schema_extra={"pattern": NUMBER_SID})
]


async def authenticated(authorization: Annotated[str | None, Depends(ACCOUNT_AUTH)]) -> str:
    """The account whose credentials the request carries."""
    cached = recently_verified(authorization)
    return cached if cached is not None else await run_in_threadpool(authenticate, authorization)


AccountDep = Annotated[str, Depends(authenticated)]


def _iso(moment: datetime) -> str:
    """Twilio's v1 dates: whole seconds, ``Z`` (the SDK reads no other form)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def service_resource(service: MessagingService, base: str) -> dict[str, object]:
    url = f"{base}/v1/Services/{service.sid}"
    return {
        "sid": service.sid,
        "account_sid": service.account_sid,
        "friendly_name": service.friendly_name,
        "date_created": _iso(service.date_created),
        "date_updated": _iso(service.date_updated),
        "inbound_request_url": service.inbound_request_url,
        "inbound_method": service.inbound_method,
        "fallback_url": service.fallback_url,
        "fallback_method": service.fallback_method,
        "status_callback": service.status_callback,
        "sticky_sender": service.sticky_sender,
        "mms_converter": False,
        "smart_encoding": service.smart_encoding,
        "scan_message_content": "inherit",
        "fallback_to_long_code": False,
        "area_code_geomatch": False,
        "synchronous_validation": service.synchronous_validation,
        "validity_period": service.validity_period_s,
        "url": url,
        "links": {"phone_numbers": f"{url}/PhoneNumbers"},
        "usecase": service.usecase,
        "us_app_to_person_registered": False,
        "use_inbound_webhook_on_number": service.use_inbound_webhook_on_number,
    }


def number_resource(member: ServiceNumber, number: PhoneNumber, base: str) -> dict[str, object]:
    return {
        "sid": number.sid,
        "account_sid": number.account_sid,
        "service_sid": member.service_sid,
        "date_created": _iso(member.date_created),
        "date_updated": _iso(member.date_created),
        "phone_number": number.phone_number,
        "country_code": country_of(number.phone_number),
        "capabilities": CAPABILITIES,
        "url": f"{base}/v1/Services/{member.service_sid}/PhoneNumbers/{number.sid}",
    }


def _paging(params: Params) -> tuple[int, int]:
    reject_unknown(params, frozenset({"Page", "PageSize"}))
    return page_and_size(params)


def _page(key: str, records: list[dict[str, object]], url: str, page: int, size: int,
          more: bool) -> dict[str, object]:  # fmt: skip
    def at(number: int) -> str:
        return f"{url}?{urlencode({'PageSize': size, 'Page': number})}"

    return {
        key: records,
        "meta": {
            "page": page,
            "page_size": size,
            "first_page_url": at(0),
            "previous_page_url": at(page - 1) if page > 0 else None,
            "url": at(page),
            "next_page_url": at(page + 1) if more else None,
            "key": key,
        },
    }


@router.post(
    "",
    status_code=201,
    responses=ok(Service, "The service", 201) | errors(400, 413, 415),
    openapi_extra=request_body({FORM: ServiceCreate, JSON: ServiceCreateJson}),
)
async def create(request: Request, account: AccountDep) -> JSONResponse:
    """Create a Messaging Service: ``FriendlyName`` (required), ``StatusCallback``,
    ``StickySender``, ``SmartEncoding``, ``ValidityPeriod`` and Twilio's other fields."""
    params = await read_typed_body(request, ServiceCreateJson)

    def run() -> MessagingService:
        with session_scope() as session:
            return create_service(session, account, params)

    service = await run_in_threadpool(run)
    return JSONResponse(service_resource(service, _base(request)), status_code=201)


@router.get(
    "", responses=ok(ServicePage) | errors(400), openapi_extra={"parameters": PAGE_QUERY_DOC}
)
def list_all(request: Request, account: AccountDep) -> JSONResponse:
    """The account's services, oldest first, paged with Twilio's v1 ``meta``."""
    page, size = _paging(parse_query(request.scope["query_string"]))
    with session_scope() as session:
        services = list_services(session, account, page * size, size + 1)
    base = _base(request)
    records = [service_resource(service, base) for service in services[:size]]
    return JSONResponse(
        _page("services", records, f"{base}/v1/Services", page, size, len(services) > size)
    )


@router.get("/{sid}", responses=ok(Service) | errors(404))
def fetch(sid: ServiceSid, request: Request, account: AccountDep) -> JSONResponse:
    """One service of the account."""
    with session_scope() as session:
        service = find_service(session, account, sid)
    return JSONResponse(service_resource(service, _base(request)))


@router.post(
    "/{sid}",
    responses=ok(Service, "The service, changed") | errors(400, 404, 413, 415),
    openapi_extra=request_body({FORM: ServiceUpdate, JSON: ServiceUpdateJson}),
)
async def update(sid: ServiceSid, request: Request, account: AccountDep) -> JSONResponse:
    """Change any of the service's fields; messages already created keep what they got."""
    params = await read_typed_body(request, ServiceUpdateJson)

    def run() -> MessagingService:
        with session_scope() as session:
            service = find_service(session, account, sid)
            update_service(session, service, params)
            return service

    service = await run_in_threadpool(run)
    return JSONResponse(service_resource(service, _base(request)))


@router.delete("/{sid}", status_code=204, responses=ok(None, "Deleted; no body", 204) | errors(404))
def delete(sid: ServiceSid, account: AccountDep) -> Response:
    """Delete the service and its pool (the numbers stay the account's); 204."""
    with session_scope() as session:
        delete_service(session, find_service(session, account, sid))
    return Response(status_code=204)


@router.post(
    "/{service_sid}/PhoneNumbers",
    status_code=201,
    responses=ok(ServicePhoneNumber, "The number, in the pool", 201)
    | errors(400, 404, 409, 413, 415),
    openapi_extra=request_body({FORM: ServicePhoneNumberCreate, JSON: ServicePhoneNumberCreate}),
)
async def add_number(
    service_sid: ServiceSid, request: Request, account: AccountDep
) -> JSONResponse:
    """Put one of the account's numbers (``PhoneNumberSid=PN…``) in the service's pool; a
    number belongs to one service at most (21710)."""
    params = await read_typed_body(request, ServicePhoneNumberCreate)
    reject_unknown(params, frozenset({"PhoneNumberSid"}))
    number_sid = single(params, "PhoneNumberSid")
    if not number_sid or not number_sid.startswith("PN"):
        raise BadRequest("PhoneNumberSid (PN…) is required")

    def run() -> tuple[ServiceNumber, PhoneNumber]:
        with session_scope() as session:
            service = find_service(session, account, service_sid)
            number = find_number(session, account, number_sid)
            return add_to_pool(session, service, number), number

    member, number = await run_in_threadpool(run)
    return JSONResponse(number_resource(member, number, _base(request)), status_code=201)


@router.get(
    "/{service_sid}/PhoneNumbers",
    responses=ok(ServicePhoneNumberPage) | errors(400, 404),
    openapi_extra={"parameters": PAGE_QUERY_DOC},
)
def list_numbers(service_sid: ServiceSid, request: Request, account: AccountDep) -> JSONResponse:
    """The service's pool, in the order the numbers joined it."""
    page, size = _paging(parse_query(request.scope["query_string"]))
    with session_scope() as session:
        members = pool(session, find_service(session, account, service_sid).sid)
    base = _base(request)
    shown = members[page * size : (page + 1) * size]
    records = [number_resource(member, number, base) for member, number in shown]
    url = f"{base}/v1/Services/{service_sid}/PhoneNumbers"
    return JSONResponse(
        _page("phone_numbers", records, url, page, size, len(members) > (page + 1) * size)
    )


@router.get("/{service_sid}/PhoneNumbers/{sid}", responses=ok(ServicePhoneNumber) | errors(404))
def fetch_number(
    service_sid: ServiceSid, sid: NumberSid, request: Request, account: AccountDep
) -> JSONResponse:
    """One number of the service's pool."""
    with session_scope() as session:
        member, number = pool_member(session, find_service(session, account, service_sid), sid)
    return JSONResponse(number_resource(member, number, _base(request)))


@router.delete(
    "/{service_sid}/PhoneNumbers/{sid}",
    status_code=204,
    responses=ok(None, "Deleted; no body", 204) | errors(404),
)
def remove_number(service_sid: ServiceSid, sid: NumberSid, account: AccountDep) -> Response:
    """Take the number out of the pool (it stays the account's); 204."""
    with session_scope() as session:
        service = find_service(session, account, service_sid)
        _, number = pool_member(session, service, sid)
        remove_from_pool(session, service, number)
    return Response(status_code=204)
