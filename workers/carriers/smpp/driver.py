"""The SMPP 3.4 carrier driver: long-lived binds shared by a worker process's task threads.

Where the binds live
--------------------
Each carrier worker process holds **one session** (one transceiver bind, or one transmitter and
one receiver bind) on an asyncio loop in a background thread, opened when the worker starts
(a prefork child's at its first hand-off) and closed (window drained, ``unbind``) at its warm
shutdown. Every task thread of
the process submits through it, so the bind's window is filled by all of them at once, and the
receipts arriving on it are stored by the same process. Carriers allow few binds per account
(often 1 to 4): the number of carrier worker processes *is* the number of binds, so scale
``worker-carrier`` up to your allowance and no further (``MYCPAAS_SMPP_BIND=transmitter+receiver``
counts two per process). A separate ``mycpaas smpp`` service with a queue of its own was the
other choice; it would add a hop and a second queue to keep consistent with the record, for no
gain: the carrier stage already claims its work from Postgres and scales by processes.

What a hand-off does
--------------------
:meth:`SmppCarrierDriver.submit` runs in a task thread. Each segment becomes a ``submit_sm``
(:mod:`workers.carriers.smpp.submit_sm` says how). With ``MYCPAAS_SMPP_TPS`` set, each one
first waits for a token of the account's bucket in Redis (shared by every bind and process).
Then it is handed to the loop, which sends it when the window has room; the thread waits for
all answers of its batch.

Nothing lost, nothing twice
---------------------------
A ``submit_sm`` goes out only inside a hand-off, so only under its claim's lease. What never
left (no bind, a full window or a pause until the call's deadline) is deferred: safe to send
again. SMPP has no lookup by our reference, so a ``submit_sm`` that left and got no answer (the
connection dropped, the response timed out) has an **unknown outcome**, and so does a segment of
a message whose worker died before recording the answer (the sweeper hands it back for
reconciliation, :meth:`lookup`). ``MYCPAAS_SMPP_UNKNOWN_OUTCOME`` decides: ``resend`` (the
default: a duplicate SMS is better than a lost one-time code) or ``fail`` (30008). This is the
only place a duplicate can come from; each case is counted in
``mycpaas_smpp_unknown_outcomes_total`` and logged with the message sid.

Receipts
--------
``deliver_sm`` receipts from the bind are answered only once stored: see
:mod:`workers.carriers.smpp.receipts`.
"""

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

from workers.carriers import connectivity
from workers.carriers.base import (
    Accepted,
    Deferred,
    Rejected,
    Result,
    Submission,
    sid_of,
    sids_of,
)
from workers.carriers.smpp.answers import AcceptedSink, AnswerRecorder
from workers.carriers.smpp.bind import BindConfig, NotSent, Unanswered
from workers.carriers.smpp.outcomes import (
    BACK_PRESSURE,
    UNKNOWN_ERROR,
    HexIds,
    normalise_id,
    rejection,
)
from workers.carriers.smpp.pdu import Command, Pdu, PduError, Status, read_message_id, status_name
from workers.carriers.smpp.receipts import ReceiptSink, ReceiptStore
from workers.carriers.smpp.session import Link
from workers.carriers.smpp.submit_sm import short_message
from workers.metrics import SMPP_UNKNOWN_OUTCOMES, recorder
from workers.pipeline.throttle import TokenBucket
from workers.supervision import forever_async

log = logging.getLogger(__name__)

NOT_SENT_RETRY_S = 1.0  # a segment that never left is tried again this soon
START_TIMEOUT_S = 5.0  # for the loop thread to come up
LOOP_GRACE_S = 5.0  # beyond every timeout of a hand-off, before the loop counts as stuck
Policy = Literal["resend", "fail"]
BindMode = Literal["transceiver", "transmitter+receiver"]
Answer = Pdu | Result | BaseException | None  # what became of one segment's submit_sm


@dataclass(frozen=True)
class SmppConfig:
    bind: BindConfig
    mode: BindMode = "transceiver"
    tps: float | None = None  # submit_sm per second for the whole account; None: no limit
    unknown_outcome: Policy = "resend"
    hex_ids: HexIds = "none"
    tps_key: str = ""  # the Redis bucket shared by every bind of the account
    name: str = "default"  # the connection's, in /readyz, metrics and logs


