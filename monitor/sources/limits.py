"""Bounds on parsing, so one hostile document costs one source a clear error, not the daemon its time
or memory.

The fetch caps a document's size (``fetch.max_bytes``); what a parser does with those bytes grows
with their shape. Measured with ``bench/hostile.py``: feedparser spends time quadratic in the
attributes of one element (100,000 attributes took 90 s) and about 10 KB of memory per item (50,000
items took 478 MB). So before any parser runs, a linear scan of the bytes counts tags, the
attributes of the largest tags and the feed's items, and refuses what is beyond these limits.
After parsing, a poll keeps only the newest ``fetch.max_items`` items.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Protocol, Sequence, TypeVar

#: Tags in one document. A 10 MB page of ordinary markup has about 200,000.
MAX_TAGS = 400_000
#: Attributes on one tag. Real markup has a handful; the quadratic case needs thousands.
MAX_ATTRIBUTES = 500
#: Items (RSS <item>, Atom <entry>) in one feed document, before the per-poll cap keeps the newest.
MAX_FEED_ITEMS = 10_000

_TAG = re.compile(rb"<[A-Za-z]")
_LONG_TAG = re.compile(rb"<[A-Za-z][^<>]{4000,}")   # only a long tag can hold many attributes
_ATTRIBUTE = re.compile(rb"""[\s"'][^\s=<>"'/]+\s*=""")
_ITEM = re.compile(rb"<(?:[A-Za-z0-9_.-]+:)?(?:item|entry)[\s>/]")


def precheck(content: bytes, items: bool = False) -> str | None:
    """Why this document is refused before parsing, or None when it is within bounds."""
    if content.count(b"<") > MAX_TAGS:  # a cheap upper bound first; count real tags only if needed
        tags = sum(1 for _ in _TAG.finditer(content))
        if tags > MAX_TAGS:
            return f"refused to parse: {tags} tags (more than {MAX_TAGS})"
    for m in _LONG_TAG.finditer(content):
        attributes = len(_ATTRIBUTE.findall(m.group(0)))
        if attributes > MAX_ATTRIBUTES:
            return f"refused to parse: a tag with {attributes} attributes (more than {MAX_ATTRIBUTES})"
    if items:
        found = sum(1 for _ in _ITEM.finditer(content))
        if found > MAX_FEED_ITEMS:
            return f"refused to parse: {found} items (more than {MAX_FEED_ITEMS})"
    return None


class _Dated(Protocol):
    @property
    def published(self) -> datetime | None: ...


T = TypeVar("T", bound=_Dated)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def newest(items: Sequence[T], cap: int) -> list[T]:
    """At most ``cap`` items: the newest by publication date (undated ones after dated ones, earlier
    in the document first, as feeds list the newest first), in their document order."""
    if len(items) <= cap:
        return list(items)
    ranked = sorted(range(len(items)), key=lambda i: (items[i].published is not None,
                                                      items[i].published or _EPOCH, -i), reverse=True)
    keep = sorted(ranked[:cap])
    return [items[i] for i in keep]
