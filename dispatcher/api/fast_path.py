"""Single creates, the API's hot path, answered before FastAPI's routing and dependencies.

A create is the one request a backend sends by the thousand. In front of the application,
``POST …/Accounts/{AccountSid}/Messages`` (and Twilio's ``….json``) is answered by the very
code of its route (:func:`dispatcher.api.messages.routes.created`,
:func:`dispatcher.api.messages.routes.account_of`, the same error handlers), without FastAPI
matching it among every route, solving its dependencies and wrapping it in its middleware:
that machinery cost about a fifth of a create's CPU in the API process (1.06-1.10 ms against
0.84-0.92 per create, ``scripts/bench_creates.py``). Every other request, and the OpenAPI
document that describes this one, is FastAPI's.
"""

import re

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatcher.api.app import create_app, error_answer
from dispatcher.api.messages.routes import account_of, created
from dispatcher.api.render import twilio_message, v1_message
from workers.metrics import HTTP_RESPONSES, recorder

CREATE = re.compile(r"/v1/Accounts/([^/]+)/Messages|/2010-04-01/Accounts/([^/]+)/Messages\.json")


class CreateFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            send = _counted(send)
        hot = scope["type"] == "http" and scope["method"] == "POST"
        match = CREATE.fullmatch(scope["path"]) if hot else None
        if match is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        v1_sid, twilio_sid = match.groups()
        render = v1_message if v1_sid else twilio_message
        try:
            account = await account_of(v1_sid or twilio_sid, request.headers.get("authorization"))
            key = request.headers.get("idempotency-key")
            response = await created(request, account, key, render)
        except Exception as exc:
            response = await error_answer(request, exc)
        await response(scope, receive, send)


def _counted(send: Send) -> Send:
    """``send``, counting the response's status class in ``mycpaas_http_responses``."""

    async def counting(message: Message) -> None:
        if message["type"] == "http.response.start":
            recorder.count(HTTP_RESPONSES, code=f"{message['status'] // 100}xx")
        await send(message)

    return counting


def serving_app() -> CreateFastPath:
    """What the server runs: the application behind the create fast path."""
    return CreateFastPath(create_app())
