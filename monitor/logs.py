"""The log's two forms: ``text`` (what a person reads in journalctl) and ``json`` (one object per line,
for a log shipper: Loki, Elasticsearch, CloudWatch), chosen by ``[log] format``.

A JSON line carries ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, plus the ids an
event has: ``source``, ``change_id``, ``notifier``, ``delivery_id`` (given with ``extra=`` at the log
calls of polls, changes and deliveries). Lines written as ``"source=%s ..."`` (the project's
convention for every line about one source) get their ``source`` from that argument, so no line
about a source is missing the field a query filters on.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

from monitor.config import LogConfig

#: Fields copied from a record's ``extra=`` into its JSON object when present.
FIELDS = ("source", "change_id", "notifier", "delivery_id", "kind", "exit_status")


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        if "source" not in out and isinstance(record.msg, str) and record.msg.startswith("source=%s"):
            args = record.args
            if isinstance(args, tuple) and args:
                out["source"] = str(args[0])
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


def configure(settings: LogConfig) -> None:
    """Give the handlers set up by the CLI the configured form (text is what they have already)."""
    if settings.format != "json":
        return
    formatter = JSONFormatter()
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)


def json_configured() -> bool:
    """Whether the log is in its JSON form (so a command's last words should be JSON too)."""
    return any(isinstance(h.formatter, JSONFormatter) for h in logging.getLogger().handlers)
