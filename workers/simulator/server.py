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
see :mod:`workers.simulator.smsc` for its counters (under ``"smpp"`` in ``GET /counters``) and
the ``/smpp/…`` routes that break it for fault tests, :mod:`workers.simulator.smsc_outcomes` for
its outcomes.

Other routes: ``GET /submissions/{reference}`` (200 ``{"reference", "carrier_id", "status"}``
for an accepted reference, else 404; not counted as a submission), ``GET /counters``
(``?prefix=`` narrows every figure to references starting with it), ``GET /healthz``,
``POST /reset`` (forgets everything; for tests).
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from functools import partial

import httpx
import uvicorn
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse

from workers import serving
from workers.simulator.http_carrier import (
    MESSAGES_RETRY_AFTER,
    RECEIPT_TIMEOUT_S,
    THROTTLE_RETRY_AFTER,
    InjectedReceipt,
    MobileOriginated,
    Simulator,
    SimulatorConfig,
    SubmitRequest,
    WireSubmission,
)
from workers.simulator.smsc import Smsc, SmscConfig
from workers.supervision import forever_async

log = logging.getLogger(__name__)

SERVER_KEEPALIVE_S = 30  # longer than httpx's 5 s pool expiry: the client closes idle first


@dataclass(frozen=True)
class SmppListener:
    host: str
    port: int
    config: SmscConfig


def create_simulator_app(config: SimulatorConfig, smpp: SmppListener | None = None) -> FastAPI:
    simulator = Simulator(config)
    smsc: Smsc | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal smsc
        headers = {"Authorization": f"Bearer {config.receipts_token}"}
        async with httpx.AsyncClient(timeout=RECEIPT_TIMEOUT_S, headers=headers) as client:
            sending = partial(simulator.send_receipts, client)
            tasks = [asyncio.create_task(forever_async("receipts", sending), name="receipts")]
            server = None
            if smpp is not None:
                smsc = Smsc(smpp.config)
                server = await asyncio.start_server(smsc.serve, smpp.host, smpp.port)
                due = forever_async("smpp receipts", smsc.receipts.send_due)
                tasks.append(asyncio.create_task(due, name="smpp receipts"))
                log.info("smsc: SMPP on %s:%d", smpp.host, smpp.port)
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
        the_smsc().receipts.inject(receipt.id, receipt.stat, receipt.err)
        return {"status": "queued"}

    @app.post("/mo")
    async def mo(message: MobileOriginated) -> dict[str, list[str]]:
        """A handset "texts" one of the platform's numbers: sent as ``deliver_sm`` on the bound
        sessions (in ``parts`` parts, last first with ``reverse``), or POSTed to the platform's
        ``/carrier/inbound`` as an HTTP gateway does (``via=http``, the default without SMPP)."""
        if message.via == "smpp" or (
            message.via is None and smsc is not None and not message.media
        ):
            if message.media:
                raise HTTPException(400, "SMPP carries no MMS: send it with via=http")
            ids = the_smsc().receipts.originate(message.from_, message.to, message.body,
                                                message.parts, message.reverse)  # fmt: skip
            return {"ids": ids}
        headers = {"Authorization": f"Bearer {config.receipts_token}"}
        payload = {
            "From": message.from_,
            "To": message.to,
            "Body": message.body,
            "MediaUrl": message.media,
        }
        async with httpx.AsyncClient(timeout=10) as client:
            try:
                answer = await client.post(config.inbound_url, json=payload, headers=headers)
            except httpx.HTTPError as exc:
                raise HTTPException(502, f"the platform did not answer: {exc}") from exc
        if answer.status_code != 200:
            raise HTTPException(502, f"the platform answered {answer.status_code}: {answer.text}")
        return {"ids": []}

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


def run_simulator(
    config: SimulatorConfig, host: str, port: int, smpp: SmppListener | None = None
) -> None:
    """Serve the simulator until SIGINT/SIGTERM; logging is the caller's to configure."""
    serving.serve(
        uvicorn.Config(
            create_simulator_app(config, smpp),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            timeout_keep_alive=SERVER_KEEPALIVE_S,
        )
    )
