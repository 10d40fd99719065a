"""The carrier simulator: a separate HTTP process that takes segments and sends receipts back.

It speaks both driver protocols (``POST /submit``, a batch, for the simulator driver;
``POST /messages``, one segment, for the generic HTTP driver), dedupes by client reference,
and POSTs delivery receipts in batches to ``receipts_url`` some time after acceptance.
Everything is in memory and per process; a restart forgets all of it.

Outcomes by destination number (``to``):

| To             | At submit                     | Receipt                                  |
|----------------|-------------------------------|------------------------------------------|
| `+15005550001` | accepted                      | undelivered, 30003 (unreachable)         |
| `+15005550002` | accepted                      | undelivered, 30005 (unknown destination) |
| `+15005550003` | rejected, 30006 (landline)    | none                                     |
| `+15005550004` | rejected, 30007 (filtered)    | none                                     |
| `+15005550005` | accepted                      | undelivered, 30008 (unknown error)       |
| `+15005550007` | deferred twice, then accepted | delivered                                |
| `+15005550008` | HTTP 429 once, then accepted  | delivered                                |
| `+15005550009` | accepted                      | none, ever                               |
| anything else  | accepted                      | delivered                                |

* +15005550007, transient: the first 2 submissions of each reference answer `deferred` with
  `retry_after_s` 0.2; the third and later are accepted.
* +15005550008, throttled: the first request holding a given reference answers HTTP 429 with
  `Retry-After: 1` for the whole request (every segment in it is refused, none counted);
  later requests with that reference are processed normally.

On ``POST /messages`` a deferral is ``503`` with ``Retry-After: 1`` (HTTP wants whole seconds)
and a rejection is ``400 {"error_code", "message"}``.

Dedupe: a reference already accepted is answered with its first result (the same
``carrier_id``) and gets no second receipt. Deferrals and 429s are not final: a later
submission of the reference may be accepted. ``GET /counters`` counts every submission the
simulator processed per reference, the repeats included, so tests can prove nothing was handed
over twice; segments of a request refused with 429 were not processed and are not counted.

Receipts: ``{"receipts": [{"carrier_id", "reference", "status": "delivered"|"undelivered",
"error_code": int|null, "done_date": "YYMMDDhhmm"}]}`` (UTC), with
``Authorization: Bearer <receipts_token>``, up to ``receipt_batch_max`` per POST on one shared
client. A batch stays pending until the receiver answers 2xx; failures (connect error, timeout,
non-2xx) are retried with backoff from 0.2 s doubling to 5 s. A batch answered 2xx is never sent
again; one whose POST timed out is sent again whole, so receivers dedupe by ``carrier_id``.
Ordering between receipts is not guaranteed.

With ``smsc`` (``mycpaas carrier-sim --smpp-port``) the same process serves SMPP as well:
see :mod:`workers.smsc` for its outcomes, counters (under ``"smpp"`` in ``GET /counters``) and
the ``/smpp/…`` routes that break it for fault tests.

Other routes: ``GET /submissions/{reference}`` (200 ``{"reference", "carrier_id", "status"}``
for an accepted reference, else 404; not counted as a submission), ``GET /counters``
(``?prefix=`` narrows every figure to references starting with it), ``GET /healthz``,
``POST /reset`` (forgets everything; for tests).
"""

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import uvicorn
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from workers.smsc import Smsc, SmscConfig

log = logging.getLogger(__name__)

UNDELIVERED: dict[str, tuple[int, str]] = {
    "+15005550001": (30003, "unreachable destination handset"),
    "+15005550002": (30005, "unknown destination handset"),
    "+15005550005": (30008, "unknown error"),
}
REJECTED: dict[str, tuple[int, str]] = {
    "+15005550003": (30006, "landline or unreachable carrier"),
    "+15005550004": (30007, "message filtered"),
}
TRANSIENT_NUMBER = "+15005550007"
TRANSIENT_DEFERRALS = 2  # submissions of each reference deferred before the one accepted
TRANSIENT_RETRY_AFTER_S = 0.2  # short, so tests of the retry path stay fast
MESSAGES_RETRY_AFTER = "1"  # s, Retry-After of a deferral on /messages: HTTP allows whole seconds
THROTTLED_NUMBER = "+15005550008"
THROTTLE_RETRY_AFTER = "1"  # s, Retry-After of the 429 a throttled request gets
SILENT_NUMBER = "+15005550009"

