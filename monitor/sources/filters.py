"""Keep or drop a source's items by regular expressions on title and body, before anything is stored
or extracted: a broad news feed filtered to a platform's names stands for that platform, and
recurring noise (ads, weekly round-ups) never reaches the extractor.

Patterns are Python regular expressions matched case-insensitively anywhere in the title and in the
body's text (HTML tags removed, so a pattern does not match inside an attribute or a link).
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

from monitor.sources.feeds import FeedItem

_TAG = re.compile(r"<[^>]*>")


@lru_cache(maxsize=256)
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)


def text_of(item: FeedItem) -> str:
    return f"{item.title}\n{html.unescape(_TAG.sub(' ', item.body))}"


def apply(items: list[FeedItem], include: list[str] | tuple[str, ...],
          exclude: list[str] | tuple[str, ...]) -> list[FeedItem]:
    """The items that match an ``include`` pattern (all when there is none) and no ``exclude`` one."""
    inc, exc = _compiled(tuple(include)), _compiled(tuple(exclude))
    if not inc and not exc:
        return items
    out = []
    for item in items:
        text = text_of(item)
        if inc and not any(p.search(text) for p in inc):
            continue
        if any(p.search(text) for p in exc):
            continue
        out.append(item)
    return out
