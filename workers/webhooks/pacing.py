"""When a callbacks worker's claimer claims: how long it rests after a claim, and how long it
waits when nothing asks it to (a wake-up from a status change, a settled callback's successor
left due, a full claim)."""

from collections.abc import Iterable
from datetime import datetime

CLAIM_EVERY_S = 0.01  # claims are at most this frequent: completions are claimed for in batches
# With no wake-up and no retry of its own due, the claimer still looks this often: the net
# under a lost wake-up, as frequent as the sweeper's (which wakes the stage for what is due).
IDLE_CHECK_S = 5.0


def rest_after_claim(claimed: int, room: int, skipped: bool, took_s: float) -> float:
    """Seconds the claimer rests after a claim. A full one found work all the way: claim again
    soon. A short one that left busy endpoints out may have scanned past their due callbacks:
    rest four times as long as it took, so such claims take at most a fifth of the claimer's
    time, however large the backlog they skip. One that left none out found all there was."""
    if claimed < room and skipped:
        return max(CLAIM_EVERY_S, 4.0 * took_s)
    return CLAIM_EVERY_S


class Retries:
    """When the earliest retry this process recorded falls due: the claimer wakes for it then,
    not at its next idle look (a retry recorded elsewhere is that process's to wake for, or
    the sweeper's)."""

    def __init__(self) -> None:
        self._due: datetime | None = None

    def add(self, due: Iterable[datetime | None]) -> None:
        times = [at for at in due if at is not None]
        if times:
            earliest = min(times)
            self._due = earliest if self._due is None else min(self._due, earliest)

    def wait_s(self, now: datetime) -> float:
        """How long the claimer may wait for a wake-up, at most :data:`IDLE_CHECK_S`."""
        if self._due is None:
            return IDLE_CHECK_S
        return min(IDLE_CHECK_S, max(0.0, (self._due - now).total_seconds()))

    def claimed(self, at: datetime) -> None:
        """A claim ran at ``at``: every retry due by then was due to it."""
        if self._due is not None and self._due <= at:
            self._due = None
