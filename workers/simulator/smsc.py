"""The SMPP side of the carrier simulator: an SMSC that behaves like the real ones we met.

It runs in the simulator's process and event loop (``mycpaas carrier-sim --smpp-port 2775``)
and does what DESIGN.md §6 records of Jasmin's SMPP server: ``submit_sm_resp`` after
``--latency-ms`` with a 36-character lowercase UUID as ``message_id``; receipts as
``deliver_sm``, sent again until answered ROK; its own ``enquire_link`` after idle time;
``query_sm`` drops the session; ``cancel_sm``, ``replace_sm`` and ``submit_multi`` get
``ESME_RSYSERR`` and an ``unbind``; a wrong password gets ``bind_*_resp`` 0x0E on a connection
left open.

Outcomes by destination: :mod:`workers.simulator.smsc_outcomes`; receipts:
:mod:`workers.simulator.smsc_receipts`.

Beyond ``--smpp-throttle-tps`` submits per second (all binds together) it answers
``ESME_RTHROTTLED``. Counters (``GET /counters``, key ``<to>/<UDH ref>/<part>``, ref ``-``
without a UDH): every ``submit_sm`` taken (``submits``) and those answered ROK (``accepted``:
what reached the handset; above 1 is a duplicate). With ``--journal FILE`` every submit,
acceptance and acknowledged receipt is appended to the file before it is answered, and a
restarted simulator reads it back: counters survive, and receipts not acknowledged are sent
again, as a real SMSC's store would. For fault tests, ``POST /smpp/drop`` cuts every connection
(``?refuse_s=`` refuses new ones for a while), ``POST /smpp/mute?seconds=`` stops answering on
the current connections, and ``POST /smpp/receipt`` sends a receipt for any message id.

Every PDU received is checked against its command's body layout first
(:mod:`workers.carriers.smpp.layout`): a malformed one gets ``generic_nack`` and a dropped
session, as Jasmin does (counted as ``malformed``).
"""

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

from workers.carriers.smpp.bind import read_pdu
from workers.carriers.smpp.layout import check_layout
from workers.carriers.smpp.pdu import (
    BINDS,
    BindBody,
    Command,
    Pdu,
    PduError,
    ShortMessage,
    Status,
    generic_nack,
    message_id_body,
    response,
)
from workers.simulator import smsc_outcomes
from workers.simulator.smsc_outcomes import RECEIPT_FIRST_NUMBER
from workers.simulator.smsc_receipts import Message, Receipts, now_stamp
from workers.simulator.smsc_session import Session
from workers.supervision import forever_async

log = logging.getLogger(__name__)

REFUSE_ALWAYS = {Command.CANCEL_SM, Command.REPLACE_SM, Command.SUBMIT_MULTI}
SYSTEM_ID = "mycpaas-sim"  # what bind responses name


@dataclass(frozen=True)
class SmscConfig:
    latency_ms: float = 0  # before each submit_sm_resp
    receipt_delay_ms: float = 50  # from acceptance to its receipt
    throttle_tps: float | None = None  # submits per second above which ESME_RTHROTTLED
    system_id: str = ""  # empty: any system_id binds
    password: str = ""  # empty: any password binds
    enquire_link_s: float = 30.0  # the SMSC's own enquire_link after this much idle time
    receipt_resend_s: float = 5.0  # a deliver_sm not answered ROK is sent again after this
    journal: Path | None = None


def _key(message: ShortMessage) -> str:
    to = f"+{message.destination_addr}" if message.dest_addr_ton == 1 else message.destination_addr
    concatenation = message.concatenation
    if concatenation is None:
        return f"{to}/-/1"
    reference, _total, part = concatenation
    return f"{to}/{reference}/{part}"


