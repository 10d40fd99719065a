"""The OpenAPI document: what every operation takes, answers and refuses, and its credentials.

Handlers read raw requests and answer with ``JSONResponse`` (see dispatcher/intake/params.py: no
pydantic on the create path), so FastAPI cannot infer any of this. Each route says it where it
is declared::

    @router.post("/Accounts/{account_sid}/Things/{sid}",
                 responses=ok(Thing) | errors(400, 413, 415),
                 openapi_extra=request_body({FORM: ThingUpdate}))
    def update(sid: MessageSid, account: AccountDep, request: Request) -> JSONResponse: ...

``errors`` takes statuses from :data:`ERRORS`, the one table of refusals and when they happen
(503 is always added); ``AccountDep`` (messages/routes.py) brings HTTP Basic with it, and the
messages router adds 401 and 404 to each of its routes; :func:`request_body` describes a body
the handler reads itself; an operation that answers without a body declares
``ok(None, …, 204)``. :func:`finish` then drops the 422 "Validation Error" FastAPI adds to every
operation with parameters: the API never answers it (app.py answers FastAPI's validation
failures 400, so a route whose parameters FastAPI checks lists 400), and moves the models of
request bodies into the components.
"""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.models import HTTPBase, HTTPBearer
from fastapi.security.base import SecurityBase
from pydantic import BaseModel

from dispatcher.api.representation import Error

REF = "#/components/schemas/"

# Every refusal the API makes, by HTTP status: the body is always the Error envelope.
ERRORS: dict[int, str] = {
    400: "A parameter is missing, invalid or refused: 20001 (malformed body or query, unknown "
    "or refused parameter) or the parameter's own code (21211, 21602, 21701, 35111, …)",
    401: "Missing or wrong credentials (20003)",
    404: "No such resource in this account (20404): another account's are not found either",
    409: "The resource is not in a state that allows it: 20009 (redact or delete a message that "
    "is still in progress), 30409 (cancel a message that is not scheduled), 21710 (the number "
    "is already in another Messaging Service)",
    413: "The body is larger than MYCPAAS_MAX_REQUEST_BYTES (20413)",
    415: "The body is neither a form nor JSON (20415)",
    422: "The Idempotency-Key was used before with other parameters (20409)",
    429: "Over the account's request rate (20429): slow down and retry",
    503: "The database is briefly unreachable (20503): retry after Retry-After seconds",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}

Responses = dict[int | str, dict[str, Any]]


def errors(*statuses: int) -> Responses:
    """The refusals an operation makes, with the envelope; 503 always, as every operation
    reads the database."""
    answers: Responses = {}
    for status in sorted({*statuses, 503}):
        answers[status] = {"model": Error, "description": ERRORS[status]}
        if status in (429, 503):
            answers[status]["headers"] = RETRY_AFTER
    return answers


def ok(model: type[BaseModel] | None, description: str = "OK", status: int = 200) -> Responses:
    """The operation's answer when it succeeds: a JSON body of ``model``, or none (a 204)."""
    if model is None:
        return {status: {"description": description}}
    return {status: {"model": model, "description": description}}


def request_body(
    contents: dict[str, type[BaseModel]], encoding: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``openapi_extra`` describing a required body by media type, for handlers that read the
    body themselves; ``encoding`` applies to the form (e.g. a repeated parameter)."""
    content: dict[str, Any] = {}
    models: dict[str, Any] = {}
    for media_type, model in contents.items():
        schema = model.model_json_schema(ref_template=REF + "{model}")
        models.update(schema.pop("$defs", {}))
        models[model.__name__] = schema
        content[media_type] = {"schema": {"$ref": REF + model.__name__}}
        if encoding and media_type == "application/x-www-form-urlencoded":
            content[media_type]["encoding"] = encoding
    return {"requestBody": {"required": True, "content": content}, "x-models": models}


class AuthorizationHeader(SecurityBase):
    """The ``Authorization`` header as sent, declared in the document as a security scheme.

    fastapi.security's classes would parse it into a model on every request; handlers check
    it their own way (dispatcher/intake/accounts.py keeps recently verified credentials).
    """

    def __init__(self, scheme_name: str, model: HTTPBase) -> None:
        self.scheme_name = scheme_name
        self.model = model

    async def __call__(self, request: Request) -> str | None:
        return request.headers.get("authorization")


ACCOUNT_AUTH = AuthorizationHeader(
    "accountBasic",
    HTTPBase(scheme="basic", description="HTTP Basic: the AccountSid and its AuthToken"),
)
CARRIER_AUTH = AuthorizationHeader(
    "carrierBearer",
    HTTPBearer(description="The carrier's token: MYCPAAS_RECEIPTS_TOKEN"),
)


def _is_phantom(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref") == REF + "HTTPValidationError")


def finish(document: dict[str, Any]) -> dict[str, Any]:
    """Make FastAPI's generated document truthful (in place)."""
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for operations in document["paths"].values():
        for operation in operations.values():
            components.update(operation.pop("x-models", {}))
            if _is_phantom(operation["responses"].get("422", {})):
                del operation["responses"]["422"]
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    return document


def install(app: FastAPI) -> None:
    """Serve the finished document at ``/openapi.json`` (built once, on first request)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = finish(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