CARRIER_ID_HEX_BYTES = 12  # 24 hex digits after "SIM", like a real carrier's message id
RECEIPT_TIMEOUT_S = 10.0  # one receipts POST; a slower receiver is retried
RECEIPT_RETRY_FIRST_S = 0.2  # backoff after a failed receipts POST, doubled per failure ...
RECEIPT_RETRY_MAX_S = 5.0  # ... up to this, so a receiver back up is served within seconds
SERVER_KEEPALIVE_S = 30  # longer than httpx's 5 s pool expiry: the client closes idle first


@dataclass(frozen=True)
class SimulatorConfig:
    receipts_url: str  # e.g. "http://127.0.0.1:8000/carrier/receipts"
    receipts_token: str  # sent as "Authorization: Bearer <token>"
    latency_ms: float = 0  # delay before answering each submit request
    receipt_delay_ms: float = 50  # from acceptance to the receipt being due
    receipt_batch_max: int = 500  # receipts per POST

    def __post_init__(self) -> None:
        if self.receipt_batch_max < 1:
            raise ValueError("receipt_batch_max must be at least 1")
        if self.latency_ms < 0 or self.receipt_delay_ms < 0:
            raise ValueError("latency_ms and receipt_delay_ms must not be negative")


class WireSubmission(BaseModel):
    reference: str
    to: str
    from_: str = Field(alias="from")
    text: str
    part: int
    total: int
    udh_ref: int
    media: list[str] = []


class SubmitRequest(BaseModel):
    submissions: list[WireSubmission]


class InjectedReceipt(BaseModel):
    id: str
    stat: str = "DELIVRD"
    err: int = 0


@dataclass(frozen=True)
class _Receipt:
    due: float  # event-loop time at which it may be sent
    carrier_id: str
    reference: str
    status: str
    error_code: int | None

    def wire(self, done_date: str) -> dict[str, object]:
        return {
            "carrier_id": self.carrier_id,
            "reference": self.reference,
            "status": self.status,
            "error_code": self.error_code,
            "done_date": done_date,
        }


@dataclass
class _State:
    """What one simulator process remembers; :meth:`reset` forgets it."""

    received: dict[str, int] = field(default_factory=dict)  # reference -> submissions processed
    accepted: dict[str, str] = field(default_factory=dict)  # reference -> carrier_id
    throttled: set[str] = field(default_factory=set)  # references that have had their 429
    pending: deque[_Receipt] = field(default_factory=deque)  # due order: one constant delay
    in_flight: list[_Receipt] = field(default_factory=list)  # the batch being POSTed
    sent: set[str] = field(default_factory=set)  # references whose receipt got a 2xx
    generation: int = 0  # bumped by reset, so an in-flight batch of before is dropped
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    def reset(self) -> None:
        self.received.clear()
        self.accepted.clear()
        self.throttled.clear()
        self.pending.clear()
        self.in_flight = []
        self.sent.clear()
        self.generation += 1


