"""Feeds (RSS, Atom, RDF, JSON Feed) to items, with the encoding the server or document declares.

feedparser is given the raw bytes and the response headers, not decoded text, so a charset in the
Content-Type header or the XML prolog (GB2312, GBK, Big5, ...) decides how Chinese is read; when
that charset does not fit the bytes, the document is recoded first (charset.recode_feed).

Feeds are third-party input of any shape: a document too big for the parser to finish in time is
refused before parsing (``limits.precheck``), and JSON Feed fields of the wrong type are read as
absent rather than trusted.
"""

from __future__ import annotations

import calendar
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import feedparser

from monitor.sources import limits
from monitor.sources.charset import looks_garbled, recode_feed


class ParseError(Exception):
    """The response is not a feed; the message says why."""


@dataclass(frozen=True)
class Parsed:
    items: list["FeedItem"]
    note: str | None = None       # the declared charset was not used (for the log)
    garbled: bool = False         # the text still reads as mojibake


#: The longest GUID stored; a longer one is kept recognisable by a hash of all of it.
MAX_GUID = 512


def guid_of(value: object) -> str:
    text = str(value)
    if len(text) <= MAX_GUID:
        return text
    return text[:MAX_GUID - 72] + "#sha256:" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class FeedItem:
    guid: str
    title: str
    url: str | None
    published: datetime | None
    body: str

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(f"{self.title}\n{self.body}".encode("utf-8")).hexdigest()


_TRACKING_PREFIXES = ("utm_", "share_", "mc_", "_hs")
_TRACKING_NAMES = {"spm", "from", "fbclid", "gclid", "igshid", "ref", "ref_src", "ocid", "cmpid"}


def canonical_url(url: str | None) -> str | None:
    """The URL without fragment, tracking parameters or case differences in scheme and host, so the
    same article behind a changed GUID or a new tracking tag is recognised."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k.lower() not in _TRACKING_NAMES and not k.lower().startswith(_TRACKING_PREFIXES)]
    netloc = parts.netloc.lower()
    if netloc.endswith(":80") and parts.scheme == "http" or netloc.endswith(":443") and parts.scheme == "https":
        netloc = netloc.rsplit(":", 1)[0]
    path = parts.path or "/"
    return urlunsplit((parts.scheme.lower(), netloc, path, urlencode(sorted(query)), ""))


def _when(entry: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:
            try:
                return datetime.fromtimestamp(calendar.timegm(value), tz=timezone.utc)
            except (OverflowError, ValueError):
                continue
    return None


def _body(entry: Any) -> str:
    contents = entry.get("content") or []
    best = max((c.get("value") or "" for c in contents), key=len, default="")
    summary = entry.get("summary") or ""
    return best if len(best) >= len(summary) else summary


def _json_feed(content: bytes) -> list[FeedItem] | None:
    """JSON Feed (jsonfeed.org); None when the bytes are not one."""
    stripped = content.lstrip()
    if not stripped.startswith(b"{"):
        return None
    try:
        doc = json.loads(content.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or "jsonfeed.org" not in str(doc.get("version", "")):
        return None
    raw_items = doc.get("items")
    if not isinstance(raw_items, list):
        return []
    items = []
    for it in raw_items:
        if not isinstance(it, dict):
            continue
        url = next((v.strip() for v in (it.get("url"), it.get("external_url")) if isinstance(v, str) and v.strip()),
                   None)
        published = None
        for key in ("date_published", "date_modified"):
            value = it.get(key)
            if isinstance(value, str) and value:
                try:
                    published = datetime.fromisoformat(value.replace("Z", "+00:00"))
                    if published.tzinfo is None:
                        published = published.replace(tzinfo=timezone.utc)
                    break
                except ValueError:
                    pass
        body = next((v for v in (it.get("content_html"), it.get("content_text"), it.get("summary"))
                     if isinstance(v, str) and v), "")
        raw_title = it.get("title")
        title = raw_title.strip() if isinstance(raw_title, str) else ""
        ident = it.get("id")
        ident = str(ident) if isinstance(ident, (str, int)) and not isinstance(ident, bool) and str(ident) else None
        guid = ident or url or hashlib.sha256((title + body).encode("utf-8", "replace")).hexdigest()
        items.append(FeedItem(guid=guid_of(guid), title=title, url=url, published=published, body=body))
    return items


def parse_feed(content: bytes, headers: dict[str, str], base_url: str) -> list[FeedItem]:
    """The items of a feed document; raise ParseError when it is not a feed at all."""
    return parse_feed_checked(content, headers, base_url).items


def parse_feed_checked(content: bytes, headers: dict[str, str], base_url: str) -> Parsed:
    """The items of a feed document, and what the charset handling had to say about it; raise
    ParseError when it is not a feed at all, or too big to parse in bounded time."""
    json_items = _json_feed(content)
    if json_items is not None:
        return Parsed(json_items, garbled=_garbled(json_items))
    problem = limits.precheck(content, items=True)
    if problem:
        raise ParseError(problem)
    content, headers, note = recode_feed(content, headers)
    # No sanitising or URI rewriting inside content: bodies become plain text before anyone reads
    # them (and are escaped again for each channel), and this halves the parse time.
    parsed = feedparser.parse(content, response_headers={**headers, "content-location": base_url},
                              sanitize_html=False, resolve_relative_uris=False)
    if not parsed.get("version") and not parsed.entries:
        reason = parsed.get("bozo_exception")
        raise ParseError(f"not a feed (RSS, Atom, RDF or JSON Feed){': ' + str(reason) if reason else ''}")
    items = []
    for e in parsed.entries:
        url = e.get("link")
        title = (e.get("title") or "").strip()
        body = _body(e)
        guid = e.get("id") or url or hashlib.sha256((title + body).encode("utf-8")).hexdigest()
        items.append(FeedItem(guid=guid_of(guid), title=title, url=url if isinstance(url, str) else None,
                              published=_when(e), body=body))
    return Parsed(items, note, _garbled(items))


def _garbled(items: list[FeedItem]) -> bool:
    return looks_garbled(" ".join(f"{it.title} {it.body[:300]}" for it in items[:20]))
