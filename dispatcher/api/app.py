"""The dispatcher's HTTP application: routes, and one place that turns errors into envelopes."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException

from dispatcher.api.messages.routes import twilio_router, v1_router
from dispatcher.api.metrics import exposition
from dispatcher.api.numbers import optouts
from dispatcher.api.numbers.routes import twilio_numbers_router, v1_numbers_router
from dispatcher.api.openapi import install
from dispatcher.api.receipts import router as receipts_router
from dispatcher.api.server import lifespan
from dispatcher.api.services.routes import router as services_router
from dispatcher.errors import ApiError, NotFound
from schemas.db import session_scope
from workers.app import app as celery_app
from workers.carriers import connectivity
from workers.carriers import health as carrier_health

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 2.0  # a readiness probe must answer before the orchestrator gives up


def _envelope(error: ApiError) -> JSONResponse:
    return JSONResponse(error.envelope(), status_code=error.http_status)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _envelope(exc)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _envelope(NotFound(f"The requested resource {request.url.path} was not found"))
    return _envelope(
        ApiError(str(exc.detail), code=20000 + exc.status_code, http_status=exc.status_code)
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    return _envelope(ApiError(f"Invalid request: {where}: {first.get('msg', 'invalid')}"))


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    error = ApiError("The service is briefly unavailable; retry", code=20503, http_status=503)
    response = _envelope(error)
    response.headers["retry-after"] = "1"
    return response


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _envelope(
        ApiError("Internal error; the request may be retried", code=20500, http_status=500)
    )


async def error_answer(request: Request, exc: Exception) -> JSONResponse:
    """What the handlers ``create_app`` installs answer for ``exc``, for code outside
    FastAPI's routing (dispatcher/api/fast_path.py)."""
    if isinstance(exc, ApiError):
        return await _api_error(request, exc)
    if isinstance(exc, OperationalError | InterfaceError):
        return await _database_down(request, exc)
    return await _unexpected(request, exc)


def database_ready() -> bool:
    try:
        with session_scope() as session:
            session.execute(text("SELECT 1"))
    except Exception:
        log.warning("readiness: database unreachable", exc_info=True)
        return False
    return True


def broker_ready() -> bool:
    try:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=READY_TIMEOUT_S)
    except Exception:
        log.warning("readiness: broker unreachable", exc_info=True)
        return False
    return True


def carrier_ready() -> str:
    """`ok`, or since when the carrier refuses our credentials or no carrier connection is up
    (as the workers recorded it)."""
    try:
        with session_scope() as session:
            refusal = carrier_health.current(session)
            down = connectivity.down(connectivity.current(session))
    except Exception:
        return "unknown"  # the database check says why
    if refusal is not None:
        return f"refuses our credentials since {refusal}"
    if down:
        return "; ".join(f"{name} {connectivity.describe(state)}" for name, state in down.items())
    return "ok"


def create_app() -> FastAPI:
    app = FastAPI(
        title="mycpaas dispatch",
        summary="Self-hosted SMS/MMS: a Twilio-compatible Messages API over a Celery pipeline",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.include_router(v1_router)
    app.include_router(twilio_router)
    app.include_router(v1_numbers_router)
    app.include_router(twilio_numbers_router)
    app.include_router(optouts.router)
    app.include_router(services_router)
    app.include_router(receipts_router)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OperationalError, _database_down)  # connection lost, server down
    app.add_exception_handler(InterfaceError, _database_down)
    app.add_exception_handler(Exception, _unexpected)
    install(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        """The database and the broker are reachable and the carrier takes our credentials
        (503 naming the failing part otherwise)."""
        checks = {
            "database": "ok" if database_ready() else "unavailable",
            "broker": "ok" if broker_ready() else "unavailable",
            "carrier": carrier_ready(),
        }
        status = 200 if all(value == "ok" for value in checks.values()) else 503
        return JSONResponse(checks, status_code=status)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        """Queues, messages by status, stage latencies and outcomes, for Prometheus."""
        with session_scope() as session:
            body = exposition(session)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return app