class _Simulator:
    """Outcomes, dedupe and the receipt queue; every step O(1) per submission."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.state = _State()
        self._receipt_delay_s = config.receipt_delay_ms / 1000

    def throttle(self, submissions: Iterable[WireSubmission]) -> bool:
        """True when the request must answer 429: a throttled number's reference seen first."""
        fresh = [
            item.reference
            for item in submissions
            if item.to == THROTTLED_NUMBER and item.reference not in self.state.throttled
        ]
        self.state.throttled.update(fresh)
        return bool(fresh)

    def process(self, item: WireSubmission) -> dict[str, object]:
        state = self.state
        reference = item.reference
        count = state.received.get(reference, 0) + 1
        state.received[reference] = count
        carrier_id = state.accepted.get(reference)
        if carrier_id is not None:
            return {"reference": reference, "status": "accepted", "carrier_id": carrier_id}
        rejection = REJECTED.get(item.to)
        if rejection is not None:
            code, message = rejection
            return {
                "reference": reference,
                "status": "rejected",
                "error_code": code,
                "message": message,
            }
        if item.to == TRANSIENT_NUMBER and count <= TRANSIENT_DEFERRALS:
            return {
                "reference": reference,
                "status": "deferred",
                "retry_after_s": TRANSIENT_RETRY_AFTER_S,
                "message": "temporary carrier error",
            }
        carrier_id = "SIM" + secrets.token_hex(CARRIER_ID_HEX_BYTES)
        state.accepted[reference] = carrier_id
        if item.to != SILENT_NUMBER:
            code_and_message = UNDELIVERED.get(item.to)
            state.pending.append(
                _Receipt(
                    due=asyncio.get_running_loop().time() + self._receipt_delay_s,
                    carrier_id=carrier_id,
                    reference=reference,
                    status="delivered" if code_and_message is None else "undelivered",
                    error_code=None if code_and_message is None else code_and_message[0],
                )
            )
            state.wakeup.set()
        return {"reference": reference, "status": "accepted", "carrier_id": carrier_id}

    async def answer_after_latency(self) -> None:
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000)

    def counters(self, prefix: str) -> dict[str, object]:
        state = self.state
        return {
            "submissions": {
                reference: count
                for reference, count in state.received.items()
                if reference.startswith(prefix)
            },
            "accepted": sum(1 for reference in state.accepted if reference.startswith(prefix)),
            "receipts_sent": sum(1 for reference in state.sent if reference.startswith(prefix)),
            "receipts_pending": sum(
                1
                for receipt in (*state.pending, *state.in_flight)
                if receipt.reference.startswith(prefix)
            ),
        }

    async def send_receipts(self, client: httpx.AsyncClient) -> None:
        """Forever: POST due receipts in batches; keep a batch until it is answered 2xx."""
        state = self.state
        loop = asyncio.get_running_loop()
        backoff_s = RECEIPT_RETRY_FIRST_S
        while True:
            if not state.pending:
                state.wakeup.clear()
                await state.wakeup.wait()
                continue
            wait_s = state.pending[0].due - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
                continue
            batch = self._take_due(loop.time())
            generation = state.generation
            state.in_flight = batch
            delivered = await self._post(client, batch)
            if generation != state.generation:  # reset while in flight: forget the batch
                continue
            state.in_flight = []
            if delivered:
                state.sent.update(receipt.reference for receipt in batch)
                backoff_s = RECEIPT_RETRY_FIRST_S
            else:
                state.pending.extendleft(reversed(batch))
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, RECEIPT_RETRY_MAX_S)

    def _take_due(self, now: float) -> list[_Receipt]:
        pending = self.state.pending
        batch: list[_Receipt] = []
        while pending and pending[0].due <= now and len(batch) < self.config.receipt_batch_max:
            batch.append(pending.popleft())
        return batch

    async def _post(self, client: httpx.AsyncClient, batch: list[_Receipt]) -> bool:
        done_date = datetime.now(UTC).strftime("%y%m%d%H%M")
        payload = {"receipts": [receipt.wire(done_date) for receipt in batch]}
        try:
            response = await client.post(self.config.receipts_url, json=payload)
        except httpx.HTTPError as exc:
            log.warning(
                "receipts: POST of %d failed, will retry: %s: %s",
                len(batch),
                type(exc).__name__,
                exc,
            )
            return False
        if not response.is_success:
            log.warning(
                "receipts: POST of %d answered HTTP %d, will retry",
                len(batch),
                response.status_code,
            )
            return False
        return True


@dataclass(frozen=True)
class SmppListener:
    host: str
    port: int
    config: SmscConfig


