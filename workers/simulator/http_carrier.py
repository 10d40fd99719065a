"""The simulated HTTP carrier: what it answers per destination number, the receipts it owes and
the loop that POSTs them (the outcomes table is in workers/simulator/server.py)."""

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

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


@dataclass(frozen=True)
class SimulatorConfig:
    receipts_url: str  # e.g. "http://127.0.0.1:8000/carrier/receipts"
    receipts_token: str  # sent as "Authorization: Bearer <token>"
    latency_ms: float = 0  # delay before answering each submit request
    receipt_delay_ms: float = 50  # from acceptance to the receipt being due
    receipt_batch_max: int = 500  # receipts per POST

    @property
    def inbound_url(self) -> str:
        """Where its HTTP carrier pushes what handsets send: the platform's /carrier/inbound."""
        return self.receipts_url.rsplit("/receipts", 1)[0] + "/inbound"

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


class MobileOriginated(BaseModel):
    """A message a handset sends to one of the platform's numbers (``POST /mo``)."""

    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", min_length=2, max_length=21)
    to: str = Field(min_length=2, max_length=21)
    body: str = Field(max_length=1600)
    parts: int = Field(1, ge=1, le=10)
    reverse: bool = False
    # smpp: deliver_sm on the bound sessions; http: POSTed to the platform's /carrier/inbound
    # as an HTTP gateway does (whole, whatever ``parts`` says). Unset: SMPP when it listens.
    via: Literal["smpp", "http"] | None = None
    media: list[str] = Field([], max_length=10)  # an MMS: over HTTP only (SMPP carries none)


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


class Simulator:
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
