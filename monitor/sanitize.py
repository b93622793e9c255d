"""Text from the outside world made safe to store, show and send.

Feeds and pages are third-party bytes: a control character makes lxml refuse a body (and the change
in it is lost), an ESC sequence printed by `entries` retitles the user's terminal, a U+202E reverses
what a table or an e-mail shows, and a CR/LF breaks a CSV row. Source URLs and database URLs carry
credentials and tokens (``https://user:pass@host/feed?token=…``) that must not reach ``last_error``,
logs, command output or chat messages. Each of those rules lives here, once.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

#: C0 controls other than tab, newline and carriage return; DEL; C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
#: Line and page separators that are not newlines to a parser but are to a reader.
_SEPARATORS = re.compile(r"[\x0b\x0c\u2028\u2029]")
#: Bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069): they reorder
#: what is displayed ("Trojan Source"). Left/right marks (U+200E/F) only hint and stay.
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
_NEWLINES = re.compile(r"\s*[\r\n]+\s*")


def clean_text(text: str) -> str:
    """Text as stored: control characters removed, vertical tab, form feed and Unicode line/page
    separators read as newlines. Tabs, newlines and everything printable are kept."""
    if not text:
        return text
    return _CONTROL.sub("", _SEPARATORS.sub("\n", text.replace("\r\n", "\n").replace("\r", "\n")))


def for_display(text: str, newlines: bool = False) -> str:
    """Text safe to print on a terminal or put in a message: no control or bidi-override characters,
    and (unless ``newlines``) no line breaks either, so one value stays on one line or CSV cell."""
    if not text:
        return text
    out = _BIDI.sub("", clean_text(text))
    if not newlines:
        out = _NEWLINES.sub(" ", out)
    return out


def mask_url(url: str) -> str:
    """The URL as it may be shown: user and password, and every query value, replaced by ``***``
    (the keys stay, so a reader still sees which parameters there were). What cannot be parsed
    keeps only its scheme."""
    text = for_display(str(url)).strip()
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError on a non-numeric port
    except ValueError:
        scheme = text.split("://", 1)[0] if "://" in text else ""
        return f"{scheme}://***" if scheme and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme) else "***"
    if not parts.netloc:  # not a URL with a host: nothing in it can be told apart from a secret
        return "***" if re.search(r"[@:?=]", text) else text
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if port is not None:
        netloc += f":{port}"
    if parts.username is not None or parts.password is not None:
        netloc = "***@" + netloc
    query = "&".join(f"{quote(k, safe='[]._-')}=***" for k, _v in parse_qsl(parts.query, keep_blank_values=True))
    if parts.query and not query:
        query = "***"
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,;:!?)\]]")


def mask_urls_in(text: str) -> str:
    """Every URL inside a message (an exception's words, say) masked with ``mask_url``."""
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)