class Smsc:
    """Sessions, outcomes, counters and the receipt queue of one simulator process."""

    def __init__(self, config: SmscConfig) -> None:
        self.config = config
        self.sessions: set[Session] = set()
        self.submits: Counter[str] = Counter()
        self.accepted: Counter[str] = Counter()
        self.events: Counter[str] = Counter()  # binds, unbinds, throttled, …
        self.receipts = Receipts(self.sessions, self.events, config.receipt_resend_s, self._write)
        self.recent: list[dict[str, Any]] = []  # the last submits, decoded, for tests
        self._tasks: set[asyncio.Task[None]] = set()
        self._tokens = 0.0
        self._tokens_at = 0.0
        self.muted_from = self.muted_until = 0.0  # connections opened before muted_from …
        self.refuse_until = 0.0
        self._journal: IO[str] | None = None
        if config.journal is not None:
            self._replay(config.journal)
            self._journal = config.journal.open("a", encoding="utf-8")

    # --- journal ------------------------------------------------------------------------------

    def _replay(self, path: Path) -> None:
        if not path.exists():
            return
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut short by the crash
            if entry["op"] == "submit":
                self.submits[entry["key"]] += 1
            elif entry["op"] == "accept":
                self.accepted[entry["key"]] += 1
                self.receipts.messages[entry["id"]] = Message(
                    entry["id"],
                    entry["key"],
                    entry["to"],
                    entry["source"],
                    entry["stat"],
                    entry["err"],
                    entry["submitted"],
                )
            elif entry["op"] == "ack":
                self.receipts.acked.add(entry["id"])
        for message in self.receipts.messages.values():
            if message.stat is not None and message.message_id not in self.receipts.acked:
                self.receipts.schedule(message.message_id, 0.0)
        log.info(
            "smsc: journal replayed: %d accepted, %d receipts to send again",
            len(self.receipts.messages),
            len(self.receipts.due),
        )

    def _write(self, **entry: Any) -> None:
        if self._journal is not None:
            self._journal.write(json.dumps(entry) + "\n")
            self._journal.flush()  # in the kernel before the answer: it survives a kill -9

    # --- connections --------------------------------------------------------------------------

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() < self.refuse_until:
            writer.close()
            return
        session = Session(writer, opened=loop.time(), last_read=loop.time())
        self.sessions.add(session)
        keeper = asyncio.create_task(
            forever_async("smsc enquire_link", partial(self._keep_alive, session))
        )
        try:
            while True:
                pdu = await read_pdu(reader)
                session.last_read = loop.time()
                if session.opened < self.muted_from and loop.time() < self.muted_until:
                    continue  # a hung SMSC: reads, answers nothing
                if not self._well_formed(session, pdu) or not self._handle(session, pdu):
                    break
        except (OSError, asyncio.IncompleteReadError, PduError):
            pass
        finally:
            keeper.cancel()
            self.sessions.discard(session)
            for message_id in session.outstanding.values():
                self.receipts.schedule(message_id, 0.0)
            writer.close()

    def _well_formed(self, session: Session, pdu: Pdu) -> bool:
        """As Jasmin does: a PDU whose body is not its command's layout gets ``generic_nack``
        (sequence 0) and the session is dropped."""
        try:
            check_layout(pdu)
        except PduError as exc:
            self.events["malformed"] += 1
            log.warning("smsc: %s (seq %d) malformed: %s; session dropped", pdu.name,
                        pdu.sequence, exc)  # fmt: skip
            session.send(generic_nack(0, exc.status))
            return False
        return True

    def _handle(self, session: Session, pdu: Pdu) -> bool:
        """Act on one PDU; False ends the session."""
        command = pdu.command_id
        if command in BINDS:
            self._bind(session, pdu)
        elif session.bound is None and not pdu.is_response:
            session.send(generic_nack(pdu.sequence, Status.ESME_RINVBNDSTS))
        elif command == Command.SUBMIT_SM:
            self._spawn(self._submit(session, pdu))
        elif command == Command.DELIVER_SM_RESP:
            self.receipts.answered(session, pdu)
        elif command == Command.ENQUIRE_LINK:
            self.events["enquire_links"] += 1
            session.send(response(pdu))
        elif command == Command.ENQUIRE_LINK_RESP:
            self.events["enquire_link_answers"] += 1
        elif command == Command.UNBIND:
            self.events["unbinds"] += 1
            session.send(response(pdu))
            return False
        elif command == Command.QUERY_SM:
            self.events["query_sm"] += 1
            return False  # as Jasmin does: the session is dropped
        elif command in REFUSE_ALWAYS:
            session.send(response(pdu, Status.ESME_RSYSERR))
            session.request(Command.UNBIND)
        elif command == Command.GENERIC_NACK or pdu.is_response:
            pass
        else:
            session.send(generic_nack(pdu.sequence, Status.ESME_RINVCMDID))
        return True

    def _bind(self, session: Session, pdu: Pdu) -> None:
        try:
            bind = BindBody.decode(pdu.body)
        except PduError as exc:
            session.send(generic_nack(pdu.sequence, exc.status))
            return
        config = self.config
        if (config.system_id and bind.system_id != config.system_id) or (
            config.password and bind.password != config.password
        ):
            self.events["bind_refusals"] += 1
            session.send(response(pdu, Status.ESME_RINVPASWD))  # and the connection stays open
            return
        session.bound = Command(pdu.command_id)
        self.events["binds"] += 1
        session.send(response(pdu, body=message_id_body(SYSTEM_ID)))
        self.receipts.wakeup.set()

    async def _keep_alive(self, session: Session) -> None:
        loop = asyncio.get_running_loop()
        while True:
            idle_s = loop.time() - session.last_read
            if idle_s >= self.config.enquire_link_s and session.bound is not None:
                session.request(Command.ENQUIRE_LINK)
                idle_s = 0.0
            await asyncio.sleep(self.config.enquire_link_s - idle_s)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        """A submit_sm's task is done; one that raised is logged now, not at garbage collection."""
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("smsc: a submit_sm failed unanswered", exc_info=error)

    # --- submit_sm ----------------------------------------------------------------------------

    async def _submit(self, session: Session, pdu: Pdu) -> None:
        try:
            message = ShortMessage.decode(pdu.body)
        except PduError as exc:
            session.send(response(pdu, exc.status))
            return
        key = _key(message)
        to = key.split("/", 1)[0]
        self.submits[key] += 1
        self._write(op="submit", key=key)
        self._remember(key, message)
        status = self._refusal(key, to)
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000)
        if status is not None:
            session.send(response(pdu, status))
            return
        stat, err = smsc_outcomes.receipt(to)
        accepted = Message(str(uuid.uuid4()), key, message.destination_addr,
                           message.source_addr, stat, err, now_stamp())  # fmt: skip
        self.receipts.messages[accepted.message_id] = accepted
        self.accepted[key] += 1
        self._write(op="accept", key=key, id=accepted.message_id, to=accepted.to,
                    source=accepted.source, stat=accepted.stat, err=err,
                    submitted=accepted.submitted)  # fmt: skip
        if to == RECEIPT_FIRST_NUMBER and session.receives:
            self.receipts.send(session, accepted)
        elif accepted.stat is not None:
            self.receipts.schedule(accepted.message_id, self.config.receipt_delay_ms / 1000)
        session.send(response(pdu, body=message_id_body(accepted.message_id)))

    def _refusal(self, key: str, to: str) -> Status | None:
        if self._over_throughput():
            status: Status | None = Status.ESME_RTHROTTLED
        else:
            status = smsc_outcomes.refusal(to, self.submits[key])
        if status == Status.ESME_RTHROTTLED:
            self.events["throttled"] += 1
        return status

    def _over_throughput(self) -> bool:
        rate = self.config.throttle_tps
        if not rate:
            return False
        now = time.monotonic()
        burst = max(1.0, rate / 5)  # a fifth of a second's worth at once
        self._tokens = min(burst, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._tokens < 1:
            return True
        self._tokens -= 1
        return False

    def _remember(self, key: str, message: ShortMessage) -> None:
        text = message.text_octets
        self.recent.append({
            "key": key, "source_addr": message.source_addr,
            "source_ton": message.source_addr_ton, "source_npi": message.source_addr_npi,
            "dest_ton": message.dest_addr_ton, "dest_npi": message.dest_addr_npi,
            "esm_class": message.esm_class, "data_coding": message.data_coding,
            "registered_delivery": message.registered_delivery,
            "validity_period": message.validity_period,
            "udh": message.short_message[:6].hex() if message.concatenation else None,
            "text": text.decode("utf-16-be" if message.data_coding == 8 else "latin-1",
                                "replace"),
        })  # fmt: skip
        del self.recent[:-1000]

    # --- faults and counters ------------------------------------------------------------------

    def drop(self, refuse_s: float) -> int:
        """Cut every connection without an unbind; refuse new ones for ``refuse_s``."""
        self.refuse_until = asyncio.get_running_loop().time() + refuse_s
        dropped = list(self.sessions)
        for session in dropped:
            session.writer.transport.abort()
        return len(dropped)

    def mute(self, seconds: float) -> None:
        self.muted_from = asyncio.get_running_loop().time()
        self.muted_until = self.muted_from + seconds

    def counters(self, prefix: str) -> dict[str, Any]:
        return {
            "submits": {k: n for k, n in self.submits.items() if k.startswith(prefix)},
            "accepted": {k: n for k, n in self.accepted.items() if k.startswith(prefix)},
            "receipts_pending": self.receipts.pending(),
            "bound": sum(1 for s in self.sessions if s.bound is not None),
            **self.events,
        }  # fmt: skip

    def reset(self) -> None:
        self.submits.clear()
        self.accepted.clear()
        self.events.clear()
        self.receipts.clear()
        self.recent.clear()

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
