"""The generic HTTP carrier driver (one request per segment) and the wire pieces drivers share.

This is the wire contract a real carrier gateway must expose, or be adapted to (for instance by
a small proxy in front of an SMPP bind). All bodies are JSON; when a token is configured every
request carries ``Authorization: Bearer <token>``.

``POST {base}/messages`` hands over one segment::

    {"reference": "SM…-1", "to": "+15551234567", "from": "+15557654321", "text": "…",
     "part": 1, "total": 1, "udh_ref": 17, "media": []}

* ``2xx {"carrier_id": "…"}``: accepted. The gateway's receipts name that ``carrier_id``.
* ``4xx {"error_code": 30006, "message": "…"}`` (any 4xx but 401, 403 and 429): rejected for
  good; a missing ``error_code`` is read as 30008 (unknown error).
* ``401`` or ``403``: the gateway refuses the platform's credentials. No message is at fault:
  the call raises :class:`CredentialsRefused` and its segments wait, with backoff.
* ``429`` or ``5xx`` (``Retry-After`` honoured, else 1 s), a connect error or a timeout: deferred;
  the same reference may be sent again. Anything else (``3xx``; redirects are never followed)
  is deferred as well.
* The ``reference`` is the idempotency key: a reference the gateway accepted before must be
  answered with the first ``carrier_id`` and must not reach the handset twice.

``GET {base}/submissions/{reference}``: ``200 {"reference", "carrier_id", "status"}`` when the
gateway knows the reference (``status`` ``"accepted"`` means it took it), ``404`` when it never
accepted it. It must not count as a submission.

Receipts travel the other way: the gateway POSTs
``{"receipts": [{"carrier_id", "reference", "status": "delivered"|"undelivered",
"error_code": int|null, "done_date": "YYMMDDhhmm"}]}`` (UTC) to the platform's
``/carrier/receipts`` with its own bearer token, and re-sends until it gets a 2xx.

One ``submit`` call sends its segments one after another over one keep-alive connection. After
a connect error, a timeout or a 429 the rest of the call is deferred without being sent: an
unreachable or throttling gateway would refuse them too, and a call must not take
``len(submissions) × timeout``. A 5xx defers only its own segment.
"""

import logging
from collections.abc import Sequence
from urllib.parse import quote

import httpx

from workers.carriers.base import (
    Accepted,
    CarrierUnreachable,
    CredentialsRefused,
    Deferred,
    MalformedAnswer,
    PermanentCarrierError,
    Rejected,
    Result,
    Submission,
    TransientCarrierError,
    parse_retry_after,
    sid_of,
    sids_of,
)
from workers.outbound.guard import prompt_transport

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER_S = 1.0  # a deferral without Retry-After: one throttle window of most gateways
DEFAULT_ERROR_CODE = 30008  # Twilio's "unknown error", for a refusal that names no code
EXCERPT_CHARS = 200  # of an unexpected answer's body kept in the error message, for diagnosis


def open_client(
    base_url: str,
    timeout_s: float,
    token: str | None,
    transport: httpx.BaseTransport | None,
) -> httpx.Client:
    """The driver's one keep-alive client; safe to share among a worker's threads."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(
        base_url=base_url,
        timeout=timeout_s,
        headers=headers,
        transport=transport or prompt_transport(),
        follow_redirects=False,
    )


def send(client: httpx.Client, method: str, url: str, body: object = None) -> httpx.Response:
    """The single place where httpx's exceptions become carrier errors."""
    try:
        return client.request(method, url, json=body)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise PermanentCarrierError(f"carrier URL not usable: {exc}") from exc
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise CarrierUnreachable(f"carrier unreachable: {type(exc).__name__}: {exc}") from exc
    except httpx.TransportError as exc:  # timeouts, connections dropped mid-way
        raise TransientCarrierError(f"carrier unreachable: {type(exc).__name__}: {exc}") from exc
    except httpx.RequestError as exc:  # a body that does not decode, redirect loops
        raise MalformedAnswer(f"carrier answer unreadable: {type(exc).__name__}: {exc}") from exc


def check_credentials(response: httpx.Response) -> None:
    """Raise CredentialsRefused for a 401 or 403."""
    if response.status_code in (401, 403):
        raise CredentialsRefused(
            f"HTTP {response.status_code}: {response.text[:EXCERPT_CHARS]}",
            status_code=response.status_code,
        )


def check_status(response: httpx.Response) -> None:
    """Raise for an answer that refuses the request as a whole; return for a 2xx."""
    check_credentials(response)
    code = response.status_code
    if code == 429 or code >= 500:
        raise TransientCarrierError(
            f"carrier answered HTTP {code}",
            status_code=code,
            retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
        )
    if not response.is_success:
        raise PermanentCarrierError(
            f"carrier refused the request: HTTP {code}: {response.text[:EXCERPT_CHARS]}",
            status_code=code,
        )


