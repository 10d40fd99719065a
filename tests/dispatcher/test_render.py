"""Twilio's date format, rendered fast, must equal what the standard library renders."""

from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from dispatcher.api.render import _rfc2822


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2023, 8, 24, 5, 1, 45, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC),
        datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC),
        datetime(2026, 11, 28, 1, 2, 3, tzinfo=timezone(timedelta(hours=5))),
    ],
)
def test_rfc2822_matches_the_standard_library(moment: datetime) -> None:
    assert _rfc2822(moment) == format_datetime(moment.astimezone(UTC))
