"""Rendering rows for the terminal (aligned table, CJK-aware), scripts (JSON) and spreadsheets (CSV).

Every value shown is third-party text (titles, errors that quote a server): control and bidi-override
characters are removed from all of it, and line breaks from table and CSV cells, so no row can
retitle a terminal, reorder what it shows or split a CSV record. Times are shown in the configured
time zone (``display.timezone``), to the second; JSON keeps them in UTC, also to the second.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, datetime, tzinfo
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo


from monitor.clock import as_utc
from monitor.sanitize import for_display


def iso(value: date | datetime | None) -> str | None:
    """A date, or a time in UTC to the second (``2023-04-10T04:00:00Z``): the JSON form."""
    if value is None:
        return None
    if isinstance(value, datetime):
        v = as_utc(value)
        assert v is not None
        return v.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def zone(name: str | None) -> tzinfo | None:
    """The zone of ``display.timezone``: None means the machine's local zone."""
    return None if not name or name == "local" else ZoneInfo(name)


def local(value: datetime | None, tz: tzinfo | None = None) -> str | None:
    """A time as people read it: in the display zone, to the second (``2023-04-10 12:00:00+08:00``)."""
    if value is None:
        return None
    v = as_utc(value)
    assert v is not None
    return v.astimezone(tz).replace(microsecond=0).isoformat(sep=" ")


_ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def _clean(value: Any, fmt: str, tz: tzinfo | None) -> Any:
    if isinstance(value, datetime):
        return iso(value) if fmt == "json" else local(value, tz)
    if isinstance(value, str) and fmt != "json" and _ISO_UTC.match(value):
        # the records' UTC times (monitor.records), shown in the display zone in tables and CSV
        return local(datetime.fromisoformat(value.replace("Z", "+00:00")), tz)
    if isinstance(value, str):
        return for_display(value, newlines=fmt == "json")
    if isinstance(value, list):
        return [_clean(v, fmt, tz) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v, fmt, tz) for k, v in value.items()}
    return value


def _short(value: Any, width: int = 60) -> str:
    text = "" if value is None else ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def render(rows: Sequence[Mapping[str, Any]], fmt: str, columns: Sequence[str], tz: tzinfo | None = None) -> str:
    """``rows`` as table, json (one array) or csv; table and csv show ``columns`` only."""
    rows = [_clean(r, fmt, tz) for r in rows]
    if fmt == "json":
        return json.dumps(list(rows), ensure_ascii=False, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow(["; ".join(map(str, r.get(c) or [])) if isinstance(r.get(c), list) else
                        ("" if r.get(c) is None else r.get(c)) for c in columns])
        return buf.getvalue().rstrip("\n")
    if not rows:
        return "(none)"
    from tabulate import tabulate  # only tables need it (a tenth of a second of start-up for JSON)

    return tabulate([[_short(r.get(c)) for c in columns] for r in rows], headers=list(columns),
                    tablefmt="simple", disable_numparse=True)
