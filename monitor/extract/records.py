"""JSON Lines in and out of ``policy-monitor extract`` (the record shapes of spec/interface.md)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Iterable, Iterator, TextIO

from monitor.extract.model import Article


class RecordError(ValueError):
    """An input line that is not a usable article; the message names the line."""


def parse_published(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"published must be an ISO 8601 string or null, not {type(value).__name__}")
    text = value.strip()
    if re.fullmatch(r"\d{4}(-\d{2})?", text):  # a partial date: the start of that month or year
        text = text + ("-01" if len(text) == 7 else "-01-01")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"published {value!r} is not an ISO 8601 date or time") from None


#: The fields of an input record (README, "Extraction input"); ``source`` and ``label`` are the labeled
#: corpus's own, accepted so a corpus file can be given as it is.
FIELDS = ("id", "title", "published", "lang", "body", "url", "platform", "source", "label")
REQUIRED = ("id", "body")


def _check(obj: dict[str, Any]) -> None:
    """A misspelt key (``text`` for ``body``) is an error, not a silently empty article."""
    unknown = [k for k in obj if k not in FIELDS]
    missing = [k for k in REQUIRED if k not in obj]
    problems = []
    if missing:
        problems.append("missing field" + "s" * (len(missing) > 1) + " " + ", ".join(repr(k) for k in missing))
    if unknown:
        problems.append("unknown field" + "s" * (len(unknown) > 1) + " " + ", ".join(repr(k) for k in unknown)
                        + f" (the fields are {', '.join(FIELDS[:7])})")
    if problems:
        raise ValueError("; ".join(problems))
    if not isinstance(obj["id"], (str, int)) or isinstance(obj["id"], bool) or str(obj["id"]) == "":
        raise ValueError("id must be a non-empty string or number")
    for key in ("title", "body", "url", "lang", "platform"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise ValueError(f"{key} must be a string or null, not {type(obj[key]).__name__}")


def read_articles(lines: Iterable[str], name: str = "<stdin>") -> Iterator[Article]:
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            _check(obj)
            yield Article(
                id=str(obj.get("id", n)), title=str(obj.get("title") or ""), body=str(obj.get("body") or ""),
                published=parse_published(obj.get("published")), lang=obj.get("lang"), url=obj.get("url"),
                platform_hint=obj.get("platform"),
            )
        except (ValueError, TypeError) as exc:
            raise RecordError(f"{name}:{n}: {exc}") from exc


def write_result(out: TextIO, article_id: str, changes: list[dict[str, Any]]) -> None:
    out.write(json.dumps({"id": article_id, "changes": changes}, ensure_ascii=False) + "\n")
