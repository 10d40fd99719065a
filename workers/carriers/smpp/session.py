"""One SMPP bind kept alive on an asyncio loop: connect, bind, window, enquire_link, reconnect.

A :class:`Link` owns one TCP (or TLS) connection at a time, bound as a transceiver, transmitter
or receiver, until :meth:`Link.close`:

- **connect and bind**; after a drop, a refused bind (0x0E on an open connection: closed, never
  retried in a loop), an ``unbind`` or any error nobody foresaw (logged with its traceback and
  counted: :mod:`workers.supervision`), again after a backoff with jitter (0.5 s doubling to 30).
- **window**: at most ``window`` ``submit_sm`` outstanding, matched by sequence number, each
  waiting ``timeout_s``. :meth:`Link.submit` raises :class:`NotSent` when its PDU never left
  (safe to send again) and :class:`Unanswered` when it left and no answer came.
- **back-pressure**: ``ESME_RTHROTTLED`` or ``ESME_RMSGQFUL`` halves the window (down to one) and
  pauses every sender a moment; each accepted ``submit_sm`` widens it by ``1/window`` (additive
  increase, as TCP does). A throttling SMSC sees the bind slow down, not a retry storm.
- **enquire_link** after ``enquire_link_s`` idle; unanswered within ``timeout_s``, the
  connection is dropped and made again. The SMSC's own is answered at once.
- ``deliver_sm`` goes to the owner's callback, which answers it after its receipt is committed
  (:meth:`Link.respond`); other requests get ``generic_nack``.
"""

import asyncio
import contextlib
import logging
import random
import ssl
import weakref
from collections import deque

from workers import supervision
from workers.carriers.smpp.bind import (
    EXPECTED_FAILURES,
    BindConfig,
    BindRefused,
    Connection,
    DeliverHandler,
    NotSent,
    Unanswered,
    read_pdu,
)
from workers.carriers.smpp.outcomes import BACK_PRESSURE
from workers.carriers.smpp.pdu import (
    BindBody,
    Command,
    Pdu,
    PduError,
    Status,
    generic_nack,
    response,
    status_name,
)

log = logging.getLogger(__name__)

RECONNECT_FIRST_S = 0.5  # first wait after a drop or a refused bind; doubles per failure ...
RECONNECT_MAX_S = 30.0  # ... up to this: a refused password is tried twice a minute at most
PAUSE_S = 0.1  # every sender on a throttled bind waits this long before the next submit_sm
UNBIND_WAIT_S = 2.0  # for unbind_resp at shutdown; the connection is closed either way
MAX_SEQUENCE = 0x7FFFFFFF  # sequence numbers run 1 .. 2^31-1 and wrap


