"""One clock for the whole process.

Reminders, backoff and "days left" all depend on the current time; replays, demos and tests need to
move it, so every module asks this clock instead of calling ``datetime.now`` itself.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone


class ClockError(ValueError):
    """MONITOR_NOW is set but unreadable."""


def now() -> datetime:
    """The current time, timezone-aware (UTC unless MONITOR_NOW says otherwise)."""
    fixed = os.environ.get("MONITOR_NOW", "").strip()
    if not fixed:
        return datetime.now(timezone.utc)
    try:
        value = datetime.fromisoformat(fixed)
    except ValueError as exc:
        raise ClockError(
            f"MONITOR_NOW={fixed!r} is not an ISO 8601 time (e.g. 2022-02-28T09:00:00+08:00)"
        ) from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value


def utcnow() -> datetime:
    """The current time in UTC, for storage."""
    return now().astimezone(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """Datetimes read back from SQLite lose their zone; they were written in UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
