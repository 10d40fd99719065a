"""The receipts the simulator's SMSC sends, as Jasmin's SMPP server does: ``deliver_sm``
(``esm_class`` 0x04) with the ``receipted_message_id`` and ``message_state`` TLVs and the short
text ``id:… submit date:… done date:… stat:… err:…``, one per part, in no particular order, on
any bound session that takes receipts, and sent again when their ``deliver_sm_resp`` does not
come (or is not ROK).

The same queue carries messages the "handsets" send (MO, :meth:`Receipts.originate`): a
``deliver_sm`` with ``esm_class`` 0 (0x40 with a concatenation UDH for a part), sent again until
it is answered ROK, as an SMSC retries what the ESME did not take."""

import asyncio
import contextlib
import heapq
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from workers.carriers.smpp import gsm7
from workers.carriers.smpp.outcomes import STATES
from workers.carriers.smpp.pdu import (
    DATA_CODING_DEFAULT,
    DATA_CODING_UCS2,
    ESM_RECEIPT,
    ESM_UDHI,
    Command,
    Pdu,
    ShortMessage,
    Status,
    Tag,
    concatenation_udh,
)
from workers.simulator.smsc_session import Session

STATE_VALUES = {name: value for value, name in STATES.items()}


@dataclass
class Message:
    message_id: str
    key: str
    to: str  # the handset: the receipt's source
    source: str  # the sender: the receipt's destination
    stat: str | None  # None: no receipt, ever
    err: int
    submitted: str  # YYMMDDhhmm


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%y%m%d%H%M")


class Receipts:
    """The accepted messages, the receipts due and those acknowledged."""

    def __init__(
        self,
        sessions: set[Session],
        events: Counter[str],
        resend_s: float,
        record: Callable[..., None],
    ) -> None:
        self.sessions = sessions  # the SMSC's, to send on
        self.events = events  # the SMSC's counters
        self.resend_s = resend_s  # a deliver_sm not answered ROK is sent again after this
        self._record = record  # into the journal
        self.messages: dict[str, Message] = {}
        self.acked: set[str] = set()
        self.mo: dict[str, bytes] = {}  # MO deliver_sm bodies by id, until acknowledged
        self.due: list[tuple[float, int, str]] = []  # (loop time, tiebreak, message id)
        self._tiebreak = 0
        self.wakeup = asyncio.Event()

    def schedule(self, message_id: str, delay_s: float) -> None:
        self._tiebreak += 1
        due = asyncio.get_running_loop().time() + delay_s
        heapq.heappush(self.due, (due, self._tiebreak, message_id))
        self.wakeup.set()

    async def send_due(self) -> None:
        """Forever: send each due receipt on a bound session that takes receipts."""
        loop = asyncio.get_running_loop()
        turn = 0
        while True:
            receivers = [s for s in self.sessions if s.receives and not s.writer.is_closing()]
            if not self.due or not receivers:
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            wait_s = self.due[0][0] - loop.time()
            if wait_s > 0:
                self.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), wait_s)
                continue
            _due, _tiebreak, message_id = heapq.heappop(self.due)
            if message_id in self.acked:
                continue
            turn += 1
            receiver = receivers[turn % len(receivers)]
            if message_id in self.mo:
                self._send_mo(receiver, message_id)
            else:
                self.send(receiver, self.messages[message_id])
            if turn % 100 == 0:
                await asyncio.sleep(0)  # let submits in between a long run of receipts

    def send(self, session: Session, message: Message) -> None:
        stat = message.stat or "DELIVRD"
        text = (f"id:{message.message_id} submit date:{message.submitted} "
                f"done date:{now_stamp()} stat:{stat} err:{message.err:03d}")  # fmt: skip
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
        self.schedule(message.message_id, self.resend_s)  # unless answered

    def originate(self, source: str, destination: str, text: str, parts: int = 1,
                  reverse: bool = False) -> list[str]:  # fmt: skip
        """A handset's message to ``destination``, in ``parts`` parts (a concatenation UDH with
        one 8-bit reference), last part first if ``reverse``; returns the parts' ids."""
        try:
            coding, octets = DATA_CODING_DEFAULT, gsm7.encode(text)
            unit = 1
        except ValueError:
            coding, octets, unit = DATA_CODING_UCS2, text.encode("utf-16-be"), 2
        size = -(-len(octets) // unit // parts) * unit if octets else 0
        chunks = (
            [octets[n * size : (n + 1) * size] for n in range(parts)] if parts > 1 else [octets]
        )
        reference = secrets.randbelow(256)
        ids = []
        for number, chunk in enumerate(chunks, start=1):
            udh = concatenation_udh(reference, parts, number) if parts > 1 else b""
            body = ShortMessage(
                source_addr=source.lstrip("+"), destination_addr=destination.lstrip("+"),
                source_addr_ton=1, source_addr_npi=1, dest_addr_ton=1, dest_addr_npi=1,
                esm_class=ESM_UDHI if udh else 0, data_coding=coding, short_message=udh + chunk,
            ).encode()  # fmt: skip
            message_id = f"mo-{secrets.token_hex(8)}"
            self.mo[message_id] = body
            ids.append(message_id)
        for message_id in reversed(ids) if reverse else ids:
            self.schedule(message_id, 0.0)
        self.events["mo_originated"] += 1
        return ids

    def _send_mo(self, session: Session, message_id: str) -> None:
        sequence = session.request(Command.DELIVER_SM, self.mo[message_id])
        session.outstanding[sequence] = message_id
        self.events["mo_sent"] += 1
        self.schedule(message_id, self.resend_s)  # unless answered

    def answered(self, session: Session, pdu: Pdu) -> None:
        message_id = session.outstanding.pop(pdu.sequence, None)
        if message_id is not None and message_id in self.mo:
            if pdu.status == Status.ESME_ROK:
                self.acked.add(message_id)
                del self.mo[message_id]
                self.events["mo_acked"] += 1
            else:
                self.events["mo_refused"] += 1
            return
        if message_id is None or pdu.status != Status.ESME_ROK:
            self.events["receipts_refused"] += 1
            return  # its scheduled resend stands
        if message_id not in self.acked:
            self.acked.add(message_id)
            self.events["receipts_acked"] += 1
            self._record(op="ack", id=message_id)

    def inject(self, message_id: str, stat: str, err: int) -> None:
        """A receipt for any id, known or not (for tests of unknown ids)."""
        self.messages[message_id] = Message(message_id, "-", "15550000000", "15550000001",
                                            stat, err, now_stamp())  # fmt: skip
        self.acked.discard(message_id)
        self.schedule(message_id, 0.0)

    def pending(self) -> int:
        """Receipts owed and not acknowledged yet."""
        return sum(1 for m in self.messages.values() if m.stat and m.message_id not in self.acked)

    def clear(self) -> None:
        self.messages.clear()
        self.mo.clear()
        self.acked.clear()
        self.due.clear()
