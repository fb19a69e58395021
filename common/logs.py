"""Structured (JSON) logs that carry the request id of the request being served."""

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

#: The id of the request (or consumed event) being handled; it becomes the correlation id of events written.
correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)

_RECORD_ATTRIBUTES = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, correlation id and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (cid := correlation_id.get()) is not None:
            entry["correlation_id"] = cid
        entry.update({k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRIBUTES})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, as_json: bool) -> None:
    """Send every logger (Sanic's included) to stderr, in JSON or plain text."""
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("sanic.root", "sanic.error", "sanic.access", "sanic.server", "sanic.websockets"):
        sanic_logger = logging.getLogger(name)
        sanic_logger.handlers[:] = []
        sanic_logger.propagate = True
