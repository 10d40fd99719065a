"""The operator console: server-rendered pages over the record, behind operators' logins.

``mycpaas console --port 8200`` serves it (its own process, so a network rule can keep it
apart from the API). Every page answers one operator's question (docs/operate.md lists them);
every state-changing request is a POST carrying the session's CSRF token, from an operator or
admin, and is written to the audit log in the transaction that makes the change. Text that came
from a message or a customer's server is escaped by the templates (autoescape), always.
"""

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates

from dispatcher.api.messages.updates import update_message
from dispatcher.console import auth, queries
from dispatcher.errors import ApiError
from dispatcher.intake.publish import wake
from schemas.db import session_scope
from schemas.settings import get_settings
from workers import backlog
from workers.carriers import connectivity
from workers.carriers import health as carrier_health
from workers.carriers.factory import plan_of
from workers.stages import callbacks

COOKIE = "mycpaas_console"
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def mask(number: str | None) -> str:
    """A number as a viewer sees it: its country and last two digits."""
    if not number:
        return ""
    return number if len(number) < 7 else number[:4] + "•" * (len(number) - 6) + number[-2:]


templates.env.filters["mask"] = mask


class LoginRequired(Exception):
    pass


def me(request: Request) -> auth.Who:
    with session_scope() as session:
        found = auth.who(session, request.cookies.get(COOKIE))
    if found is None:
        raise LoginRequired
    return found


Me = Annotated[auth.Who, Depends(me)]


def acting(request: Request, who: Me, csrf: Annotated[str | None, Form()] = None) -> auth.Who:
    """A state-changing request: its CSRF token matches, and its operator may act."""
    if not auth.csrf_ok(who, csrf):
        raise HTTPException(403, "The form is stale or came from another site: reload the page")
    if not who.acts:
        raise HTTPException(403, f"A {who.role} may look, not change anything")
    return who


Acting = Annotated[auth.Who, Depends(acting)]


def page(request: Request, name: str, who: auth.Who, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"me": who, **context})


