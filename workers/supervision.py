"""No background loop of the platform dies silently.

A loop that keeps a connection, publishes wake-ups, stores receipts, commits requests, flushes
metrics or polls for work runs under :func:`forever` (a thread) or :func:`forever_async` (an
asyncio task). An exception the loop did not expect is logged with its traceback, counted in
``mycpaas_background_errors_total{loop}``, and the loop starts again after a pause that doubles
from half a second to 30 s (and falls back once the loop has run clean for a minute). A loop
that returns has finished on purpose and is not started again.

Loops that handle their own expected failures (a database away, a connection dropped) keep doing
so; this is the net under them, for the failure nobody foresaw.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable

from workers.metrics import BACKGROUND_ERRORS, recorder

log = logging.getLogger(__name__)

FIRST_PAUSE_S = 0.5
MAX_PAUSE_S = 30.0
CLEAN_RUN_S = 60.0  # a loop that ran this long since its last failure starts from the first pause


def failed(loop: str) -> None:
    """Log the exception being handled (with its traceback) and count it for ``loop``."""
    log.exception("%s: unexpected error; carrying on", loop)
    recorder.count(BACKGROUND_ERRORS, loop=loop)


class _Pauses:
    def __init__(self) -> None:
        self.next_s = FIRST_PAUSE_S

    def after_failure(self, ran_s: float) -> float:
        if ran_s >= CLEAN_RUN_S:
            self.next_s = FIRST_PAUSE_S
        pause, self.next_s = self.next_s, min(self.next_s * 2, MAX_PAUSE_S)
        return pause


def forever(loop: str, body: Callable[[], None], stop: threading.Event | None = None) -> None:
    """Run ``body`` (a thread's loop) until it returns or ``stop`` is set; restart it after an
    unexpected exception."""
    stop = stop or threading.Event()
    pauses = _Pauses()
    while not stop.is_set():
        started = time.monotonic()
        try:
            body()
            return
        except Exception:
            failed(loop)
        stop.wait(pauses.after_failure(time.monotonic() - started))


async def forever_async(loop: str, body: Callable[[], Awaitable[None]]) -> None:
    """As :func:`forever`, for a coroutine function on an event loop (until cancelled)."""
    pauses = _Pauses()
    clock = asyncio.get_running_loop()
    while True:
        started = clock.time()
        try:
            await body()
            return
        except Exception:
            failed(loop)
        await asyncio.sleep(pauses.after_failure(clock.time() - started))


def thread(
    loop: str, body: Callable[[], None], stop: threading.Event | None = None
) -> threading.Thread:
    """A started daemon thread running ``body`` under :func:`forever`."""
    running = threading.Thread(target=forever, args=(loop, body, stop), name=loop, daemon=True)
    running.start()
    return running
