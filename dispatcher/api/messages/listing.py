"""Listing messages: filters, newest first, and keyset page tokens so deep pages stay cheap.

A page token names the row at a page's edge, ``(date_created, sid)``, and the side to read:
``PA…`` the rows after it in list order (older), ``PB…`` the rows before it (newer).
"""

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import quote, urlencode

from sqlalchemy import Select, select, tuple_
from sqlmodel import col

from dispatcher.errors import BadRequest
from dispatcher.intake.params import Params, reject_unknown, single
from schemas.db import session_scope
from schemas.models import Message
from schemas.phone import to_e164
from schemas.status import MessageStatus

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000  # larger requests are clamped, as Twilio's SDK sends list(limit=5000) as is
MAX_PAGE = 10**9  # Page × PageSize stays far inside Postgres' bigint OFFSET
INTEGER_DIGITS = 18  # a longer number is past every bound here (and int() refuses 4,300 digits)
LIST_PARAMS = frozenset(
    {"To", "From", "DateSent", "DateSent<", "DateSent>", "Status", "Page", "PageSize", "PageToken"}
)
_DATE = "YYYY-MM-DD (the whole day) or an ISO 8601 date-time"
# The same parameters as the OpenAPI document describes them; a blank one counts as absent.
LIST_QUERY_DOC = [
    {"name": name, "in": "query", "required": False, "allowEmptyValue": True,
     "description": description, "schema": schema}
    for name, description, schema in [
        ("To", "Messages to this number (E.164)", {"type": "string"}),
        ("From", "Messages from this number (E.164)", {"type": "string"}),
        ("DateSent", f"Sent that day or at that instant: {_DATE}", {"type": "string"}),
        ("DateSent<", f"Sent on or before: {_DATE}", {"type": "string"}),
        ("DateSent>", f"Sent on or after: {_DATE}", {"type": "string"}),
        ("Status", "Messages in this status", {"enum": [s.value for s in MessageStatus]}),
        ("Page", "0-based page number; follow the next page's link instead for deep pages",
         {"type": "integer", "minimum": 0, "maximum": MAX_PAGE, "default": 0}),
        ("PageSize", f"Records per page, clamped to 1..{MAX_PAGE_SIZE}",
         {"type": "integer", "minimum": 0, "default": DEFAULT_PAGE_SIZE}),
        ("PageToken", "Where the page starts: taken from next_page_uri or previous_page_uri",
         {"type": "string"}),
    ]
]  # fmt: skip
# How every other list (services, numbers) documents its paging.
PAGE_QUERY_DOC = [p for p in LIST_QUERY_DOC if p["name"] in ("Page", "PageSize")]


@dataclass(frozen=True)
class Token:
    after: bool  # True: rows older than the edge; False: rows newer than it
    date_created: datetime
    sid: str

    def encode(self) -> str:
        raw = f"{self.date_created.isoformat()}|{self.sid}".encode()
        return ("PA" if self.after else "PB") + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> "Token":
        try:
            raw = base64.urlsafe_b64decode(value[2:] + "=" * (-len(value[2:]) % 4)).decode()
            created, sid = raw.split("|")
            moment = datetime.fromisoformat(created)
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise BadRequest("Invalid PageToken") from exc
        if value[:2] not in ("PA", "PB") or moment.tzinfo is None:
            raise BadRequest("Invalid PageToken")
        return cls(after=value[:2] == "PA", date_created=moment, sid=sid)


@dataclass(frozen=True)
class ListQuery:
    to: str | None = None
    from_: str | None = None
    date_sent: str | None = None
    date_sent_before: str | None = None
    date_sent_after: str | None = None
    status: str | None = None
    page: int = 0
    page_size: int = DEFAULT_PAGE_SIZE
    token: Token | None = None

    def filters(self) -> list[tuple[str, str]]:
        pairs = [
            ("To", self.to),
            ("From", self.from_),
            ("DateSent", self.date_sent),
            ("DateSent<", self.date_sent_before),
            ("DateSent>", self.date_sent_after),
            ("Status", self.status),
        ]
        return [(name, value) for name, value in pairs if value is not None]


@dataclass(frozen=True)
class Page:
    messages: list[Message]
    query: ListQuery
    next_token: Token | None
    previous_token: Token | None


def _phone_filter(params: Params, name: str) -> str | None:
    raw = single(params, name)
    if raw is None:
        return None
    return to_e164(raw) or raw


def _moment(raw: str, name: str) -> tuple[datetime, bool]:
    """The instant a DateSent value names, and whether it was a whole day."""
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), time(), UTC), True
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        # In UTC, as the database compares it: 0001-01-01T00:00+14:00 is before the first day.
        moment = moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise BadRequest(f"{name} must be YYYY-MM-DD or an ISO 8601 date-time") from exc
    return moment, False


def _next_day(moment: datetime) -> datetime:
    """The start of the day after ``moment``'s (the last instant there is, on 9999-12-31)."""
    if moment.date() == date.max:
        return datetime.max.replace(tzinfo=UTC)
    return moment + timedelta(days=1)


def _integer(params: Params, name: str, default: int) -> int:
    raw = single(params, name)
    if not raw:  # absent or blank
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest(f"{name} must be a non-negative integer")
    return int(raw) if len(raw) <= INTEGER_DIGITS else 10**INTEGER_DIGITS


