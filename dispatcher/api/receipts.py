"""What the carrier pushes to us, with a bearer token: delivery receipts
(``POST /carrier/receipts``) and messages handsets sent (``POST /carrier/inbound``)."""

import hmac
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, JsonValue
from sqlmodel import Session

from dispatcher.api.openapi import CARRIER_AUTH, errors, ok, request_body
from dispatcher.errors import AuthenticationError, BadRequest
from dispatcher.intake.params import JSON, is_http_url, read_json_object, storable
from dispatcher.intake.publish import wake_soon
from schemas.db import session_scope
from schemas.phone import to_e164
from schemas.settings import get_settings
from workers.stages import inbound, receipts
from workers.stages.inbound import MoPart

router = APIRouter(tags=["carrier"])

MAX_RECEIPTS = 5000  # per request; the simulator sends at most 500
MAX_ERROR_CODE = 2**31 - 1  # the receipts.error_code column is a 32-bit integer


class Receipt(BaseModel):
    """One receipt as the OpenAPI document shows it; :func:`_receipt` is what checks it."""

    carrier_id: str = Field(min_length=1, max_length=64, description="The carrier's message id")
    status: str = Field(
        json_schema_extra={"enum": list[JsonValue](sorted(receipts.RECEIPT_STATUSES))}
    )
    error_code: int | None = Field(
        None, ge=0, le=MAX_ERROR_CODE, description="30003, 30005, 30008, …"
    )
    reference: str | None = Field(None, max_length=64, description="Our `<sid>-<n>`")
    done_date: str | None = Field(None, max_length=10, description="YYMMDDhhmm")


class ReceiptBatch(BaseModel):
    """Delivery receipts from the carrier (other keys are ignored)."""

    receipts: list[Receipt] = Field(max_length=MAX_RECEIPTS)


class ReceiptsAccepted(BaseModel):
    received: int = Field(ge=0, description="Receipts stored")


def _receipt(item: object) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise BadRequest("Each receipt must be an object")
    carrier_id, status = item.get("carrier_id"), item.get("status")
    code, reference, done = item.get("error_code"), item.get("reference"), item.get("done_date")
    if not isinstance(carrier_id, str) or not 0 < len(carrier_id) <= 64:
        raise BadRequest("carrier_id must be a string of 1 to 64 characters")
    if status not in receipts.RECEIPT_STATUSES:
        raise BadRequest(f"status must be one of {', '.join(sorted(receipts.RECEIPT_STATUSES))}")
    if code is not None and (
        not isinstance(code, int) or isinstance(code, bool) or not 0 <= code <= MAX_ERROR_CODE
    ):
        raise BadRequest(f"error_code must be an integer from 0 to {MAX_ERROR_CODE}, or null")
    if reference is not None and (not isinstance(reference, str) or len(reference) > 64):
        raise BadRequest("reference must be a string of at most 64 characters")
    if done is not None and (not isinstance(done, str) or len(done) > 10):
        raise BadRequest("done_date must be YYMMDDhhmm")
    for name, text in (("carrier_id", carrier_id), ("reference", reference), ("done_date", done)):
        if text is not None:
            storable(name, text)
    return {"carrier_id": carrier_id, "status": status, "error_code": code,
            "reference": reference, "done_date": done}  # fmt: skip


def _kept(
    store: Callable[[Session, list[dict[str, Any]]], None], rows: list[dict[str, Any]]
) -> None:
    """``rows`` committed by ``store`` (``receipts.store`` or ``inbound.store``)."""
    with session_scope() as session:
        store(session, rows)


def _authorized(authorization: str | None) -> None:
    expected = f"Bearer {get_settings().receipts_token}"
    if authorization is None or not hmac.compare_digest(authorization, expected):
        raise AuthenticationError("A valid carrier bearer token is required")


@router.post(
    "/carrier/receipts",
    responses=ok(ReceiptsAccepted, "The receipts are stored") | errors(400, 401, 413, 415),
    openapi_extra=request_body({JSON: ReceiptBatch}),
)
async def receive(
    request: Request,
    authorization: Annotated[str | None, Depends(CARRIER_AUTH)],
) -> JSONResponse:
    """Delivery receipts from the carrier: ``{"receipts": [{carrier_id, status, …}]}``."""
    _authorized(authorization)
    document = await read_json_object(request)
    batch = document.get("receipts")
    if not isinstance(batch, list) or len(batch) > MAX_RECEIPTS:
        raise BadRequest(f"receipts must be a list of at most {MAX_RECEIPTS} receipts")
    items = [_receipt(item) for item in batch]
    if items:
        await run_in_threadpool(_kept, receipts.store, items)
        wake_soon("receipts")
    return JSONResponse({"received": len(items)})


MAX_INBOUND_BODY = 1600  # characters of one message, as for creates
MAX_MEDIA = 10  # media of one MMS, as Twilio allows
HTTP_CARRIER = "http"  # the inbound_parts.carrier of what gateways post


class InboundMessage(BaseModel):
    """A message a handset sent, as the gateway pushes it (other keys are ignored)."""

    From: str = Field(description="The handset, E.164")
    To: str = Field(description="Our number it was sent to, E.164")
    Body: str = Field("", max_length=MAX_INBOUND_BODY)
    MediaUrl: list[str] = Field(
        [], max_length=MAX_MEDIA,
        description="An MMS's media, http(s) URLs the media stage fetches (through the SSRF guard)",
    )  # fmt: skip


class InboundAccepted(BaseModel):
    received: int = Field(ge=0, description="Messages stored")


def _inbound_part(document: dict[str, Any]) -> MoPart:
    numbers = []
    for name in ("From", "To"):
        value = document.get(name)
        number = to_e164(value) if isinstance(value, str) else None
        if number is None:
            raise BadRequest(f"{name} must be a phone number in E.164 form")
        numbers.append(number)
    body = document.get("Body", "")
    if not isinstance(body, str) or len(body) > MAX_INBOUND_BODY:
        raise BadRequest(f"Body must be a string of at most {MAX_INBOUND_BODY} characters")
    media = document.get("MediaUrl", [])
    if isinstance(media, str):
        media = [media]
    if (not isinstance(media, list) or len(media) > MAX_MEDIA
            or not all(isinstance(url, str) and is_http_url(url) for url in media)):  # fmt: skip
        raise BadRequest(f"MediaUrl must be a list of at most {MAX_MEDIA} http(s) URLs")
    return MoPart(numbers[0], numbers[1], storable("Body", body), media=tuple(media))


@router.post(
    "/carrier/inbound",
    responses=ok(InboundAccepted, "The message is stored") | errors(400, 401, 413, 415),
    openapi_extra=request_body({JSON: InboundMessage}),
)
async def receive_inbound(
    request: Request,
    authorization: Annotated[str | None, Depends(CARRIER_AUTH)],
) -> JSONResponse:
    """A message a handset sent, from a gateway that pushes them over HTTP: ``{"From", "To",
    "Body", "MediaUrl": [...]}``. Stored before the answer; the number's webhook is called from
    there (for an MMS, once the media stage has fetched its media)."""
    _authorized(authorization)
    part = _inbound_part(await read_json_object(request))
    await run_in_threadpool(_kept, inbound.store, [part.row(HTTP_CARRIER)])
    wake_soon("inbound")
    return JSONResponse({"received": 1})