def create_console() -> FastAPI:
    app = FastAPI(title="mycpaas console", docs_url=None, redoc_url=None, openapi_url=None)
    throttle = auth.Throttle()

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _: LoginRequired) -> Response:
        return RedirectResponse("/login", status_code=303)

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "login.html", {"error": None})

    @app.post("/login")
    def login(request: Request, name: Annotated[str, Form()],
              password: Annotated[str, Form()]) -> Response:  # fmt: skip
        address = request.client.host if request.client else "?"
        try:
            with session_scope() as session:
                token = auth.log_in(session, throttle, name, password, address)
        except auth.NotAllowed as exc:
            return templates.TemplateResponse(request, "login.html", {"error": str(exc)},
                                              status_code=401)  # fmt: skip
        answer = RedirectResponse("/", status_code=303)
        answer.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                          max_age=auth.SESSION_HOURS * 3600,
                          secure=request.url.scheme == "https")  # fmt: skip
        return answer

    @app.post("/logout")
    def logout(request: Request, who: Me, csrf: Annotated[str | None, Form()] = None) -> Response:
        if auth.csrf_ok(who, csrf):
            with session_scope() as session:
                auth.log_out(session, request.cookies.get(COOKIE, ""))
        answer = RedirectResponse("/login", status_code=303)
        answer.delete_cookie(COOKIE, path="/")
        return answer

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request, who: Me) -> HTMLResponse:
        with session_scope() as session:
            figures = queries.overview(session)
        return page(request, "overview.html", who, figures=figures)

    @app.get("/queues", response_class=HTMLResponse)
    def queues(request: Request, who: Me) -> HTMLResponse:
        with session_scope() as session:
            stages = backlog.snapshot(session)
        return page(request, "queues.html", who, stages=stages)

    @app.get("/messages", response_class=HTMLResponse)
    def messages(request: Request, who: Me) -> HTMLResponse:
        search = _search(request)
        with session_scope() as session:
            rows = queries.search(session, search)
        last = rows[-1] if len(rows) == queries.PAGE else None
        after = f"{last.date_created.isoformat()}|{last.sid}" if last else None
        return page(request, "messages.html", who, rows=rows, values=search.values, after=after)

    @app.get("/messages.csv")
    def export(request: Request, who: Me) -> StreamingResponse:
        statement = _search(request).statement()
        with session_scope() as session:
            auth.audit(session, who.name, "export", str(request.url.query))
            session.commit()
        named = {"content-disposition": "attachment; filename=messages.csv"}
        return StreamingResponse(_csv(statement, who), media_type="text/csv", headers=named)

    @app.get("/messages/{sid}", response_class=HTMLResponse)
    def one_message(request: Request, sid: str, who: Me) -> HTMLResponse:
        with session_scope() as session:
            found = queries.message(session, sid)
        if found is None:
            raise HTTPException(404, f"No message {sid}")
        return page(request, "message.html", who, **found)

    @app.post("/messages/{sid}/replay")
    def replay_message(sid: str, who: Acting) -> Response:
        with session_scope() as session:
            count = callbacks.replay(session, message_sid=sid)
            auth.audit(session, who.name, "replay", sid, f"{count} callbacks")
            session.commit()
        wake("callbacks")
        return RedirectResponse(f"/messages/{sid}", status_code=303)

    @app.post("/messages/{sid}/cancel")
    def cancel_message(sid: str, who: Acting) -> Response:
        try:
            owed = update_message(sid, {"Status": ["canceled"]})
        except ApiError as exc:  # not scheduled (any more), or gone
            raise HTTPException(exc.http_status, exc.message) from exc
        with session_scope() as session:
            auth.audit(session, who.name, "cancel", sid)
            session.commit()
        if owed:
            wake("callbacks")
        return RedirectResponse(f"/messages/{sid}", status_code=303)

    @app.get("/callbacks", response_class=HTMLResponse)
    def callback_health(request: Request, who: Me, endpoint: str | None = None) -> HTMLResponse:
        with session_scope() as session:
            table = queries.endpoints(session)
            letters = queries.dead(session, endpoint)
        return page(request, "callbacks.html", who, endpoints=table, dead=letters,
                    endpoint=endpoint or "")  # fmt: skip

    @app.post("/callbacks/replay")
    def replay_dead(who: Acting, ids: Annotated[list[int] | None, Form()] = None,
                    confirm: Annotated[str | None, Form()] = None) -> Response:  # fmt: skip
        with session_scope() as session:
            if ids:
                sids = {row.message_sid for row in queries.dead(session) if row.id in ids}
                count = sum(callbacks.replay(session, message_sid=sid, states=("dead",))
                            for sid in sids)  # fmt: skip
            elif confirm == "all":
                count = callbacks.replay(session, states=("dead",))
            else:
                raise HTTPException(400, "Choose callbacks, or confirm replaying all of them")
            auth.audit(session, who.name, "replay-dead", ",".join(map(str, ids or [])) or "all",
                       f"{count} callbacks")  # fmt: skip
            session.commit()
        wake("callbacks")
        return RedirectResponse("/callbacks", status_code=303)

    @app.get("/carrier", response_class=HTMLResponse)
    def carrier(request: Request, who: Me) -> HTMLResponse:
        with session_scope() as session:
            views = connectivity.current(session)
            refused = carrier_health.current(session)
        plan = plan_of(get_settings())
        return page(request, "carrier.html", who, views=views, refused=refused,
                    connections=plan.connections)  # fmt: skip

    @app.get("/audit", response_class=HTMLResponse)
    def audit(request: Request, who: Me) -> HTMLResponse:
        with session_scope() as session:
            entries = queries.audit_log(session)
        return page(request, "audit.html", who, entries=entries)

    return app


def _search(request: Request) -> queries.Search:
    values = {key: request.query_params.get(key, "") for key in queries.FILTERS}
    after = None
    raw = request.query_params.get("after", "")
    if "|" in raw:
        moment, sid = raw.split("|", 1)
        try:
            after = (datetime.fromisoformat(moment), sid)
        except ValueError:
            after = None
    return queries.Search(values, after)


def _csv(statement: Any, who: auth.Who) -> Iterator[str]:
    """The filtered messages as CSV, read in chunks: memory stays flat however many."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["sid", "account_sid", "to", "from", "status", "direction", "error_code",
                     "body", "date_created"])  # fmt: skip
    with session_scope() as session:
        rows = session.execute(statement.execution_options(yield_per=1000))
        for row in rows:
            to, sender = (
                (row.to, row.from_number) if who.acts else (mask(row.to), mask(row.from_number))
            )
            writer.writerow([row.sid, row.account_sid, to, sender, row.status, row.direction,
                             row.error_code or "", row.body if who.acts else "",
                             row.date_created.isoformat()])  # fmt: skip
            if buffer.tell() > 65536:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()
