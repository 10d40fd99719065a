"""Every PDU between the driver and the SMSC, decoded by a codec nobody here wrote.

``WireCheck`` is a TCP relay in front of the SMSC. Each PDU that crosses it, either way, is
forwarded unchanged and also decoded with ``smpp.pdu`` (the PDU library of Jasmin's SMPP server,
``smpp.pdu3`` on PyPI): what it refuses, a real SMSC refuses too. Tests connect the driver to
the relay's port and assert that :attr:`WireCheck.refused` stays empty.
"""

import asyncio
import contextlib
import io
import struct
import threading
from collections.abc import Iterator

from smpp.pdu.pdu_encoding import PDUEncoder

HEADER = struct.Struct(">IIII")


class WireCheck:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.refused: list[str] = []  # "<direction> <hex>: <why>" for each PDU smpp.pdu refused
        self.checked = {"driver": 0, "smsc": 0}  # PDUs decoded per sender
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="smpp-wire", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._relay, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        self._loop.run_until_complete(asyncio.sleep(0))
        self._loop.close()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(5)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        pumps = [
            asyncio.create_task(self._pump("driver", reader, up_writer)),
            asyncio.create_task(self._pump("smsc", up_reader, writer)),
        ]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        for one in (writer, up_writer):
            one.close()

    async def _pump(
        self, sender: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                header = await reader.readexactly(HEADER.size)
                length = HEADER.unpack(header)[0]
                body = await reader.readexactly(max(0, length - HEADER.size))
                self._check(sender, header + body)
                writer.write(header + body)
                await writer.drain()

    def _check(self, sender: str, octets: bytes) -> None:
        self.checked[sender] += 1
        try:
            PDUEncoder().decode(io.BytesIO(octets))
        except Exception as exc:  # whatever smpp.pdu raises is a refusal
            self.refused.append(f"from {sender} {octets.hex()}: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def wire_check(upstream_port: int) -> Iterator[WireCheck]:
    """A relay to ``upstream_port``; on exit, every PDU that crossed it must have decoded."""
    check = WireCheck(upstream_port)
    check.start()
    try:
        yield check
    finally:
        check.stop()
    assert check.refused == [], "PDUs a real SMSC's decoder refuses"
