"""The ``deliver_sm`` receipts arriving on a process's binds, stored before they are answered.

They are parsed on the loop and stored in batches through ``on_receipts`` (the receipt inbox:
``workers.stages.receipts.store``, then the receipts stage is woken), on a thread of their own.
``deliver_sm_resp`` goes back only after the batch is committed; if the commit fails they are
answered ``ESME_RX_T_APPN`` so the SMSC sends them again. Receipts are idempotent, so a receipt
the SMSC repeats changes nothing.
"""

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workers import supervision
from workers.carriers.smpp.bind import Connection
from workers.carriers.smpp.outcomes import HexIds, Receipt, is_receipt, normalise_id, read_receipt
from workers.carriers.smpp.pdu import Pdu, PduError, ShortMessage, Status, response
from workers.carriers.smpp.session import Link

log = logging.getLogger(__name__)

RECEIPT_BATCH = 500  # receipts stored per transaction
STORE_RETRY_S = 1.0  # after a failed store, before the next batch (the SMSC resends anyway)
ReceiptSink = Callable[[list[dict[str, Any]]], None]


@dataclass(frozen=True)
class _Stored:
    link: Link
    conn: Connection
    request: Pdu
    receipt: dict[str, Any]


class ReceiptStore:
    """Takes each ``deliver_sm`` of the binds; answers receipts once their batch is stored.

    Made on the driver's loop, which runs :meth:`run` and calls :meth:`deliver`."""

    def __init__(self, on_receipts: ReceiptSink, hex_ids: HexIds) -> None:
        self._on_receipts = on_receipts
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
        receipt = read_receipt(message) if is_receipt(message) else None
        if receipt is None:
            log.warning(
                "%s: deliver_sm from %s is not a delivery receipt; acknowledged and "
                "dropped (no inbound messages here)",
                link.label,
                message.source_addr,
            )
            link.respond(conn, response(request))
            return
        if not receipt.final:
            link.respond(conn, response(request))
            return
        self.unanswered += 1
        self._queue.put_nowait(_Stored(link, conn, request, self._inbox_row(receipt)))

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
        rows = [item.receipt for item in batch]
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._on_receipts, rows)
        except Exception:
            log.exception("smpp: %d receipts not stored; the SMSC will send them again", len(batch))
            for item in batch:
                item.link.respond(item.conn, response(item.request, Status.ESME_RX_T_APPN))
            return False
        for item in batch:
            item.link.respond(item.conn, response(item.request))
        return True

    def shutdown(self) -> None:
        """Wait for a store under way; after the loop has stopped."""
        self._pool.shutdown(wait=True)