def offset_page(
    key: str, items: Sequence[object], more: bool, base: str, filters: list[tuple[str, str]],
    page: int, size: int,
) -> dict[str, object]:  # fmt: skip
    """A page of a list paged by ``Page``/``PageSize`` (IncomingPhoneNumbers, OptOuts): its
    ``items`` under ``key`` and Twilio's paging keys, each URI keeping the list's filters;
    ``more`` says whether a next page exists."""

    def uri(number: int) -> str:
        pairs = [*filters, ("PageSize", str(size)), ("Page", str(number))]
        return f"{base}?{urlencode(pairs, quote_via=quote, safe='')}"

    return {
        key: items,
        "page": page,
        "page_size": size,
        "start": page * size,
        "end": page * size + max(len(items) - 1, 0),
        "uri": uri(page),
        "first_page_uri": uri(0),
        "next_page_uri": uri(page + 1) if more else None,
        "previous_page_uri": uri(page - 1) if page > 0 else None,
    }


def page_and_size(params: Params) -> tuple[int, int]:
    """``Page`` (0-based, refused past MAX_PAGE) and ``PageSize`` (clamped) of any list: ASCII
    digits only, so neither a superscript nor a number past Postgres' OFFSET range gets to it."""
    page = _integer(params, "Page", 0)
    if page > MAX_PAGE:
        raise BadRequest(f"Page must be at most {MAX_PAGE}")
    return page, max(1, min(MAX_PAGE_SIZE, _integer(params, "PageSize", DEFAULT_PAGE_SIZE)))


def parse_list_query(params: Params) -> ListQuery:
    """The list's filters and paging; unknown names are refused, blank values count as absent."""
    reject_unknown(params, LIST_PARAMS)
    params = {name: [value for value in values if value] for name, values in params.items()}
    status = single(params, "Status")
    if status is not None and status not in MessageStatus.__members__.values():
        raise BadRequest(f"Status must be one of {', '.join(MessageStatus)}")
    for name in ("DateSent", "DateSent<", "DateSent>"):
        raw = single(params, name)
        if raw is not None:
            _moment(raw, name)
    token_raw = single(params, "PageToken")
    page, page_size = page_and_size(params)
    return ListQuery(
        to=_phone_filter(params, "To"),
        from_=_phone_filter(params, "From"),
        date_sent=single(params, "DateSent"),
        date_sent_before=single(params, "DateSent<"),
        date_sent_after=single(params, "DateSent>"),
        status=status,
        page=page,
        page_size=page_size,
        token=Token.decode(token_raw) if token_raw else None,
    )


def _filtered(account_sid: str, query: ListQuery) -> Select[Message]:
    statement = select(Message).where(col(Message.account_sid) == account_sid)
    if query.to is not None:
        statement = statement.where(col(Message.to) == query.to)
    if query.from_ is not None:
        statement = statement.where(col(Message.from_) == query.from_)
    if query.status is not None:
        statement = statement.where(col(Message.status) == query.status)
    sent = col(Message.date_sent)
    if query.date_sent is not None:
        moment, whole_day = _moment(query.date_sent, "DateSent")
        if whole_day:
            statement = statement.where(sent >= moment, sent < _next_day(moment))
        else:
            statement = statement.where(sent == moment)
    if query.date_sent_before is not None:
        moment, whole_day = _moment(query.date_sent_before, "DateSent<")
        bound = sent < _next_day(moment) if whole_day else sent <= moment
        statement = statement.where(bound)
    if query.date_sent_after is not None:
        moment, _ = _moment(query.date_sent_after, "DateSent>")
        statement = statement.where(sent >= moment)
    return statement


def fetch_page(account_sid: str, query: ListQuery) -> Page:
    created, sid = col(Message.date_created), col(Message.sid)
    key = tuple_(created, sid)
    statement = _filtered(account_sid, query)
    token = query.token
    newest_first = token is None or token.after
    if token is not None:
        edge = tuple_(token.date_created, token.sid)
        statement = statement.where(key < edge if token.after else key > edge)
    order = (created.desc(), sid.desc()) if newest_first else (created.asc(), sid.asc())
    statement = statement.order_by(*order).limit(query.page_size + 1)
    if token is None and query.page:
        statement = statement.offset(query.page * query.page_size)
    with session_scope() as session:
        rows = list(session.execute(statement).scalars())
    more = len(rows) > query.page_size
    rows = rows[: query.page_size]
    if not newest_first:
        rows.reverse()
    has_next = more if newest_first else True
    has_previous = query.page > 0 and bool(rows)
    return Page(
        messages=rows,
        query=query,
        next_token=Token(True, rows[-1].date_created, rows[-1].sid) if rows and has_next else None,
        previous_token=Token(False, rows[0].date_created, rows[0].sid) if has_previous else None,
    )


def _uri(path: str, query: ListQuery, page: int, token: Token | None) -> str:
    pairs = [*query.filters(), ("PageSize", str(query.page_size)), ("Page", str(page))]
    if token is not None:
        pairs.append(("PageToken", token.encode()))
    return f"{path}?{urlencode(pairs, quote_via=quote, safe='')}"


def paging(path: str, page: Page) -> dict[str, object]:
    """The paging keys of a list answer; every URI is relative and carries every filter."""
    query = page.query
    start = query.page * query.page_size
    first = replace(query, page=0, token=None)
    return {
        "page": query.page,
        "page_size": query.page_size,
        "start": start,
        "end": start + max(len(page.messages) - 1, 0),
        "uri": _uri(path, query, query.page, query.token),
        "first_page_uri": _uri(path, first, 0, None),
        "next_page_uri": (
            _uri(path, query, query.page + 1, page.next_token) if page.next_token else None
        ),
        "previous_page_uri": (
            _uri(path, query, query.page - 1, page.previous_token) if page.previous_token else None
        ),
    }
