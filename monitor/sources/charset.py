"""Bytes of an HTML page to text, with the charset the page really uses.

Chinese pages still come in GBK/GB2312/GB18030 or Big5, often declared only in a <meta> tag (and
sometimes after the first kilobyte), sometimes wrongly. Order: the HTTP header, then a <meta> or
XML declaration anywhere in the head, then statistical detection (charset-normalizer); a declared
charset that does not decode cleanly is not trusted.
"""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

_META = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.I)
_XML = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_\-.]+)""", re.I)
_HEADER = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_\-:.]+)", re.I)
#: Declared names whose superset is what servers actually send.
_SUPERSET = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "gb_2312-80": "gb18030",
             "big5": "big5hkscs", "iso-8859-1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252",
             "ascii": "cp1252"}


def _codec(name: str | bytes | None) -> str | None:
    if not name:
        return None
    text = name.decode("ascii", "ignore") if isinstance(name, bytes) else name
    text = _SUPERSET.get(text.strip().lower(), text.strip().lower())
    try:
        return codecs.lookup(text).name
    except LookupError:
        return None


def _clean(content: bytes, codec: str) -> str | None:
    try:
        return content.decode(codec)
    except UnicodeDecodeError:
        return None


def declared(content: bytes, content_type: str | None) -> list[str]:
    """Charsets declared for this document, most authoritative first."""
    found: list[str] = []
    if content_type and (m := _HEADER.search(content_type)):
        found.append(m.group(1))
    head = content[:65536]
    if content.startswith(codecs.BOM_UTF8):
        found.insert(0, "utf-8")
    if xml := _XML.match(head):
        found.append(xml.group(1).decode("ascii", "ignore"))
    if meta := _META.search(head):
        found.append(meta.group(1).decode("ascii", "ignore"))
    return found


def decode_html(content: bytes, content_type: str | None = None) -> str:
    for name in declared(content, content_type):
        codec = _codec(name)
        if codec and (text := _clean(content, codec)) is not None:
            return text.lstrip("\ufeff")
    if (text := _clean(content, "utf-8")) is not None:
        return text.lstrip("\ufeff")
    best = from_bytes(content[:200_000]).best()
    if best is not None and best.encoding:
        return content.decode(best.encoding, errors="replace")
    return content.decode("utf-8", errors="replace")
