"""JSON endpoints (``kind = "json"``): the notices of a single-page app read from the API it calls.

Most platforms' rule centres and announcement pages are scripts that fetch their notices from a JSON
endpoint; RSSHub's routes and Huginn's agents read those endpoints with a few selectors. Here the
selectors are JMESPath expressions: ``items`` picks the list, and ``title``, ``link``, ``date`` and
``body`` are evaluated on each item (``link`` may be built, ``join('', ['https://host/n/',
to_string(id)])``). An API that changed shape must not look like "no news", so a selector that matches
nothing fails the source with a message that names it.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import urljoin

import jmespath
from jmespath.exceptions import JMESPathError

from monitor.config import SourceConfig
from monitor.sources.feeds import FeedItem, ParseError, canonical_url
from monitor.sources.fetch import Fetcher, FetchResult

_JSONP = re.compile(rb"^\s*[A-Za-z_$][\w$.]*\s*\(\s*(.*?)\s*\)\s*;?\s*$", re.S)
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_\-]+)", re.I)
ACCEPT = "application/json, text/javascript;q=0.9, */*;q=0.5"


class JsonSourceError(ParseError):
    """The response is not JSON, or a selector no longer matches it; the message names which."""


@lru_cache(maxsize=512)
def _expr(text: str) -> Any:
    return jmespath.compile(text)


def fetch(fetcher: Fetcher, cfg: SourceConfig, etag: str | None, last_modified: str | None,
          timeout: float | None) -> FetchResult:
    """GET (with the last poll's validators) or POST the endpoint with the source's body and headers."""
    headers = {"Accept": ACCEPT, **cfg.headers}
    if cfg.method == "POST":
        body: bytes | None = None
        if isinstance(cfg.body, dict):
            body = json.dumps(cfg.body, ensure_ascii=False).encode("utf-8")
            headers = {"Content-Type": "application/json", **headers}
        elif cfg.body is not None:
            body = cfg.body.encode("utf-8")
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/x-www-form-urlencoded"
        # No validators: a conditional POST means "fail if unchanged" (412), not "304 if unchanged".
        return fetcher.fetch(cfg.url, timeout=timeout, method="POST", body=body, headers=headers)
    return fetcher.fetch(cfg.url, etag=etag, last_modified=last_modified, timeout=timeout, headers=headers)


def decode(content: bytes, content_type: str | None = None) -> Any:
    """The JSON document (UTF-8 unless the header says otherwise; a JSONP wrapper is unwrapped)."""
    m = _CHARSET.search(content_type or "")
    charset = m.group(1) if m else "utf-8"
    if charset.lower() in ("gbk", "gb2312"):
        charset = "gb18030"
    stripped = content.lstrip()
    if stripped[:1] not in (b"{", b"[") and (jsonp := _JSONP.match(content)):
        content = jsonp.group(1)
    try:
        return json.loads(content.decode(charset if charset.lower() != "utf-8" else "utf-8-sig"))
    except (UnicodeDecodeError, LookupError) as exc:
        raise JsonSourceError(f"the response is not text in {charset}: {exc}") from None
    except ValueError as exc:
        start = content[:60].decode("utf-8", "replace")
        raise JsonSourceError(f"the response is not JSON ({exc}); it starts with {start!r}") from None


def _search(text: str, data: Any) -> Any:
    try:
        return _expr(text).search(data)
    except JMESPathError as exc:  # a function given the wrong type on this data
        raise JsonSourceError(f"the selector {text!r} failed on the response: {exc}") from None


def parse_date(value: Any) -> datetime | None:
    """ISO 8601 (``2023-04-10``, ``2023-04-10 10:00:00``, ``…T02:00:00Z``), or epoch seconds or
    milliseconds (a number or a string of digits). A time without a zone is taken as UTC."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str) and re.fullmatch(r"\s*\d{9,13}(\.\d+)?\s*", value):
        value = float(value)
    if isinstance(value, (int, float)):
        seconds = value / 1000 if value > 1e11 else value   # milliseconds after 1973 are > 1e11
        try:
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00").replace("/", "-")
    text = re.sub(r"^(\d{4})年(\d{1,2})月(\d{1,2})日", r"\1-\2-\3", text)
    text = re.sub(r"^(\d{4})-(\d{1,2})-(\d{1,2})", lambda m: f"{m[1]}-{int(m[2]):02d}-{int(m[3]):02d}", text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "\n".join(_text(v) for v in value if v is not None)
    if isinstance(value, (dict,)):
        return json.dumps(value, ensure_ascii=False)
    return str(value).strip()


def parse(content: bytes, headers: dict[str, str], base_url: str, cfg: SourceConfig) -> list[FeedItem]:
    """The items the selectors pick out of the response, in its order.

    Fails, naming the selector, when ``items`` is not a list, or when ``title`` (or a configured
    ``link``, ``date`` or ``body``) gives nothing on every item: the API changed shape.
    """
    sel = cfg.selectors
    assert sel.items and sel.title  # the config requires both for kind = "json"
    doc = decode(content, headers.get("content-type"))
    found = _search(sel.items, doc)
    if not isinstance(found, list):
        what = "nothing" if found is None else f"a {type(found).__name__}, not a list"
        raise JsonSourceError(f"selectors.items {sel.items!r} matched {what} in the response "
                              "(did the API change shape?)")
    rows = [r for r in found if r is not None]
    if not rows:
        return []
    picked: dict[str, list[Any]] = {}
    for key in ("title", "link", "date", "body"):
        expr = getattr(sel, key)
        values = [_search(expr, row) for row in rows] if expr else [None] * len(rows)
        if expr and all(v is None or v == "" for v in values):
            raise JsonSourceError(f"selectors.{key} {expr!r} matched nothing in any of the {len(rows)} items "
                                  "(did the API change shape?)")
        picked[key] = values
    items: list[FeedItem] = []
    for i in range(len(rows)):
        title = " ".join(_text(picked["title"][i]).split())
        if not title:
            continue
        link = _text(picked["link"][i]) or None
        url = urljoin(base_url, link) if link else None
        if url and not url.startswith(("http://", "https://")):
            url = None
        body = _text(picked["body"][i]) or title
        guid = canonical_url(url) if url else "sha256:" + hashlib.sha256(f"{title}\n{body}".encode()).hexdigest()
        items.append(FeedItem(guid=(guid or "")[:512], title=title, url=url,
                              published=parse_date(picked["date"][i]), body=body))
    return items
