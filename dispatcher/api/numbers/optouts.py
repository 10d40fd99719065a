"""``GET /v1/Accounts/{AccountSid}/OptOuts``: the recipients who texted STOP (or were added by
an operator), oldest first; ``PhoneNumber`` finds a recipient's, ``Scope`` one number's or
Messaging Service's."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from dispatcher.api.messages.listing import PAGE_QUERY_DOC, offset_page, page_and_size
from dispatcher.api.messages.routes import AccountDep
from dispatcher.api.numbers.representation import OptOutPage
from dispatcher.api.openapi import errors, ok
from dispatcher.intake.params import parse_query, reject_unknown, single
from schemas.db import session_scope
from schemas.inbound import opt_outs_table
from schemas.phone import to_e164

LIST_PARAMS = frozenset({"PhoneNumber", "Scope", "Page", "PageSize"})
LIST_QUERY_DOC = [
    {"name": name, "in": "query", "required": False, "description": description,
     "schema": {"type": "string"}}
    for name, description in [
        ("PhoneNumber", "A recipient, E.164: the scopes it opted out of"),
        ("Scope", "One of the account's numbers (E.164) or Messaging Services (MG…)"),
    ]
] + PAGE_QUERY_DOC  # fmt: skip

router = APIRouter(prefix="/v1", tags=["v1"], responses=errors(401, 404))
o = opt_outs_table.c


@router.get(
    "/Accounts/{account_sid}/OptOuts",
    responses=ok(OptOutPage) | errors(400),
    openapi_extra={"parameters": LIST_QUERY_DOC},
)
def list_opt_outs(request: Request, account: AccountDep) -> JSONResponse:
    """The account's opted-out recipients, oldest first."""
    params = parse_query(request.scope["query_string"])
    reject_unknown(params, LIST_PARAMS)
    page, size = page_and_size(params)
    statement = select(o.phone_number, o.scope, o.account_sid, o.source, o.date_created).where(
        o.account_sid == account
    )
    filters = []
    for name, column in (("PhoneNumber", o.phone_number), ("Scope", o.scope)):
        raw = single(params, name)
        if raw:
            filters.append((name, raw))
            statement = statement.where(column == (to_e164(raw) or raw))
    statement = statement.order_by(o.date_created, o.phone_number, o.scope)
    with session_scope() as session:
        rows = session.execute(statement.offset(page * size).limit(size + 1)).all()
    shown = [{**row._mapping, "date_created": row.date_created.isoformat()}
             for row in rows[:size]]  # fmt: skip
    base = f"/v1/Accounts/{account}/OptOuts"
    return JSONResponse(offset_page("opt_outs", shown, len(rows) > size, base, filters, page, size))
