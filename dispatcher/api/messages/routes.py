"""The Messages resources, served twice: ``/v1`` and the Twilio-compatible ``/2010-04-01``."""

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import WithJsonSchema
from sqlalchemy.orm import defer
from sqlmodel import col, select

from dispatcher.api.messages.listing import LIST_QUERY_DOC, fetch_page, paging, parse_list_query
from dispatcher.api.messages.representation import (
    MEDIA_TYPES,
    TWILIO_SHAPES,
    V1_SHAPES,
    BulkCreate,
    BulkResults,
    CallbackLedger,
    CallbackReplay,
    MessageCreate,
    MessageCreateJson,
    MessageUpdate,
    Shapes,
)
from dispatcher.api.messages.updates import delete_media, delete_message, update_message
from dispatcher.api.openapi import ACCOUNT_AUTH, Responses, errors, ok, request_body
from dispatcher.api.render import (
    callback_ledger,
    media_item,
    media_page,
    twilio_message,
    twilio_path,
    v1_message,
    v1_path,
)
from dispatcher.api.representation import ACCOUNT_SID, MEDIA_SID, MESSAGE_SID
from dispatcher.errors import NotFound, TooManyRequests
from dispatcher.intake import bulk
from dispatcher.intake.accounts import authenticate, recently_verified
from dispatcher.intake.create import MAX_IDEMPOTENCY_KEY_CHARS, create_message
from dispatcher.intake.params import (
    FORM,
    JSON,
    Params,
    content_type,
    json_document,
    parse_query,
    read_body,
    read_raw,
    unsupported,
)
from dispatcher.intake.publish import wake_soon
from dispatcher.intake.ratelimit import admit
from schemas.db import session_scope
from schemas.ids import is_sid
from schemas.models import Media, Message
from schemas.status import MessageStatus
from workers.stages import callbacks

Renderer = Callable[[Message], dict[str, object]]

AccountSid = Annotated[
    str, Path(description="The account", json_schema_extra={"pattern": ACCOUNT_SID})
]
MessageSid = Annotated[
    str, Path(description="The message", json_schema_extra={"pattern": MESSAGE_SID})
]
MediaSid = Annotated[
    str, Path(description="The attachment", json_schema_extra={"pattern": MEDIA_SID})
]
IdempotencyKey = Annotated[
    str | None,
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_CHARS}),
    Header(
        alias="Idempotency-Key",
        description="Repeating a create with the same key (per account) answers the first message",
    ),
]
CREATE_BODY = request_body(
    {FORM: MessageCreate, JSON: MessageCreateJson},
    encoding={"MediaUrl": {"style": "form", "explode": True}},  # MediaUrl=a&MediaUrl=b
)
BULK_BODY = request_body({JSON: BulkCreate})
MEDIA_CONTENT: Responses = {
    200: {
        "description": "The attachment's bytes",
        "content": {
            kind: {"schema": {"type": "string", "format": "binary"}} for kind in MEDIA_TYPES
        },
    }
}


async def account_of(
    account_sid: AccountSid, authorization: Annotated[str | None, Depends(ACCOUNT_AUTH)]
) -> str:
    """The authenticated account, which must be the one in the path (404 otherwise, not 403)."""
    authenticated = recently_verified(authorization) or await run_in_threadpool(
        authenticate, authorization
    )
    if authenticated != account_sid:
        raise NotFound(f"The requested resource /Accounts/{account_sid} was not found")
    return authenticated


AccountDep = Annotated[str, Depends(account_of)]


def bulk_answer(results: list[bulk.Result], render: Renderer) -> dict[str, object]:
    accepted = sum(isinstance(result, Message) for result in results)
    return {
        "accepted": accepted,
        "rejected": len(results) - accepted,
        "results": [
            render(result) if isinstance(result, Message) else result.envelope()
            for result in results
        ],
    }


def admitted_create(account: str, params: Params, idempotency_key: str | None) -> Message:
    if not admit(account):
        raise TooManyRequests("Too many requests for this account; slow down and retry")
    return create_message(account, params, idempotency_key)


async def created(
    request: Request, account: str, idempotency_key: str | None, render: Renderer
) -> JSONResponse:
    """A single create's answer: the message, stored as 'queued' (or 'scheduled'), and the
    pipeline woken for it. The route below and the fast path (dispatcher/api/fast_path.py)."""
    params = await read_body(request)
    message = await run_in_threadpool(admitted_create, account, params, idempotency_key)
    if message.status == MessageStatus.QUEUED:  # a scheduled one is the sweeper's to release
        wake_soon(message.stage, message.sid)
    return JSONResponse(render(message), status_code=201)


