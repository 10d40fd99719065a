"""Reading request parameters (form or JSON bodies, query strings) as ``name -> [values]``.

Every decoding problem becomes a :class:`BadRequest` here, so no handler sees raw bytes.
"""

import json
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

from fastapi import Request
from pydantic import BaseModel, ValidationError

from dispatcher.errors import ApiError, BadRequest
from schemas.settings import get_settings

Params = dict[str, list[str]]

MAX_URL_CHARS = 2048  # longer URLs are refused by most servers anyway
VALIDITY_MIN_S, VALIDITY_MAX_S = (
    1,
    36000,
)  # Twilio's bounds on ValidityPeriod; the maximum is the default

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

# Postgres stores neither NUL characters nor unpaired surrogates (JSON escapes can make both),
# and an answer quoting an unpaired surrogate cannot be encoded: refused where they come in.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(name: str, value: str) -> str:
    """``value``, refused when it holds a character the database cannot store."""
    if _UNSTORABLE.search(value):
        raise BadRequest(f"Parameter {name!r} holds a NUL character or an unpaired surrogate")
    return value


def _from_pairs(pairs: Iterable[tuple[str, str]]) -> Params:
    params: Params = {}
    for name, value in pairs:
        params.setdefault(storable("name", name), []).append(storable(name, value))
    return params


def _scalar(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise BadRequest(f"Parameter {name} must be a string, number or boolean")


def json_document(raw: bytes) -> object:
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadRequest("The request body is not valid UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc.msg} at {exc.pos}") from exc


def _from_json(raw: bytes) -> Params:
    document = json_document(raw)
    if not isinstance(document, dict):
        raise BadRequest("The JSON body must be an object")
    return params_of(document)


def params_of(document: dict[str, object]) -> Params:
    """A JSON object's parameters as a form's: lists for repeated ones, null as absent."""
    params: Params = {}
    for name, value in document.items():
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        params[storable("name", name)] = [storable(name, _scalar(name, item)) for item in values]
    return params


def parse_query(query: bytes) -> Params:
    """The query's parameters, blank values included (``?Foo=`` names a parameter too)."""
    try:
        pairs = parse_qsl(
            query.decode("ascii"), keep_blank_values=True, errors="strict", max_num_fields=200
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("The query string is not valid percent-encoded UTF-8") from exc
    return _from_pairs(pairs)


async def read_raw(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(f"The request body exceeds {limit} bytes", code=20413, http_status=413)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise ApiError(f"The request body exceeds {limit} bytes", code=20413, http_status=413)
    return bytes(raw)


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def unsupported(content_type: str, *accepted: str) -> ApiError:
    return ApiError(
        f"Unsupported content type {content_type or '(none)'}; send {' or '.join(accepted)}",
        code=20415,
        http_status=415,
    )


async def read_json_object(request: Request, limit: int = 8 * 1024 * 1024) -> dict[str, object]:
    """A JSON object body (machine-to-machine endpoints; the default limit is 8 MiB)."""
    if content_type(request) != JSON:
        raise unsupported(content_type(request), JSON)
    document = json_document(await read_raw(request, limit))
    if not isinstance(document, dict):
        raise BadRequest("The JSON body must be an object")
    return document


async def read_body(request: Request) -> Params:
    """The parameters of a POST body, refusing oversized, undecodable or unknown encodings."""
    raw = await read_raw(request, get_settings().max_request_bytes)
    kind = content_type(request)
    if kind == JSON:
        return _from_json(raw)
    if kind == FORM or (not kind and not raw):
        try:
            text = raw.decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=200)
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest("The form body is not valid percent-encoded UTF-8") from exc
        return _from_pairs(pairs)
    raise unsupported(kind, FORM, JSON)


async def read_typed_body(request: Request, model: type[BaseModel]) -> Params:
    """As :func:`read_body`; a JSON body must besides be what ``model`` describes, the type of
    each value included (a form carries only text: its values are checked one by one where they
    are read). For bodies the document describes with ``model`` itself."""
    if content_type(request) != JSON:
        return await read_body(request)
    raw = await read_raw(request, get_settings().max_request_bytes)
    params = _from_json(raw)
    try:
        model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise BadRequest(f"Parameter {where}: {first['msg']}") from exc
    return params


def reject_unknown(params: Params, known: frozenset[str]) -> None:
    unknown = sorted(set(params) - known)
    if unknown:
        raise BadRequest(f"Unknown parameter: {', '.join(unknown)}")


def single(params: Params, name: str) -> str | None:
    """The parameter's value; repeating a single-valued parameter is an error."""
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"Parameter {name} may be given only once")
    return values[0]


def is_http_url(value: str) -> bool:
    """An absolute http(s) URL with a host (callbacks, media): what a parameter may name."""
    if len(value) > MAX_URL_CHARS or any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a malformed port
    except ValueError:
        return False
    del port
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def validity_period(raw: str, name: str = "ValidityPeriod") -> int:
    """Seconds a message may wait to be sent, within Twilio's bounds."""
    digits = raw.isascii() and raw.isdigit() and len(raw) <= 5  # "٣" and 10**5000 are digits too
    if not digits or not VALIDITY_MIN_S <= int(raw) <= VALIDITY_MAX_S:
        raise BadRequest(f"{name} must be an integer from {VALIDITY_MIN_S} to {VALIDITY_MAX_S}")
    return int(raw)
