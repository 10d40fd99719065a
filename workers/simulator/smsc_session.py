"""One connection to the simulator's SMSC: its bind, its sequence numbers and the receipts
sent on it that wait for their ``deliver_sm_resp``."""

import asyncio
from dataclasses import dataclass, field

from workers.carriers.smpp.pdu import Command, Pdu


@dataclass(eq=False)
class Session:
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
