"""The ``deliver_sm`` arriving on a process's binds, stored before they are answered.

A receipt goes through ``on_receipts`` (the receipt inbox: ``workers.stages.receipts.store``,
then the receipts stage is woken); a message a handset sent (MO, smpp/mo.py) through
``on_inbound`` (``workers.stages.inbound.store``). They are parsed on the loop and stored in
batches on a thread of their own. ``deliver_sm_resp`` goes back only after the batch is
committed; if the commit fails they are answered ``ESME_RX_T_APPN`` so the SMSC sends them
again. Receipts are idempotent, so a receipt the SMSC repeats changes nothing; a repeated part
of a concatenated MO is dropped; a repeated MO of one part cannot be told from a new one.
"""

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workers import supervision
from workers.carriers.smpp.bind import Connection
from workers.carriers.smpp.mo import UnreadableMo, read_mo
from workers.carriers.smpp.outcomes import (
    HexIds,
    Receipt,
    is_mo,
    is_receipt,
    normalise_id,
    read_receipt,
)
from workers.carriers.smpp.pdu import Pdu, PduError, ShortMessage, Status, response
from workers.carriers.smpp.session import Link

log = logging.getLogger(__name__)

RECEIPT_BATCH = 500  # receipts stored per transaction
STORE_RETRY_S = 1.0  # after a failed store, before the next batch (the SMSC resends anyway)
MO_CARRIER = "smpp"  # the inbound_parts.carrier of what the binds receive
ReceiptSink = Callable[[list[dict[str, Any]]], None]


@dataclass(frozen=True)
class _Stored:
    link: Link
    conn: Connection
    request: Pdu
    receipt: dict[str, Any] | None  # a receipt's inbox row, or
    part: dict[str, Any] | None  # an MO part's row


class ReceiptStore:
    """Takes each ``deliver_sm`` of the binds; answers receipts and MO once their batch is
    stored. Without ``on_inbound`` an MO is acknowledged and dropped, with a warning.

    Made on the driver's loop, which runs :meth:`run` and calls :meth:`deliver`."""

    def __init__(
        self, on_receipts: ReceiptSink, hex_ids: HexIds, on_inbound: ReceiptSink | None = None
    ) -> None:
        self._on_receipts = on_receipts
        self._on_inbound = on_inbound
        self._hex_ids = hex_ids
        self._pool = concurrent.futures.ThreadPoolExecutor(1, "smpp-receipts")
        self._queue: asyncio.Queue[_Stored] = asyncio.Queue()
        self.unanswered = 0  # receipts taken and not answered yet

    def deliver(self, link: Link, conn: Connection, request: Pdu) -> None:
        """A deliver_sm: a receipt to store (answered after its commit), or anything else,
        answered at once."""
        try:
            message = ShortMessage.decode(request.body)
        except PduError as exc:
            log.warning("%s: deliver_sm unreadable: %s", link.label, exc)
            link.respond(conn, response(request, exc.status))
            return
        if is_mo(message):
            self._inbound(link, conn, request, message)
            return
        if not is_receipt(message):  # an SME or intermediate acknowledgement: nothing to keep
            log.info("%s: deliver_sm of esm_class %#04x from %s acknowledged", link.label,
                     message.esm_class, message.source_addr)  # fmt: skip
            link.respond(conn, response(request))
            return
        receipt = read_receipt(message)
        if receipt is None or not receipt.final:
            if receipt is None:
                log.warning("%s: receipt from %s names no message; dropped", link.label,
                            message.source_addr)  # fmt: skip
            link.respond(conn, response(request))
            return
        self.unanswered += 1
        self._queue.put_nowait(_Stored(link, conn, request, self._inbox_row(receipt), None))

    def _inbound(self, link: Link, conn: Connection, request: Pdu, message: ShortMessage) -> None:
        if self._on_inbound is None:
            log.warning("%s: a message from %s acknowledged and dropped (this bind takes no "
                        "inbound messages)", link.label, message.source_addr)  # fmt: skip
            link.respond(conn, response(request))
            return
        try:
            part = read_mo(message)
        except UnreadableMo as exc:  # it would never read better: refuse it for good
            log.warning("%s: a message from %s refused: %s", link.label, message.source_addr,
                        exc)  # fmt: skip
            link.respond(conn, response(request, Status.ESME_RX_P_APPN))
            return
        self.unanswered += 1
        self._queue.put_nowait(_Stored(link, conn, request, None, part.row(MO_CARRIER)))

    def _inbox_row(self, receipt: Receipt) -> dict[str, Any]:
        carrier_id = normalise_id(receipt.message_id, hexadecimal=self._hex_ids == "receipt")
        return {
            "carrier_id": carrier_id[:64],
            "status": "delivered" if receipt.delivered else "undelivered",
            "error_code": receipt.error_code,
            "reference": None,
            "done_date": receipt.done_date,
        }

    async def run(self) -> None:
        """Forever: store what arrived in one transaction, then answer each deliver_sm."""
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < RECEIPT_BATCH:
                batch.append(self._queue.get_nowait())
            try:
                stored = await self._store(batch)
            except Exception:  # nobody foresaw it: the SMSC sends them again; go on
                supervision.failed("smpp receipts")
                stored = False
            finally:
                self.unanswered -= len(batch)
            if not stored:
                await asyncio.sleep(STORE_RETRY_S)

    async def _store(self, batch: list[_Stored]) -> bool:
        """Store the batch and answer it ROK; on a failed store answer it with a temporary
        error (the SMSC sends it again). False when the store failed."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._keep, batch)
        except Exception:
            log.exception("smpp: %d deliver_sm not stored; the SMSC will send them again",
                          len(batch))  # fmt: skip
            for item in batch:
                item.link.respond(item.conn, response(item.request, Status.ESME_RX_T_APPN))
            return False
        for item in batch:
            item.link.respond(item.conn, response(item.request))
        return True

    def _keep(self, batch: list[_Stored]) -> None:
        receipts = [item.receipt for item in batch if item.receipt is not None]
        parts = [item.part for item in batch if item.part is not None]
        if receipts:
            self._on_receipts(receipts)
        if parts and self._on_inbound is not None:
            self._on_inbound(parts)

    def shutdown(self) -> None:
        """Wait for a store under way; after the loop has stopped."""
        self._pool.shutdown(wait=True)
