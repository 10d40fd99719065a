"""The SMPP side of the carrier simulator: an SMSC that behaves like the real ones we met.

It runs in the simulator's process and event loop (``mycpaas carrier-sim --smpp-port 2775``)
and does what DESIGN.md §6 records of Jasmin's SMPP server: ``submit_sm_resp`` after
``--latency-ms`` with a 36-character lowercase UUID as ``message_id``; receipts as
``deliver_sm`` (``esm_class`` 0x04) with the ``receipted_message_id`` and ``message_state`` TLVs
and the short text ``id:… submit date:… done date:… stat:… err:…``, one per part, in no
particular order, sent again when their ``deliver_sm_resp`` does not come (or is not ROK); its
own ``enquire_link`` after idle time; ``query_sm`` drops the session; ``cancel_sm``,
``replace_sm`` and ``submit_multi`` get ``ESME_RSYSERR`` and an ``unbind``; a wrong password
gets ``bind_*_resp`` 0x0E on a connection left open.

Outcomes by destination, the same final status and code as over HTTP:

| To             | submit_sm_resp                          | receipt                          |
|----------------|-----------------------------------------|----------------------------------|
| `+15005550001` | ROK                                     | UNDELIV err:027 (30003)          |
| `+15005550002` | ROK                                     | UNDELIV err:001 (30005)          |
| `+15005550003` | ROK                                     | UNDELIV err:011 (30006)          |
| `+15005550004` | ROK                                     | REJECTD (30007)                  |
| `+15005550005` | ROK                                     | UNDELIV err:000 (30008)          |
| `+15005550007` | ESME_RMSGQFUL twice per part, then ROK  | DELIVRD                          |
| `+15005550008` | ESME_RTHROTTLED once per part, then ROK | DELIVRD                          |
| `+15005550009` | ROK                                     | none, ever                       |
| `+15005550010` | ROK, after the receipt                  | DELIVRD, before the response     |
| `+15005550011` | ESME_RINVDSTADR (21211)                 | none                             |
| `+15005550012` | ESME_RSUBMITFAIL (30008)                | none                             |
| anything else  | ROK                                     | DELIVRD                          |

Beyond ``--smpp-throttle-tps`` submits per second (all binds together) it answers
``ESME_RTHROTTLED``. Counters (``GET /counters``, key ``<to>/<UDH ref>/<part>``, ref ``-``
without a UDH): every ``submit_sm`` taken (``submits``) and those answered ROK (``accepted``:
what reached the handset; above 1 is a duplicate). With ``--journal FILE`` every submit,
acceptance and acknowledged receipt is appended to the file before it is answered, and a
restarted simulator reads it back: counters survive, and receipts not acknowledged are sent
again, as a real SMSC's store would. For fault tests, ``POST /smpp/drop`` cuts every connection
(``?refuse_s=`` refuses new ones for a while), ``POST /smpp/mute?seconds=`` stops answering on
the current connections, and ``POST /smpp/receipt`` sends a receipt for any message id.
"""

import asyncio
import contextlib
import heapq
import json
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from workers.carriers.smpp.outcomes import STATES
from workers.carriers.smpp.pdu import (
    BINDS,
    DATA_CODING_DEFAULT,
    ESM_RECEIPT,
    BindBody,
    Command,
    Pdu,
    PduError,
    ShortMessage,
    Status,
    Tag,
    generic_nack,
    message_id_body,
    response,
)
from workers.carriers.smpp.session import read_pdu

log = logging.getLogger(__name__)

RECEIPTS: dict[str, tuple[str, int]] = {  # destination -> (stat, err) of its receipt
    "+15005550001": ("UNDELIV", 27),
    "+15005550002": ("UNDELIV", 1),
    "+15005550003": ("UNDELIV", 11),
    "+15005550004": ("REJECTD", 0),
    "+15005550005": ("UNDELIV", 0),
}
REFUSED: dict[str, Status] = {
    "+15005550011": Status.ESME_RINVDSTADR,
    "+15005550012": Status.ESME_RSUBMITFAIL,
}
QUEUE_FULL_NUMBER = "+15005550007"
QUEUE_FULL_TIMES = 2  # ESME_RMSGQFUL answers per part before it is accepted
THROTTLED_NUMBER = "+15005550008"
SILENT_NUMBER = "+15005550009"
RECEIPT_FIRST_NUMBER = "+15005550010"
REFUSE_ALWAYS = {Command.CANCEL_SM, Command.REPLACE_SM, Command.SUBMIT_MULTI}
STATE_VALUES = {name: value for value, name in STATES.items()}
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