def media_of(message_sid: str) -> list[Media]:
    """The message's media without their bytes (metadata is all a list shows)."""
    with session_scope() as session:
        return list(
            session.exec(
                select(Media)
                .options(defer(Media.content))  # type: ignore[arg-type]
                .where(Media.message_sid == message_sid)
                .order_by(col(Media.position))
            ).all()
        )


def load_media(account_sid: str, message_sid: str, media_sid: str, *, content: bool) -> Media:
    """One attachment of the account's message; its bytes only when ``content``."""
    message = load_message(account_sid, message_sid)
    if is_sid(media_sid, "ME"):
        options = [] if content else [defer(Media.content)]  # type: ignore[arg-type]
        with session_scope() as session:
            item = session.get(Media, media_sid, options=options)
        if item is not None and item.message_sid == message.sid:
            return item
    raise NotFound(f"The requested resource /Media/{media_sid} was not found")


def load_message(account_sid: str, sid: str) -> Message:
    if is_sid(sid, "SM") or is_sid(sid, "MM"):
        with session_scope() as session:
            message = session.get(Message, sid)
        if message is not None and message.account_sid == account_sid:
            return message
    raise NotFound(f"The requested resource /Messages/{sid} was not found")


def messages_router(
    prefix: str, suffix: str, render: Renderer, path_of: Callable[[str], str], shapes: Shapes
) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=[prefix.strip("/") or "v1"], responses=errors(401, 404))

    @router.post(
        f"/Accounts/{{account_sid}}/Messages{suffix}",
        status_code=201,
        responses=ok(shapes.message, "The message, queued", 201) | errors(400, 413, 415, 422, 429),
        openapi_extra=CREATE_BODY,
    )
    async def create(
        request: Request, account: AccountDep, idempotency_key: IdempotencyKey = None
    ) -> JSONResponse:
        """Send a message: stored as 'queued' and handed to the pipeline, or, with
        ``ScheduleType=fixed`` and ``SendAt``, stored as 'scheduled' until that time."""
        return await created(request, account, idempotency_key, render)

    if not suffix:  # the /v1 surface only: Twilio has no bulk create

        @router.post(
            "/Accounts/{account_sid}/Messages/Bulk",
            responses=ok(BulkResults, "One result per message, in order")
            | errors(400, 413, 415, 429),
            openapi_extra=BULK_BODY,
        )
        async def create_bulk(request: Request, account: AccountDep) -> JSONResponse:
            """Send up to 1,000 messages at once: each is checked on its own and answered with
            the message or its own error envelope; the accepted ones are stored together."""
            if content_type(request) != JSON:
                raise unsupported(content_type(request), JSON)
            document = json_document(await read_raw(request, bulk.MAX_BODY_BYTES))
            count = len(document) if isinstance(document, list) else 1
            if not await run_in_threadpool(admit, account, count):
                raise TooManyRequests("Too many requests for this account; slow down and retry")
            results = await run_in_threadpool(bulk.create_many, account, document)
            for stage in {
                r.stage for r in results if isinstance(r, Message) and r.status == "queued"
            }:
                wake_soon(stage)
            return JSONResponse(bulk_answer(results, render))

    @router.get(
        f"/Accounts/{{account_sid}}/Messages{suffix}",
        responses=ok(shapes.page) | errors(400),
        openapi_extra={"parameters": LIST_QUERY_DOC},
    )
    def list_messages(request: Request, account: AccountDep) -> JSONResponse:
        """Messages newest first, filtered; follow ``next_page_uri`` for the next page."""
        query = parse_list_query(parse_query(request.scope["query_string"]))
        page = fetch_page(account, query)
        body: dict[str, object] = {"messages": [render(m) for m in page.messages]}
        body.update(paging(f"{path_of(account)}{suffix}", page))
        return JSONResponse(body)

    @router.get(f"/Accounts/{{account_sid}}/Messages/{{sid}}{suffix}", responses=ok(shapes.message))
    def fetch(sid: MessageSid, account: AccountDep) -> JSONResponse:
        """One message of the account."""
        return JSONResponse(render(load_message(account, sid)))

    @router.post(
        f"/Accounts/{{account_sid}}/Messages/{{sid}}{suffix}",
        responses=ok(shapes.message, "The message, canceled or redacted")
        | errors(400, 409, 413, 415),
        openapi_extra=request_body({FORM: MessageUpdate, JSON: MessageUpdate}),
    )
    async def update(sid: MessageSid, request: Request, account: AccountDep) -> JSONResponse:
        """Cancel a scheduled message (``Status=canceled``: 'canceled', with its status
        callback; 30409 in any other status) or redact a settled one (``Body=`` empty: its text
        and its segments' text blanked; 20009 while it still moves)."""
        params = await read_body(request)
        message = await run_in_threadpool(load_message, account, sid)
        if await run_in_threadpool(update_message, message.sid, params):
            wake_soon("callbacks")
        return JSONResponse(render(await run_in_threadpool(load_message, account, sid)))

    @router.delete(
        f"/Accounts/{{account_sid}}/Messages/{{sid}}{suffix}",
        status_code=204,
        responses=ok(None, "Deleted; no body", 204) | errors(409),
    )
    def delete(sid: MessageSid, account: AccountDep) -> Response:
        """Delete a settled message with its segments, media, callbacks and their attempts
        (204); 20009 while it is still in progress."""
        delete_message(load_message(account, sid).sid)
        return Response(status_code=204)

    @router.get(
        f"/Accounts/{{account_sid}}/Messages/{{sid}}/Media{suffix}", responses=ok(shapes.media_list)
    )
    def list_media(sid: MessageSid, account: AccountDep) -> JSONResponse:
        """The message's fetched media (MMS), in the order of its MediaUrl parameters."""
        message = load_message(account, sid)
        return JSONResponse(media_page(media_of(message.sid), path_of(account), sid, suffix))

    @router.get(
        f"/Accounts/{{account_sid}}/Messages/{{sid}}/Media/{{media_sid}}{suffix}",
        responses=ok(shapes.media),
    )
    def fetch_media(sid: MessageSid, media_sid: MediaSid, account: AccountDep) -> JSONResponse:
        """One attachment's metadata: type decided by its bytes, size and sha256."""
        item = load_media(account, sid, media_sid, content=False)
        return JSONResponse(media_item(item, path_of(account), suffix))

    @router.delete(
        f"/Accounts/{{account_sid}}/Messages/{{sid}}/Media/{{media_sid}}{suffix}",
        status_code=204,
        responses=ok(None, "Deleted; no body", 204) | errors(409),
    )
    def delete_attachment(sid: MessageSid, media_sid: MediaSid, account: AccountDep) -> Response:
        """Delete one attachment of a settled message (204); 20009 while it is in progress."""
        item = load_media(account, sid, media_sid, content=False)
        delete_media(item.message_sid, item.sid)
        return Response(status_code=204)

    content_path = "" if suffix else "/Content"  # Twilio serves the bytes without ".json"

    @router.get(
        f"/Accounts/{{account_sid}}/Messages/{{sid}}/Media/{{media_sid}}{content_path}",
        response_class=Response,
        responses=MEDIA_CONTENT,
    )
    def media_content(sid: MessageSid, media_sid: MediaSid, account: AccountDep) -> Response:
        """The attachment's bytes, as fetched."""
        item = load_media(account, sid, media_sid, content=True)
        return Response(item.content, media_type=item.content_type)

    @router.get(
        f"/Accounts/{{account_sid}}/Messages/{{sid}}/Callbacks{suffix}",
        responses=ok(CallbackLedger),
    )
    def list_callbacks(sid: MessageSid, account: AccountDep) -> JSONResponse:
        """Every status callback of the message, each with its log of delivery attempts."""
        message = load_message(account, sid)
        return JSONResponse({"callbacks": callback_ledger(message.sid)})

    @router.post(
        f"/Accounts/{{account_sid}}/Messages/{{sid}}/Callbacks/Replay{suffix}",
        responses=ok(CallbackReplay),
    )
    def replay_callbacks(sid: MessageSid, account: AccountDep) -> JSONResponse:
        """Deliver the message's settled callbacks again, in order, with their webhook-ids."""
        message = load_message(account, sid)
        with session_scope() as session:
            count = callbacks.replay(session, message_sid=message.sid)
        wake_soon("callbacks")
        return JSONResponse({"replayed": count, "callbacks": callback_ledger(message.sid)})

    return router


v1_router = messages_router("/v1", "", v1_message, v1_path, V1_SHAPES)
twilio_router = messages_router("/2010-04-01", ".json", twilio_message, twilio_path, TWILIO_SHAPES)
