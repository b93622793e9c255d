"""HTML or plain text to clean sentences.

Sentence boundaries matter more than layout: evidence is quoted sentence by sentence and dates are
parsed only in candidate sentences, so block elements become breaks and boilerplate is dropped.
"""

from __future__ import annotations

import re
from functools import lru_cache

from bs4 import BeautifulSoup

_DROP = ("script", "style", "noscript", "figure", "figcaption", "nav", "aside", "footer", "form",
         "iframe", "svg", "button")
_BLOCK = ("p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "blockquote",
          "section", "article", "header", "pre", "table", "ul", "ol")
# Class or id fragments of page furniture that repeats other articles' headlines (which would
# otherwise be read as this article's news) or carries no text of its own.
BOILERPLATE_MARKS = re.compile(r"relat|recommend|share|social|comment|sidebar|breadcrumb|footer|advert|"
                          r"\bads?\b|promo|newsletter|subscribe|caption|copyright", re.I)
_LOOKS_HTML = re.compile(r"<(?:p|div|br|span|a|img|h\d|li|ul|section|article|strong|em|table)\b", re.I)
# A sentence ends at Chinese end punctuation, or at ./!/? followed by space (English), or a newline.
_SPLIT = re.compile(r"(?<=[。！？!?；;])|(?<=[.])(?=\s+[\"'“‘(]?[A-Z0-9\u4e00-\u9fff])|\n+")
_SPACE = re.compile(r"[ \t\u00a0\u3000]+")


def html_to_text(body: str) -> str:
    """Visible text with one line per block element; plain text passes through."""
    if not _LOOKS_HTML.search(body):
        return body
    soup = BeautifulSoup(body, "lxml")
    for tag in soup(_DROP):
        tag.decompose()
    for tag in soup.find_all(True):
        if tag.decomposed:
            continue
        marks = " ".join(tag.get("class") or []) + " " + str(tag.get("id") or "")
        if marks.strip() and BOILERPLATE_MARKS.search(marks):
            tag.decompose()
    for tag in soup.find_all(_BLOCK):
        tag.insert_before("\n")
        tag.insert_after("\n")
    return soup.get_text()


def sentences(text: str) -> list[str]:
    """Split into sentences for both Chinese and English, whitespace normalised, empties dropped."""
    out = []
    for part in _SPLIT.split(text):
        s = _SPACE.sub(" ", part).strip()
        if len(s) > 1:
            out.append(s)
    return out


@lru_cache(maxsize=1)
def _t2s():  # type: ignore[no-untyped-def]
    import opencc  # the pure-Python OpenCC port; loaded once, on first Chinese text

    return opencc.OpenCC("t2s")


_HAN = re.compile(r"[\u4e00-\u9fff]")


def to_simplified(text: str) -> str:
    """Traditional Chinese to Simplified, so one lexicon serves both scripts."""
    if not _HAN.search(text):
        return text
    return str(_t2s().convert(text))