@dataclass
class _Message:
    message_id: str
    key: str
    to: str  # the handset: the receipt's source
    source: str  # the sender: the receipt's destination
    stat: str | None  # None: no receipt, ever
    err: int
    submitted: str  # YYMMDDhhmm


@dataclass(eq=False)
class _Session:
    writer: asyncio.StreamWriter
    opened: float
    bound: Command | None = None
    sequence: int = 0
    last_read: float = 0.0
    outstanding: dict[int, str] = field(default_factory=dict)  # deliver_sm seq -> message id

    def send(self, pdu: Pdu) -> None:
        if not self.writer.is_closing():
            self.writer.write(pdu.encode())

    def request(self, command: Command, body: bytes = b"") -> int:
        self.sequence = self.sequence % 0x7FFFFFFF + 1
        self.send(Pdu(command, self.sequence, 0, body))
        return self.sequence

    @property
    def receives(self) -> bool:
        return self.bound in (Command.BIND_TRANSCEIVER, Command.BIND_RECEIVER)


def _now_stamp() -> str:
    return datetime.now(UTC).strftime("%y%m%d%H%M")


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
        self.sessions: set[_Session] = set()
        self.submits: Counter[str] = Counter()
        self.accepted: Counter[str] = Counter()
        self.events: Counter[str] = Counter()  # binds, unbinds, throttled, …
        self.messages: dict[str, _Message] = {}
        self.acked: set[str] = set()
        self.recent: list[dict[str, Any]] = []  # the last submits, decoded, for tests
        self._due: list[tuple[float, int, str]] = []  # (loop time, tiebreak, message id)
        self._tiebreak = 0
        self._wakeup = asyncio.Event()
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
                self.messages[entry["id"]] = _Message(
                    entry["id"],
                    entry["key"],
                    entry["to"],
                    entry["source"],
                    entry["stat"],
                    entry["err"],
                    entry["submitted"],
                )
            elif entry["op"] == "ack":
                self.acked.add(entry["id"])
        for message in self.messages.values():
            if message.stat is not None and message.message_id not in self.acked:
                self._schedule(message.message_id, 0.0)
        log.info(
            "smsc: journal replayed: %d accepted, %d receipts to send again",
            len(self.messages),
            len(self._due),
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
        session = _Session(writer, opened=loop.time(), last_read=loop.time())
        self.sessions.add(session)
        keeper = asyncio.create_task(self._keep_alive(session))
        try:
            while True:
                pdu = await read_pdu(reader)
                session.last_read = loop.time()
                if session.opened < self.muted_from and loop.time() < self.muted_until:
                    continue  # a hung SMSC: reads, answers nothing
                if not self._handle(session, pdu):
                    break
        except (OSError, asyncio.IncompleteReadError, PduError):
            pass
        finally:
            keeper.cancel()
            self.sessions.discard(session)
            for message_id in session.outstanding.values():
                self._schedule(message_id, 0.0)
            writer.close()

    def _handle(self, session: _Session, pdu: Pdu) -> bool:
        """Act on one PDU; False ends the session."""
        command = pdu.command_id
        if command in BINDS:
            self._bind(session, pdu)
        elif session.bound is None and not pdu.is_response:
            session.send(generic_nack(pdu.sequence, Status.ESME_RINVBNDSTS))
        elif command == Command.SUBMIT_SM:
            self._spawn(self._submit(session, pdu))
        elif command == Command.DELIVER_SM_RESP:
            self._receipt_answered(session, pdu)
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

    def _bind(self, session: _Session, pdu: Pdu) -> None:
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
        self._wakeup.set()

    async def _keep_alive(self, session: _Session) -> None:
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
        task.add_done_callback(self._tasks.discard)

    # --- submit_sm ----------------------------------------------------------------------------

    async def _submit(self, session: _Session, pdu: Pdu) -> None:
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
        stat, err = RECEIPTS.get(to, ("DELIVRD", 0))
        accepted = _Message(str(uuid.uuid4()), key, message.destination_addr,
                            message.source_addr, None if to == SILENT_NUMBER else stat, err,
                            _now_stamp())  # fmt: skip
        self.messages[accepted.message_id] = accepted
        self.accepted[key] += 1
        self._write(op="accept", key=key, id=accepted.message_id, to=accepted.to,
                    source=accepted.source, stat=accepted.stat, err=err,
                    submitted=accepted.submitted)  # fmt: skip
        if to == RECEIPT_FIRST_NUMBER and session.receives:
            self._send_receipt(session, accepted)
        elif accepted.stat is not None:
            self._schedule(accepted.message_id, self.config.receipt_delay_ms / 1000)
        session.send(response(pdu, body=message_id_body(accepted.message_id)))

    def _refusal(self, key: str, to: str) -> Status | None:
        if self._over_throughput():
            self.events["throttled"] += 1
            return Status.ESME_RTHROTTLED
        if to in REFUSED:
            return REFUSED[to]
        if to == QUEUE_FULL_NUMBER and self.submits[key] <= QUEUE_FULL_TIMES:
            return Status.ESME_RMSGQFUL
        if to == THROTTLED_NUMBER and self.submits[key] == 1:
            self.events["throttled"] += 1
            return Status.ESME_RTHROTTLED
        return None

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

    # --- receipts -----------------------------------------------------------------------------

    def _schedule(self, message_id: str, delay_s: float) -> None:
        self._tiebreak += 1
        due = asyncio.get_running_loop().time() + delay_s
        heapq.heappush(self._due, (due, self._tiebreak, message_id))
        self._wakeup.set()

    async def send_receipts(self) -> None:
        """Forever: send each due receipt on a bound session that takes receipts."""
        loop = asyncio.get_running_loop()
        turn = 0
        while True:
            receivers = [s for s in self.sessions if s.receives and not s.writer.is_closing()]
            if not self._due or not receivers:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            wait_s = self._due[0][0] - loop.time()
            if wait_s > 0:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), wait_s)
                continue
            _due, _tiebreak, message_id = heapq.heappop(self._due)
            if message_id in self.acked:
                continue
            turn += 1
            self._send_receipt(receivers[turn % len(receivers)], self.messages[message_id])
            if turn % 100 == 0:
                await asyncio.sleep(0)  # let submits in between a long run of receipts

    def _send_receipt(self, session: _Session, message: _Message) -> None:
        stat = message.stat or "DELIVRD"
        text = (f"id:{message.message_id} submit date:{message.submitted} "
                f"done date:{_now_stamp()} stat:{stat} err:{message.err:03d}")  # fmt: skip
        body = ShortMessage(
            source_addr=message.to, destination_addr=message.source, source_addr_ton=1,
            source_addr_npi=1, esm_class=ESM_RECEIPT, data_coding=DATA_CODING_DEFAULT,
            short_message=text.encode("ascii"),
            tlvs={Tag.RECEIPTED_MESSAGE_ID: message.message_id.encode("ascii") + b"\0",
                  Tag.MESSAGE_STATE: bytes([STATE_VALUES.get(stat, 7)])},
        ).encode()  # fmt: skip
        sequence = session.request(Command.DELIVER_SM, body)
        session.outstanding[sequence] = message.message_id
        self.events["receipts_sent"] += 1
        self._schedule(message.message_id, self.config.receipt_resend_s)  # unless answered

    def _receipt_answered(self, session: _Session, pdu: Pdu) -> None:
        message_id = session.outstanding.pop(pdu.sequence, None)
        if message_id is None or pdu.status != Status.ESME_ROK:
            self.events["receipts_refused"] += 1
            return  # its scheduled resend stands
        if message_id not in self.acked:
            self.acked.add(message_id)
            self.events["receipts_acked"] += 1
            self._write(op="ack", id=message_id)

    def inject_receipt(self, message_id: str, stat: str, err: int) -> None:
        """A receipt for any id, known or not (for tests of unknown ids)."""
        self.messages[message_id] = _Message(message_id, "-", "15550000000", "15550000001",
                                             stat, err, _now_stamp())  # fmt: skip
        self.acked.discard(message_id)
        self._schedule(message_id, 0.0)

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
            "receipts_pending": sum(1 for m in self.messages.values()
                                    if m.stat and m.message_id not in self.acked),
            "bound": sum(1 for s in self.sessions if s.bound is not None),
            **self.events,
        }  # fmt: skip

    def reset(self) -> None:
        self.submits.clear()
        self.accepted.clear()
        self.events.clear()
        self.messages.clear()
        self.acked.clear()
        self.recent.clear()
        self._due.clear()

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
