"""What a bind is made of: its settings, one connection of it, reading PDUs off that connection,
and how sending on it can fail."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from workers.carriers.smpp.pdu import HEADER_BYTES, Pdu, PduError, read_header, status_name

if TYPE_CHECKING:
    from workers.carriers.smpp.session import Link


class NotSent(Exception):
    """The PDU never left: sending it again cannot duplicate it."""


class Unanswered(Exception):
    """The PDU left and no response came: the SMSC may or may not have it."""


class BindRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"bind refused: {status_name(status)}")
        self.status = status


# What connecting and binding may meet, logged in one line; anything else gets a traceback.
EXPECTED_FAILURES = (OSError, TimeoutError, asyncio.IncompleteReadError, PduError, BindRefused)


@dataclass(frozen=True)
class BindConfig:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    window: int = 10  # outstanding submit_sm
    enquire_link_s: float = 30.0  # idle time before we ask whether the SMSC is there
    timeout_s: float = 10.0  # connect, bind, and each response
    tls: bool = False


@dataclass(eq=False)
class Connection:
    """One TCP connection of a link; a response is matched within it only."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    pending: dict[int, asyncio.Future[Pdu]] = field(default_factory=dict)
    last_read: float = 0.0
    alive: bool = True


DeliverHandler = Callable[["Link", Connection, Pdu], None]  # a deliver_sm for the link's owner


async def read_pdu(reader: asyncio.StreamReader) -> Pdu:
    header = await reader.readexactly(HEADER_BYTES)
    length, command_id, status, sequence = read_header(header)
    body = await reader.readexactly(length - HEADER_BYTES)
    return Pdu(command_id, sequence, status, body)
