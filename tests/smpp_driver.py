"""The SMPP driver as tests open it on the simulator's SMSC, the inbox its receipts go to
instead of the database, and the segments they send."""

import contextlib
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.smsc import Smsc
from workers.carriers.base import Accepted, Submission
from workers.carriers.smpp.bind import BindConfig
from workers.carriers.smpp.driver import SmppCarrierDriver, SmppConfig

SENDER = "+4915112345678"


class Inbox:
    """Receipts as the driver hands them over; can be told to fail the next stores."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.failures = 0
        self._lock = threading.Lock()

    def __call__(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            if self.failures:
                self.failures -= 1
                raise RuntimeError("database down")
            self.rows.extend(rows)

    def by_id(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {row["carrier_id"]: row for row in self.rows}


def destination() -> str:
    return f"+1202{random.randrange(1_000_000, 9_999_999)}"


def submission(to: str, text: str = "hello", *, part: int = 1, total: int = 1, ref: int = 0,
               sender: str = SENDER, encoding: str = "GSM-7") -> Submission:  # fmt: skip
    return Submission(f"SM{uuid.uuid4().hex}-{part}", to, sender, text, part, total, ref,
                      encoding=encoding,
                      expires_at=datetime.now(UTC) + timedelta(hours=1))  # fmt: skip


def eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "not true in time"
        time.sleep(0.02)


def open_driver(
    smsc: Smsc, inbox: Inbox, *, wait_bound: bool = True, **options: Any
) -> SmppCarrierDriver:
    """The driver on ``smsc`` (bound, unless ``wait_bound`` is False); the caller closes it."""
    bind_options = {key: options.pop(key) for key in list(options)
                    if key in ("password", "window", "enquire_link_s", "timeout_s", "port", "tls")}  # fmt: skip
    bind = BindConfig(**{"host": "127.0.0.1", "port": smsc.port, "system_id": "test",
                         "password": "pw", "timeout_s": 3.0, **bind_options})  # fmt: skip
    bucket = options.pop("bucket", None)
    on_accepted = options.pop("on_accepted", None)
    on_inbound = options.pop("on_inbound", None)
    driver = SmppCarrierDriver(SmppConfig(bind=bind, **options), inbox, bucket, on_accepted,
                               on_inbound)  # fmt: skip
    if wait_bound:
        eventually(lambda: driver.sender.bound, 5)
    return driver


@contextlib.contextmanager
def opened_driver(smsc: Smsc, inbox: Inbox, **options: Any) -> Iterator[SmppCarrierDriver]:
    """:func:`open_driver`, closed on exit."""
    driver = open_driver(smsc, inbox, **options)
    try:
        yield driver
    finally:
        driver.close()


def accepted_ids(results: list[Any]) -> list[str]:
    assert all(isinstance(result, Accepted) for result in results), results
    return [result.carrier_id for result in results]