class Link:
    """One bind, reconnected for as long as it runs; shared by every caller on its loop."""

    def __init__(
        self, config: BindConfig, command: Command, on_deliver: DeliverHandler | None = None
    ) -> None:
        self.config = config
        self.command = command
        self.label = f"{command.name.lower()} {config.system_id}@{config.host}:{config.port}"
        self._on_deliver = on_deliver
        self._conn: Connection | None = None
        self._bound = asyncio.Event()
        self._closing = False
        self._sequence = 0
        self._limit = float(config.window)  # the window in force: shrunk by back-pressure
        self._in_flight = 0
        self._waiting: deque[asyncio.Future[None]] = deque()  # for a place in the window
        self._last_cut = 0.0  # when back-pressure last shrank the window
        self._paused_until = 0.0
        self._runner: asyncio.Task[None] | None = None
        self._writers: weakref.WeakSet[asyncio.StreamWriter] = weakref.WeakSet()
        self.binds = 0  # successful binds, for tests and logs
        self.trouble = "not bound yet"  # why the link is down, when it is

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name=self.label)

    # --- requests -----------------------------------------------------------------------------

    async def submit(self, body: bytes, deadline: float) -> Pdu:
        """``submit_sm`` with ``body``: its response (any status but back-pressure, or
        back-pressure when the deadline leaves no time to try again)."""
        loop = asyncio.get_running_loop()
        while True:
            await self._take_slot(deadline)
            try:
                conn = await self._ready(deadline)
                sent_at = loop.time()
                answer = await self._request(conn, Command.SUBMIT_SM, body, self.config.timeout_s)
            finally:
                self._free_slot()
            if answer.status in BACK_PRESSURE:
                self._slow_down(sent_at, answer.status)
                if self._paused_until < deadline:
                    continue
            elif answer.status == Status.ESME_ROK:
                self._limit = min(float(self.config.window), self._limit + 1 / self._limit)
                self._hand_on()
            return answer

    def respond(self, conn: Connection, pdu: Pdu) -> bool:
        """Answer a request on the connection it came in on; False when that one is gone (the
        SMSC will send the request again on a new one)."""
        if not conn.alive or conn.writer.is_closing():
            return False
        conn.writer.write(pdu.encode())
        return True

    def _room(self) -> int:
        return max(1, int(self._limit))

    async def _take_slot(self, deadline: float) -> None:
        """A place in the window, first come first served; NotSent at the deadline."""
        if self._in_flight < self._room() and not self._waiting:
            self._in_flight += 1
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiting.append(waiter)
        try:
            await asyncio.wait_for(waiter, max(0.0, deadline - loop.time()))
        except TimeoutError:
            raise NotSent("the window stayed full") from None
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._free_slot()  # handed a place just as we were cancelled: pass it on
            raise
        finally:
            if not waiter.done() or waiter.cancelled():
                with contextlib.suppress(ValueError):
                    self._waiting.remove(waiter)

    def _free_slot(self) -> None:
        self._in_flight -= 1
        self._hand_on()

    def _hand_on(self) -> None:
        """Give free places to the longest waiting (the place is taken on their behalf)."""
        while self._waiting and self._in_flight < self._room():
            waiter = self._waiting.popleft()
            if not waiter.done():
                self._in_flight += 1
                waiter.set_result(None)

    async def _ready(self, deadline: float) -> Connection:
        """The bound connection, once no back-pressure pause holds it; NotSent at the deadline."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            if self._closing:
                raise NotSent("the bind is closing")
            if now >= deadline:
                raise NotSent("not bound" if not self.bound else "paused by back-pressure")
            if self._paused_until > now:
                await asyncio.sleep(min(self._paused_until, deadline) - now)
                continue
            conn = self._conn
            if conn is not None and conn.alive and self.bound:
                return conn
            try:
                await asyncio.wait_for(self._bound.wait(), deadline - now)
            except TimeoutError:
                raise NotSent(f"not bound to {self.label}") from None

    def _slow_down(self, sent_at: float, status: int) -> None:
        loop = asyncio.get_running_loop()
        if sent_at < self._last_cut:
            return  # sent before the last cut: that cut already answered this burst
        now = loop.time()
        self._last_cut = now
        self._limit = max(1.0, self._limit / 2)
        self._paused_until = now + PAUSE_S
        log.warning("%s: %s, window now %d", self.label, status_name(status), int(self._limit))

    def _next_sequence(self) -> int:
        self._sequence = self._sequence % MAX_SEQUENCE + 1
        return self._sequence

    async def _request(
        self, conn: Connection, command: Command, body: bytes, timeout_s: float
    ) -> Pdu:
        if not conn.alive or conn.writer.is_closing():
            raise NotSent("the connection is gone")
        sequence = self._next_sequence()
        answer: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        conn.pending[sequence] = answer
        conn.writer.write(Pdu(command, sequence, 0, body).encode())
        try:
            return await asyncio.wait_for(answer, timeout_s)
        except TimeoutError:
            what = command.name.lower()
            raise Unanswered(f"no response to {what} within {timeout_s:g} s") from None
        except ConnectionError as exc:
            raise Unanswered(f"connection lost before the response: {exc}") from None
        finally:
            conn.pending.pop(sequence, None)

    # --- the connection's life ----------------------------------------------------------------

    async def _run(self) -> None:
        delay_s = RECONNECT_FIRST_S
        while not self._closing:
            try:
                conn = await self._connect_and_bind()
            except EXPECTED_FAILURES as exc:
                self.trouble = f"{type(exc).__name__}: {exc}"
                log.warning("%s: %s", self.label, self.trouble)
            except Exception as exc:  # nobody foresaw it: logged, counted, and the link goes on
                self.trouble = f"{type(exc).__name__}: {exc}"
                supervision.failed(f"smpp {self.label}")
            else:
                delay_s = RECONNECT_FIRST_S
                await self._serve(conn)
            if self._closing:
                break
            wait_s = delay_s * random.uniform(0.5, 1.5)
            delay_s = min(delay_s * 2, RECONNECT_MAX_S)
            log.info("%s: connecting again in %.1f s", self.label, wait_s)
            await asyncio.sleep(wait_s)

    async def _connect_and_bind(self) -> Connection:
        config = self.config
        context = ssl.create_default_context() if config.tls else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                config.host,
                config.port,
                ssl=context,
                server_hostname=config.host if context else None,
            ),
            config.timeout_s,
        )
        self._writers.add(writer)
        try:
            body = BindBody(config.system_id, config.password, config.system_type).encode()
            sequence = self._next_sequence()
            writer.write(Pdu(self.command, sequence, 0, body).encode())
            answer = await asyncio.wait_for(read_pdu(reader), config.timeout_s)
            if answer.command_id not in (self.command | 0x80000000, Command.GENERIC_NACK):
                raise PduError(f"expected the bind response, got {answer.name}")
            if answer.status != Status.ESME_ROK:
                raise BindRefused(answer.status)
        except BaseException:
            writer.close()
            raise
        self.binds += 1
        log.info("%s: bound", self.label)
        return Connection(reader, writer, last_read=asyncio.get_running_loop().time())

    async def _serve(self, conn: Connection) -> None:
        """Read until the connection ends; then every outstanding request is unanswered."""
        self._conn = conn
        self._bound.set()
        keeper = asyncio.create_task(self._keep_alive(conn), name=f"{self.label} enquire_link")
        try:
            await self._read(conn)
        except (OSError, asyncio.IncompleteReadError, PduError) as exc:
            self.trouble = f"connection lost: {type(exc).__name__}: {exc}"
            if not self._closing:
                log.warning("%s: %s", self.label, self.trouble)
        except Exception as exc:  # nobody foresaw it: the connection is dropped and made again
            self.trouble = f"{type(exc).__name__}: {exc}"
            supervision.failed(f"smpp {self.label}")
        finally:
            self._bound.clear()
            conn.alive = False
            keeper.cancel()
            for answer in conn.pending.values():
                if not answer.done():
                    answer.set_exception(ConnectionError("the connection ended"))
            conn.writer.close()

    async def _read(self, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            pdu = await read_pdu(conn.reader)
            conn.last_read = loop.time()
            if pdu.is_response:
                answer = conn.pending.get(pdu.sequence)
                if answer is not None and not answer.done():
                    answer.set_result(pdu)
                else:
                    log.info("%s: %s for no outstanding request (seq %d)", self.label,
                             pdu.name, pdu.sequence)  # fmt: skip
            elif pdu.command_id == Command.ENQUIRE_LINK:
                self.respond(conn, response(pdu))
            elif pdu.command_id == Command.DELIVER_SM and self._on_deliver is not None:
                self._on_deliver(self, conn, pdu)
            elif pdu.command_id == Command.UNBIND:
                self.respond(conn, response(pdu))
                log.warning("%s: the SMSC unbound", self.label)
                return
            elif pdu.command_id != Command.ALERT_NOTIFICATION:  # that one wants no answer
                self.respond(conn, generic_nack(pdu.sequence, Status.ESME_RINVCMDID))

    async def _keep_alive(self, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        interval_s = self.config.enquire_link_s
        while conn.alive:
            idle_s = loop.time() - conn.last_read
            if idle_s < interval_s:
                await asyncio.sleep(interval_s - idle_s)
                continue
            try:
                await self._request(conn, Command.ENQUIRE_LINK, b"", self.config.timeout_s)
            except Unanswered as exc:
                log.warning("%s: enquire_link unanswered (%s); reconnecting", self.label, exc)
                conn.writer.close()
                return
            except NotSent:
                return
            except Exception:  # a link nobody watches is worse than a new one
                supervision.failed(f"smpp {self.label} enquire_link")
                conn.writer.close()
                return

    # --- shutdown -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Take no more submits, let the window drain (up to ``timeout_s``), unbind, close."""
        loop = asyncio.get_running_loop()
        self._closing = True
        self._bound.set()  # wake anyone waiting for a bind: they see the link closing
        deadline = loop.time() + self.config.timeout_s
        while self._in_flight and loop.time() < deadline:
            await asyncio.sleep(0.02)
        conn = self._conn
        if conn is not None and conn.alive:
            try:
                await self._request(conn, Command.UNBIND, b"", UNBIND_WAIT_S)
            except (Unanswered, NotSent) as exc:
                log.info("%s: unbind: %s", self.label, exc)
            conn.writer.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for writer in self._writers:  # every connection closed before the loop stops
            writer.close()
            with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), UNBIND_WAIT_S)
        log.info("%s: closed", self.label)
