"""The carrier driver interface: what a hand-off submits, what comes back, and how it fails.

A driver hands segments (:class:`Submission`) to a carrier and answers one :class:`Result` per
segment, in order. A result is about that one segment; an exception is about the whole request:

CarrierError                  the request as a whole got no per-segment answer
├── TransientCarrierError     connect error, timeout, 429, 5xx: may be retried (``retry_after_s``)
│   ├── MalformedAnswer       the carrier answered, but not in the contract's shape
│   └── CredentialsRefused    401/403: the platform's credentials, not the message, are wrong
└── PermanentCarrierError     refused as sent (a 4xx other than 429, a 3xx since redirects are
                              not followed, an unusable URL): the same request would fail again

A malformed answer is transient on purpose: the carrier may well have taken the segments, so
failing them would report ``failed`` for messages that get delivered. Sending the same references
again is safe (the carrier answers a known reference with its first result), and a row left in
``sending`` is reconciled through :meth:`CarrierDriver.lookup`.

After a :class:`TransientCarrierError` raised by a timeout the carrier may or may not have the
segments; the same holds for a :class:`Deferred` from the generic HTTP driver. Neither is ever
a reason to change the reference: re-submitting the same reference is what makes it safe.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

MAX_RETRY_AFTER_S = 3600.0  # cap on a Retry-After hint: longer is more likely a bug than a plan


@dataclass(frozen=True)
class Submission:
    """One segment handed to the carrier."""

    reference: str  # "<message sid>-<part number>", unique per segment; the carrier dedupes on it
    to: str
    from_: str
    text: str
    part: int  # 1-based
    total: int
    udh_ref: int  # concatenation reference 0-255, the same for every part of one message
    media: tuple[str, ...] = ()  # media references (URLs or ids) for MMS; empty for SMS
    encoding: str = "GSM-7"  # the message's: "GSM-7" or "UCS-2" (segmentation decided it)
    expires_at: datetime | None = None  # end of the message's ValidityPeriod (UTC)


@dataclass(frozen=True)
class Accepted:
    """The carrier took the segment; its receipt will name ``carrier_id``."""

    reference: str
    carrier_id: str


@dataclass(frozen=True)
class Rejected:
    """The carrier refused the segment for good (30003/30005/30006/30007/30008)."""

    reference: str
    error_code: int
    message: str


@dataclass(frozen=True)
class Deferred:
    """The carrier did not take the segment this time (throttled, temporary error)."""

    reference: str
    retry_after_s: float
    message: str


Result = Accepted | Rejected | Deferred


def sid_of(reference: str) -> str:
    """The message sid of a segment's reference ``<sid>-<part>``."""
    return reference.rsplit("-", 1)[0]


def part_of(reference: str) -> int:
    """The part number of a segment's reference ``<sid>-<part>``."""
    return int(reference.rsplit("-", 1)[1])


def sids_of(submissions: Sequence[Submission]) -> list[str]:
    """The messages these segments belong to, each once (for log lines)."""
    return sorted({sid_of(submission.reference) for submission in submissions})


class CarrierError(Exception):
    """The whole request failed; no per-segment result exists."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code  # HTTP status of the answer, None without one


class TransientCarrierError(CarrierError):
    """The request may succeed later: connect error, timeout, 429, 5xx."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after_s = retry_after_s  # the carrier's Retry-After; None when it gave none


class CarrierUnreachable(TransientCarrierError):
    """No connection to the carrier could be made (refused, no route, connect timeout)."""


class MalformedAnswer(TransientCarrierError):
    """The carrier answered outside the contract (not JSON, wrong shape, results missing)."""


class CredentialsRefused(TransientCarrierError):
    """The carrier refused our credentials (401/403): a configuration fault of the platform.
    The messages wait (with backoff, within their validity) until it is fixed."""


class PermanentCarrierError(CarrierError):
    """The carrier refused the request as sent; the same request would be refused again."""


class CarrierDriver(Protocol):
    """What the pipeline calls. One driver per process; it holds its connections until close."""

    def submit(self, submissions: Sequence[Submission]) -> list[Result]:
        """One result per submission, in the same order.

        Raises TransientCarrierError / PermanentCarrierError when the request as a whole fails.
        """
        ...

    def lookup(self, reference: str) -> Accepted | Rejected | None:
        """What the carrier accepted under ``reference``; None when it never accepted it (send
        it again). A driver that cannot look references up answers by its policy: None, or
        Rejected to fail the segment rather than risk sending it twice.

        Used to reconcile rows stuck in ``sending``; never counts as a submission.
        """
        ...

    def close(self) -> None: ...


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds or an HTTP-date); None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)
