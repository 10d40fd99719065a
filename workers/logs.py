"""Logging for every process: text for people, one JSON object per line for machines."""

import json
import logging
from datetime import UTC, datetime

from schemas.settings import get_settings

# Fields a log call may add with ``extra=``: ``sid`` on every line about one message, ``sids`` on
# a line about a batch.
EXTRA_FIELDS = ("sid", "sids", "status", "error_code")
# Libraries that log every request at INFO: one line per callback and per carrier request says
# nothing the pipeline's own lines (and the callback ledger) do not, and costs a formatted
# line each. Their warnings still show.
QUIET_AT_INFO = ("httpx", "httpcore")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging() -> None:
    settings = get_settings()
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in QUIET_AT_INFO:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