def create_simulator_app(config: SimulatorConfig, smpp: SmppListener | None = None) -> FastAPI:
    simulator = _Simulator(config)
    smsc: Smsc | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal smsc
        headers = {"Authorization": f"Bearer {config.receipts_token}"}
        async with httpx.AsyncClient(timeout=RECEIPT_TIMEOUT_S, headers=headers) as client:
            tasks = [asyncio.create_task(simulator.send_receipts(client), name="receipts")]
            server = None
            if smpp is not None:
                smsc = Smsc(smpp.config)
                server = await asyncio.start_server(smsc.serve, smpp.host, smpp.port)
                tasks.append(asyncio.create_task(smsc.send_receipts(), name="smpp receipts"))
                log.info("smsc: SMPP on %s:%d", smpp.host, smpp.port)
            for task in tasks:
                task.add_done_callback(_report_crash)
            try:
                yield
            finally:
                if server is not None and smsc is not None:
                    server.close()
                    smsc.drop(0)
                    smsc.close()
                for task in tasks:
                    task.cancel()
                    with suppress(asyncio.CancelledError):
                        await task
                log.info("receipts: stopped with %d pending", len(simulator.state.pending))

    def the_smsc() -> Smsc:
        if smsc is None:
            raise HTTPException(404, "this simulator serves no SMPP (--smpp-port)")
        return smsc

    app = FastAPI(title="mycpaas carrier simulator", lifespan=lifespan)

    @app.post("/submit")
    async def submit(request: SubmitRequest) -> JSONResponse:
        await simulator.answer_after_latency()
        if simulator.throttle(request.submissions):
            return JSONResponse(
                {"message": "throttled"},
                status_code=429,
                headers={"Retry-After": THROTTLE_RETRY_AFTER},
            )
        return JSONResponse({"results": [simulator.process(item) for item in request.submissions]})

    @app.post("/messages")
    async def message(item: WireSubmission) -> JSONResponse:
        await simulator.answer_after_latency()
        if simulator.throttle([item]):
            return JSONResponse(
                {"message": "throttled"},
                status_code=429,
                headers={"Retry-After": THROTTLE_RETRY_AFTER},
            )
        result = simulator.process(item)
        if result["status"] == "rejected":
            return JSONResponse(
                {"error_code": result["error_code"], "message": result["message"]},
                status_code=400,
            )
        if result["status"] == "deferred":
            return JSONResponse(
                {"message": result["message"]},
                status_code=503,
                headers={"Retry-After": MESSAGES_RETRY_AFTER},
            )
        return JSONResponse(result)

    @app.get("/submissions/{reference}")
    async def submission(reference: str) -> JSONResponse:
        carrier_id = simulator.state.accepted.get(reference)
        if carrier_id is None:
            return JSONResponse({"message": "unknown reference"}, status_code=404)
        return JSONResponse(
            {"reference": reference, "carrier_id": carrier_id, "status": "accepted"}
        )

    @app.get("/counters")
    async def counters(prefix: str = "") -> JSONResponse:
        figures = simulator.counters(prefix)
        if smsc is not None:
            figures["smpp"] = smsc.counters(prefix)
        return JSONResponse(figures)

    @app.get("/smpp/submits")
    async def smpp_submits(prefix: str = "") -> JSONResponse:
        """The last submit_sm taken, decoded (addresses, coding, UDH, validity, text)."""
        recent = [item for item in the_smsc().recent if item["key"].startswith(prefix)]
        return JSONResponse({"submits": recent})

    @app.post("/smpp/drop")
    async def smpp_drop(refuse_s: float = Query(0.0, ge=0)) -> dict[str, int]:
        return {"dropped": the_smsc().drop(refuse_s)}

    @app.post("/smpp/mute")
    async def smpp_mute(seconds: float = Query(ge=0)) -> dict[str, float]:
        the_smsc().mute(seconds)
        return {"muted_s": seconds}

    @app.post("/smpp/receipt")
    async def smpp_receipt(receipt: InjectedReceipt) -> dict[str, str]:
        the_smsc().inject_receipt(receipt.id, receipt.stat, receipt.err)
        return {"status": "queued"}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/reset")
    async def reset() -> dict[str, str]:
        simulator.state.reset()
        if smsc is not None:
            smsc.reset()
        return {"status": "reset"}

    return app


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("receipts: sender stopped", exc_info=task.exception())


def run_simulator(
    config: SimulatorConfig, host: str, port: int, smpp: SmppListener | None = None
) -> None:
    """Serve the simulator until SIGINT/SIGTERM; logging is the caller's to configure."""
    uvicorn.run(
        create_simulator_app(config, smpp),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_keep_alive=SERVER_KEEPALIVE_S,
    )
