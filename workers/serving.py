"""uvicorn's server with its housekeeping once a second, for every HTTP process we run (the
API, the console, the carrier simulator).

uvicorn's own loop wakes ten times a second to see whether it was told to stop and, every
tenth time, to refresh the ``Date`` header. Idle, those wake-ups were most of an API
process's CPU: 2.2-2.5 ms a second each, a quarter of the idle platform. Here the loop wakes
once a second (the ``Date`` header keeps its one-second resolution) and a signal wakes it at
once, so stopping is as prompt as before.
"""

import asyncio
import contextlib
import socket
from types import FrameType

import uvicorn

TICK_S = 1.0


class QuietServer(uvicorn.Server):
    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        # uvicorn refreshes the Date header on ticks whose count is a multiple of ten.
        ticks = 0
        while not await self.on_tick(ticks):
            ticks += 10
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_S)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            # A signal handler runs between the loop's own steps: hand the wake-up to the loop.
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(wake.set)


STARTUP_FAILURE = 3  # uvicorn's exit code for an app that failed to start


def serve(config: uvicorn.Config, sockets: list[socket.socket] | None = None) -> None:
    """Serve ``config``'s app in this process (on ``sockets`` if given) until SIGINT or
    SIGTERM; exits non-zero if it never started."""
    server = QuietServer(config)
    server.run(sockets=sockets)
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)
