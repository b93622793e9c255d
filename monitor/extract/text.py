"""HTML or plain text to clean sentences.

Sentence boundaries matter more than layout: evidence is quoted sentence by sentence and dates are
parsed only in candidate sentences, so block elements become breaks and boilerplate is dropped.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from bs4 import BeautifulSoup
from lxml import etree
from lxml import html as lxml_html

from monitor.sanitize import clean_text

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
# A period after these is an abbreviation, not a sentence end ("Epic vs. Apple", "Starting Jan. 16").
_ABBREVIATIONS = ("vs", "Mr", "Mrs", "Ms", "Dr", "St", "Inc", "Corp", "Co", "Ltd", "Jr", "Sr", "No", "Jan", "Feb",
                  "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec", "U.S", "U.K", "e.g", "i.e",
                  "approx", "est")
_NOT_AFTER = "".join(rf"(?<!\b{re.escape(a)}\.)" for a in _ABBREVIATIONS)
_SPLIT = re.compile(r"(?<=[。！？!?；;])|(?<=[.])" + _NOT_AFTER + r"(?=\s+[\"'“‘(]?[A-Z0-9\u4e00-\u9fff])|\n+")
_SPACE = re.compile(r"[ \t\u00a0\u3000]+")


def html_to_text(body: str) -> str:
    """Visible text with one line per block element; plain text passes through.

    lxml directly (several times faster than BeautifulSoup on the many small bodies of feed items),
    BeautifulSoup for what lxml refuses (documents that declare their own encoding, fragments it
    cannot parse). Control characters go first: lxml refuses a string with one (a single \x0b
    in an article would otherwise lose its change).
    """
    body = clean_text(body)
    if not _LOOKS_HTML.search(body):
        return body
    try:
        root = lxml_html.fromstring(body)
    except (etree.ParserError, ValueError):
        return _html_to_text_bs4(body)
    etree.strip_elements(root, *_DROP, with_tail=False)
    doomed = [el for el in root.iter() if isinstance(el.tag, str) and
              _marks(el.get("class"), el.get("id")) and BOILERPLATE_MARKS.search(_marks(el.get("class"), el.get("id")))]
    for el in doomed:
        if el.getparent() is not None:
            el.drop_tree()
    for el in root.iter(*_BLOCK):
        # List items keep a bullet: a list's items are read with the sentence that introduces them.
        el.text = ("\n• " if el.tag == "li" else "\n") + (el.text or "")
        el.tail = "\n" + (el.tail or "")
    return str(root.text_content())


def _marks(cls: str | None, ident: str | None) -> str:
    return f"{cls or ''} {ident or ''}".strip()


def strip_boilerplate(root: Any) -> None:
    """Remove, in a BeautifulSoup tree, the elements whose class or id marks them as page furniture."""
    for tag in root.find_all(True):
        if tag.decomposed:
            continue
        marks = " ".join(tag.get("class") or []) + " " + str(tag.get("id") or "")
        if marks.strip() and BOILERPLATE_MARKS.search(marks):
            tag.decompose()


def _html_to_text_bs4(body: str) -> str:
    soup = BeautifulSoup(body, "lxml")
    for tag in soup(_DROP):
        tag.decompose()
    strip_boilerplate(soup)
    for tag in soup.find_all(_BLOCK):
        tag.insert_before("\n• " if tag.name == "li" else "\n")
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


@lru_cache(maxsize=1)
def _traditional_chars() -> frozenset[str]:
    """Characters that OpenCC would change: text without any of them is already Simplified."""
    conv = _t2s()
    conv.convert("測")  # loads the dictionaries
    chars: set[str] = set()
    for chain in getattr(conv, "_dict_chain_data", None) or []:
        for entry in chain:
            mapping = entry[-1] if isinstance(entry, tuple) else {}
            for key, value in mapping.items():
                first = value.split(" ")[0]
                chars.update(k for i, k in enumerate(key) if i >= len(first) or first[i] != k)
    return frozenset(chars)


def is_simplified(text: str) -> bool:
    """Whether ``text`` holds no character OpenCC would change (most text: English, Simplified)."""
    trad = _traditional_chars()
    return bool(trad) and not any(ch in trad for ch in text)


def to_simplified(text: str) -> str:
    """Traditional Chinese to Simplified, so one lexicon serves both scripts. Most text is already
    Simplified; it is passed through without the (slow, pure-Python) conversion."""
    return text if is_simplified(text) else str(_t2s().convert(text))
