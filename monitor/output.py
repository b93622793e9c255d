"""Rendering rows for the terminal (aligned table, CJK-aware), scripts (JSON) and spreadsheets (CSV)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from typing import Any, Mapping, Sequence

from tabulate import tabulate

from monitor.clock import as_utc


def iso(value: date | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        v = as_utc(value)
        assert v is not None
        return v.isoformat().replace("+00:00", "Z")
    return value.isoformat()


def _short(value: Any, width: int = 60) -> str:
    text = "" if value is None else ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def render(rows: Sequence[Mapping[str, Any]], fmt: str, columns: Sequence[str]) -> str:
    """``rows`` as table, json (one array) or csv; table and csv show ``columns`` only."""
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
    return tabulate([[_short(r.get(c)) for c in columns] for r in rows], headers=list(columns),
                    tablefmt="simple", disable_numparse=True)