class SmppCarrierDriver:
    """The pipeline's view of the session: ``submit``, ``lookup`` and ``close``."""

    watches_itself = True  # reports whether its binds are up (workers.carriers.connectivity)

    def __init__(
        self,
        config: SmppConfig,
        on_receipts: ReceiptSink,
        bucket: TokenBucket | None = None,
        on_accepted: AcceptedSink | None = None,
        on_inbound: ReceiptSink | None = None,
    ) -> None:
        self.config = config
        self._on_receipts = on_receipts
        self._on_inbound = on_inbound
        self._on_accepted = on_accepted
        self.answers: AnswerRecorder | None = None
        self._bucket = bucket if config.tps else None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="smpp", daemon=True)
        self._thread.start()
        self.links: list[Link] = self._call(self._open(), START_TIMEOUT_S)
        self.sender = self.links[0]

    def _call(self, coroutine: Any, timeout_s: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    async def _open(self) -> list[Link]:
        self.receipts = ReceiptStore(self._on_receipts, self.config.hex_ids, self._on_inbound)
        if self._on_accepted is not None:  # a kill -9 costs at most a window (smpp/answers.py)
            self.answers = AnswerRecorder(self._on_accepted, self.config.bind.window)
        self._storer = asyncio.create_task(self.receipts.run(), name="smpp receipts")
        bind = self.config.bind
        deliver = self.receipts.deliver
        if self.config.mode == "transceiver":
            links = [Link(bind, Command.BIND_TRANSCEIVER, deliver)]
        else:
            links = [
                Link(bind, Command.BIND_TRANSMITTER),
                Link(bind, Command.BIND_RECEIVER, deliver),
            ]
        for link in links:
            link.start()
        self.links = links
        watching = partial(connectivity.watch_links, self.config.name, self._bound)
        self._watcher = asyncio.create_task(forever_async("smpp connectivity", watching))
        return links

    def up(self) -> bool:
        """Every bind is up: the router may send it new messages."""
        return all(link.bound for link in self.links)

    def _bound(self) -> tuple[bool, str]:
        """Whether every bind is up; if not, why the first one down is."""
        down = [link for link in self.links if not link.bound]
        return (not down, f"{down[0].label}: {down[0].trouble}" if down else "")

    # --- hand-off -----------------------------------------------------------------------------

    def submit(self, submissions: Sequence[Submission]) -> list[Result]:
        deadline = time.monotonic() + self.config.bind.timeout_s  # to get each one out
        now = datetime.now(UTC)
        answers: list[Answer] = []
        bodies: dict[int, bytes] = {}
        for position, submission in enumerate(submissions):
            try:
                bodies[position] = short_message(submission, now).encode()
                answers.append(None)
            except ValueError as exc:
                why = f"cannot be sent over SMPP: {exc}"
                answers.append(Rejected(submission.reference, UNKNOWN_ERROR, why))
        if self._bucket is None:  # one hop to the loop for the whole batch
            # Each answer waits at most the deadline plus one response timeout; past that the
            # loop itself is stuck, and whatever it sent has an unknown outcome.
            limit_s = 2 * self.config.bind.timeout_s + LOOP_GRACE_S
            items = [(submissions[position], body) for position, body in bodies.items()]
            try:
                sent = self._call(self._submit_all(items, deadline), limit_s)
            except concurrent.futures.TimeoutError:
                sent = [Unanswered("the SMPP loop did not answer")] * len(bodies)
            for position, outcome in zip(bodies, sent, strict=True):
                answers[position] = outcome
        else:
            self._submit_paced(submissions, bodies, answers, deadline)
        return [
            self._result(submission, answer)
            for submission, answer in zip(submissions, answers, strict=True)
        ]

    async def _submit_all(
        self, items: list[tuple[Submission, bytes]], deadline: float
    ) -> list[Answer]:
        outcomes = await asyncio.gather(
            *(self._submit_one(submission, body, deadline) for submission, body in items),
            return_exceptions=True,
        )
        return list(outcomes)

    async def _submit_one(self, submission: Submission, body: bytes, deadline: float) -> Answer:
        """One submit_sm, holding a place of the answer recorder until its answer is settled."""
        answers = self.answers
        if answers is None:
            return await self.sender.submit(body, deadline)
        try:
            await asyncio.wait_for(answers.place(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return NotSent("a window's worth of answers waits to be recorded")
        carrier_id = None
        try:
            answer = await self.sender.submit(body, deadline)
            carrier_id = self._carrier_id(answer)
            return answer
        finally:
            answers.settle(submission.reference, carrier_id)

    def _submit_paced(
        self,
        submissions: Sequence[Submission],
        bodies: dict[int, bytes],
        answers: list[Answer],
        deadline: float,
    ) -> None:
        """One token of the account's bucket before each submit_sm; what the deadline leaves
        no token for is deferred unsent."""
        futures = {}
        for position, body in bodies.items():
            if not self._wait_for_token(deadline):
                rest = [submissions[p] for p in bodies if p >= position]
                log.warning(
                    "smpp: MYCPAAS_SMPP_TPS leaves no room for %d segments of this "
                    "hand-off; deferred",
                    len(rest),
                    extra={"sids": sids_of(rest)},
                )
                for p in bodies:
                    if p >= position:
                        answers[p] = Deferred(
                            submissions[p].reference,
                            NOT_SENT_RETRY_S,
                            "waiting for the account's SMPP throughput",
                        )
                break
            futures[position] = asyncio.run_coroutine_threadsafe(
                self._submit_one(submissions[position], body, deadline), self._loop
            )
        for position, future in futures.items():
            try:
                answers[position] = future.result()
            except Exception as exc:
                answers[position] = exc

    def _wait_for_token(self, deadline: float) -> bool:
        """Sleep for the account's throughput; False when the wait would pass the deadline."""
        if self._bucket is None or not self.config.tps:
            return True
        rate = self.config.tps
        wait_s = self._bucket.wait_s(self.config.tps_key, rate=rate, burst=1, allow_debt=True)
        if wait_s is None:  # Redis is down: send; the SMSC's throttling slows the bind if need be
            return True
        if time.monotonic() + wait_s > deadline:
            return False
        time.sleep(wait_s)
        return True

    def _result(self, submission: Submission, answer: Answer) -> Result:
        reference = submission.reference
        if isinstance(answer, NotSent):
            return Deferred(reference, NOT_SENT_RETRY_S, f"not sent: {answer}")
        if isinstance(answer, Unanswered):
            return self._unknown(reference, "lost_response", str(answer))
        if isinstance(answer, BaseException):  # a fault of ours: it may have left, or not
            return self._unknown(reference, "lost_response", repr(answer))
        if not isinstance(answer, Pdu):
            assert answer is not None, "every segment has an answer"
            return answer
        pdu = answer
        if pdu.status == Status.ESME_ROK:
            carrier_id = self._carrier_id(pdu)
            if carrier_id is not None:
                return Accepted(reference, carrier_id)
            why = f"submit_sm_resp without a usable message_id: {pdu.body!r}"
            return self._unknown(reference, "lost_response", why)
        if pdu.status in BACK_PRESSURE:
            return Deferred(reference, NOT_SENT_RETRY_S, status_name(pdu.status))
        code, message = rejection(pdu.status)
        return Rejected(reference, code, message)

    def _carrier_id(self, pdu: Pdu) -> str | None:
        """The id an accepting submit_sm_resp gives the part; None for any other answer."""
        if pdu.status != Status.ESME_ROK:
            return None
        try:
            message_id = read_message_id(pdu.body)
        except PduError:
            return None
        carrier_id = normalise_id(message_id, hexadecimal=self.config.hex_ids == "submit")
        return carrier_id if carrier_id and len(carrier_id) <= 64 else None

    def _unknown(self, reference: str, cause: str, why: str) -> Result:
        """The one place a segment may be sent twice: the policy resends (Deferred) or fails."""
        policy = self.config.unknown_outcome
        recorder.count(SMPP_UNKNOWN_OUTCOMES, policy=policy, cause=cause)
        log.warning(
            "smpp: outcome of %s unknown (%s); policy %s",
            reference,
            why,
            policy,
            extra={"sid": sid_of(reference)},
        )
        if policy == "fail":
            return Rejected(
                reference,
                UNKNOWN_ERROR,
                f"outcome unknown after the hand-off "
                f"({why}); not sent again (MYCPAAS_SMPP_UNKNOWN_OUTCOME=fail)",
            )
        return Deferred(reference, 0.0, f"outcome unknown ({why}): sending again")

    def lookup(self, reference: str) -> Accepted | Rejected | None:
        """SMPP cannot look a segment up by our reference, so the unknown-outcome policy
        decides: None sends it again, Rejected fails it."""
        result = self._unknown(
            reference, "lost_worker", "its worker stopped before recording the answer"
        )
        return result if isinstance(result, Rejected) else None

    # --- shutdown -----------------------------------------------------------------------------

    def close(self) -> None:
        """Drain the window, store and answer the receipts in hand, unbind, stop the loop."""
        try:
            self._call(self._close(), self.config.bind.timeout_s * 2 + 5)
        except (concurrent.futures.TimeoutError, RuntimeError) as exc:
            log.warning("smpp: close: %s", exc)
        if self.answers is not None:
            self.answers.close()  # the last carrier ids committed, places freed on the loop
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()
        self.receipts.shutdown()

    async def _close(self) -> None:
        deadline = asyncio.get_running_loop().time() + self.config.bind.timeout_s
        while self.receipts.unanswered and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.gather(*(link.close() for link in self.links))
        self._storer.cancel()
        self._watcher.cancel()