def json_object(response: httpx.Response) -> dict[str, object]:
    """The answer's JSON object, or MalformedAnswer."""
    try:
        body = response.json()
    except ValueError as exc:
        raise MalformedAnswer(
            f"carrier answer is not JSON: {response.text[:EXCERPT_CHARS]!r}",
            status_code=response.status_code,
        ) from exc
    if not isinstance(body, dict):
        raise MalformedAnswer(
            f"carrier answer is not a JSON object: {response.text[:EXCERPT_CHARS]!r}",
            status_code=response.status_code,
        )
    return body


def wire_submission(submission: Submission) -> dict[str, object]:
    return {
        "reference": submission.reference,
        "to": submission.to,
        "from": submission.from_,
        "text": submission.text,
        "part": submission.part,
        "total": submission.total,
        "udh_ref": submission.udh_ref,
        "media": list(submission.media),
    }


def lookup_reference(client: httpx.Client, reference: str) -> Accepted | None:
    """``GET /submissions/{reference}``: what the carrier accepted under it, None if nothing."""
    response = send(client, "GET", f"/submissions/{quote(reference, safe='')}")
    if response.status_code == 404:
        return None
    check_status(response)
    body = json_object(response)
    if body.get("status", "accepted") != "accepted":
        return None
    carrier_id = body.get("carrier_id")
    if not isinstance(carrier_id, str) or not carrier_id:
        raise MalformedAnswer(f"lookup of {reference} names no carrier_id: {body!r}")
    return Accepted(reference, carrier_id)


class ClientDriver:
    """What both HTTP drivers share: one keep-alive client, lookup by reference, close."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = open_client(base_url, timeout_s, token, transport)

    def lookup(self, reference: str) -> Accepted | None:
        return lookup_reference(self._client, reference)

    def close(self) -> None:
        self._client.close()


class HttpCarrierDriver(ClientDriver):
    """One ``POST /messages`` per segment, on one keep-alive client."""

    def submit(self, submissions: Sequence[Submission]) -> list[Result]:
        results: list[Result] = []
        for position, submission in enumerate(submissions):
            try:
                response = send(self._client, "POST", "/messages", wire_submission(submission))
            except TransientCarrierError as exc:
                return results + _defer_rest(submissions[position:], exc.retry_after_s, exc.message)
            try:
                check_credentials(response)
            except CredentialsRefused as exc:
                if not results:
                    raise
                return results + _defer_rest(submissions[position:], None, exc.message)
            if response.status_code == 429:
                retry_after_s = parse_retry_after(response.headers.get("Retry-After"))
                return results + _defer_rest(
                    submissions[position:], retry_after_s, "carrier throttled: HTTP 429"
                )
            results.append(_result(submission.reference, response))
        return results


def _result(reference: str, response: httpx.Response) -> Result:
    code = response.status_code
    if response.is_success:
        try:
            carrier_id = json_object(response).get("carrier_id")
        except MalformedAnswer as exc:
            carrier_id = None
            log.warning("carrier: %s: %s", reference, exc.message, extra={"sid": sid_of(reference)})
        if isinstance(carrier_id, str) and carrier_id:
            return Accepted(reference, carrier_id)
        # It may have taken the segment; sending the same reference again tells us for sure.
        return Deferred(reference, DEFAULT_RETRY_AFTER_S, f"HTTP {code} without a carrier_id")
    if 400 <= code < 500:
        error_code, message = _refusal(response)
        return Rejected(reference, error_code, message)
    retry_after_s = parse_retry_after(response.headers.get("Retry-After"))
    return Deferred(
        reference,
        DEFAULT_RETRY_AFTER_S if retry_after_s is None else retry_after_s,
        f"carrier answered HTTP {code}",
    )


def _refusal(response: httpx.Response) -> tuple[int, str]:
    """``error_code`` and ``message`` of a 4xx, with defaults for what it leaves out."""
    fallback = f"carrier refused: HTTP {response.status_code}"
    try:
        body = json_object(response)
    except MalformedAnswer:
        return DEFAULT_ERROR_CODE, fallback
    error_code = body.get("error_code")
    message = body.get("message")
    return (
        error_code
        if isinstance(error_code, int) and not isinstance(error_code, bool)
        else DEFAULT_ERROR_CODE,
        message if isinstance(message, str) and message else fallback,
    )


def _defer_rest(
    submissions: Sequence[Submission], retry_after_s: float | None, message: str
) -> list[Result]:
    """Defer a call's remaining segments unsent: the gateway would not take them either."""
    wait_s = DEFAULT_RETRY_AFTER_S if retry_after_s is None else retry_after_s
    log.warning(
        "carrier: %s deferred (%s); %d more of the call not sent",
        submissions[0].reference,
        message,
        len(submissions) - 1,
        extra={"sids": sids_of(submissions)},
    )
    return [Deferred(submission.reference, wait_s, message) for submission in submissions]
