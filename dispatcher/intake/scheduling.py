"""Reading a create request's schedule: ``ScheduleType=fixed`` with ``SendAt``, in Twilio's window.

A scheduled message is stored as 'scheduled' with ``next_attempt_at = SendAt``; the sweeper
releases it to the pipeline at that time (workers/pipeline/scheduling.py). Nothing waits in the
broker.
"""

from datetime import UTC, datetime, timedelta

from dispatcher.errors import BadRequest, InvalidParameter
from dispatcher.intake.params import Params, single
from schemas.settings import get_settings

MAX_AHEAD = timedelta(days=35)  # Twilio schedules at most 35 days (3,024,000 s) ahead
SEND_AT_MISSING = 35111  # ScheduleType=fixed without SendAt
SEND_AT_TOO_SOON = 35114  # SendAt not a time, or less than the minimum lead ahead
SEND_AT_TOO_LATE = 35115  # SendAt more than 35 days ahead


def _instant(raw: str) -> datetime:
    """SendAt in UTC; a time that is not one, or has none in UTC (9999-12-31T23:00-01:00 is past
    the last representable instant), is refused."""
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidParameter(
            f"SendAt {raw!r} is not an ISO 8601 time such as 2026-05-15T14:30:00Z",
            code=SEND_AT_TOO_SOON,
        ) from exc


def parse_schedule(params: Params, now: datetime) -> datetime | None:
    """When the message is to be sent (None: at once); refuses what Twilio refuses."""
    schedule_type = single(params, "ScheduleType")
    send_at_raw = single(params, "SendAt")
    if schedule_type is None:
        if send_at_raw is not None:
            raise BadRequest("SendAt needs ScheduleType=fixed; without it nothing is scheduled")
        return None
    if schedule_type != "fixed":
        raise BadRequest(f"ScheduleType must be 'fixed', not {schedule_type!r}")
    if not send_at_raw:
        raise InvalidParameter("SendAt is required with ScheduleType=fixed", code=SEND_AT_MISSING)
    send_at = _instant(send_at_raw)
    min_ahead = timedelta(seconds=get_settings().schedule_min_ahead_s)
    if send_at < now + min_ahead:
        raise InvalidParameter(
            f"SendAt must be at least {min_ahead.total_seconds():.0f} seconds ahead",
            code=SEND_AT_TOO_SOON,
        )
    if send_at > now + MAX_AHEAD:
        raise InvalidParameter(
            f"SendAt must be at most {MAX_AHEAD.days} days ahead", code=SEND_AT_TOO_LATE
        )
    return send_at
