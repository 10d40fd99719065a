"""Logging set up for a worker or API process: the pipeline's lines, not a line per request."""

import logging
from collections.abc import Iterator

import pytest

from schemas.settings import get_settings
from workers.logs import configure_logging


@pytest.fixture
def root_kept() -> Iterator[None]:
    """Put back what configure_logging changes (pytest's own handlers included)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    root.handlers[:], root.level = handlers, level
    for name, was in quiet.items():
        logging.getLogger(name).setLevel(was)


@pytest.mark.usefixtures("root_kept")
def test_http_clients_say_nothing_per_request_at_info_but_still_warn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MYCPAAS_LOG_LEVEL", "INFO")  # the default; the tests run at WARNING
    get_settings.cache_clear()
    configure_logging()
    get_settings.cache_clear()
    assert logging.getLogger("workers.stages.carrier").isEnabledFor(logging.INFO)
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
    assert not logging.getLogger("httpcore").isEnabledFor(logging.INFO)
