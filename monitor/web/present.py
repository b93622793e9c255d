"""How a change reads on the web, in a feed and in a calendar: its one-line summary, the words for
its status and history, the evidence sentence found again in its article, and the SEQUENCE a
calendar needs to see a moved date as the same event moved.

Everything here returns plain text; escaping belongs to the output (Jinja2 autoescape for HTML,
feedgen/lxml for Atom, icalendar for iCalendar, json for JSON), so no text is escaped twice or
not at all."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from monitor.clock import as_utc
from monitor.extract.lexicon import Lexicon
from monitor.extract.text import html_to_text, sentences, to_simplified
from monitor.notify.render import WORDS, cut, days_left, safe_url
from monitor.store.models import Change

#: History events that change what a calendar event shows (its date, its status, its summary):
#: each one raises the event's SEQUENCE, so calendar apps replace the event instead of adding one.
SEQUENCE_KINDS = frozenset({"date_set", "date_moved", "date_corrected", "withdrawn", "reversed",
                            "platform_corrected", "action_corrected"})
DATE_KINDS = ("date_set", "date_moved", "date_corrected")
_NAMESPACE = uuid.UUID("5b0e5f0c-4c1f-4a8e-9a57-7a1c2b0e6d11")  # policy-monitor's own uuid5 namespace
_SPACE = re.compile(r"\s+")
ARTICLE_LIMIT = 20_000


def uid(change: Change) -> str:
    """A stable, globally unique id of a change for Atom (urn:uuid:…) and iCalendar (UID): the same
    for the life of the row, different for another database's change #1 (its first_seen differs)."""
    seen = as_utc(change.first_seen)
    assert seen is not None
    return str(uuid.uuid5(_NAMESPACE, f"change:{change.id}:{seen.isoformat()}"))


def sequence(change: Change) -> int:
    return sum(1 for h in change.history if h.kind in SEQUENCE_KINDS)


def last_known_date(change: Change) -> date | None:
    """The effective date, or, when a person cleared it, the date it had: a calendar keeps that
    event and marks it cancelled rather than letting it linger."""
    if change.effective_date is not None:
        return change.effective_date
    for h in reversed(change.history):
        if h.kind in DATE_KINDS and h.old_value:
            try:
                return date.fromisoformat(h.old_value)
            except ValueError:
                continue
    return None


def summary(change: Change, lexicon: Lexicon, lang: str) -> str:
    """"Douyin (抖音) bans third-party product links of Pinduoduo (拼多多)" / "抖音 (Douyin)禁止拼多多 (Pinduoduo)第三方商品链接"."""
    words = WORDS[lang]
    platform = lexicon.display(change.platform, lang)
    targets = words["sep"].join(lexicon.display(t, lang) for t in change.targets or [])
    action = words["action"].get(change.action, change.action)
    link = words["link"].get(change.link_type, change.link_type)
    if lang == "zh":
        return f"{platform}{action}{targets}{link}"
    return f"{platform} {action} {link}" + (f" of {targets}" if targets else "")


def row(change: Change, lexicon: Lexicon, lang: str, now: datetime) -> dict[str, Any]:
    """What a line of the change log shows."""
    words = WORDS[lang]
    p = lexicon.platforms.get(change.platform)
    targets = [lexicon.display(t, lang) for t in change.targets or []] or [words["any"]]
    return {
        "id": change.id,
        "platform": lexicon.display(change.platform, lang),
        "platform_id": change.platform,
        "action": change.action,
        "action_word": words["action"].get(change.action, change.action),
        "targets": targets,
        "targets_text": words["sep"].join(targets),
        "link_word": words["link"].get(change.link_type, change.link_type),
        "link_type": change.link_type,
        "effective": change.effective_date.isoformat() if change.effective_date else None,
        "days_left": days_left(change.effective_date, now, p.tz if p else None, lang) if change.effective_date else "",
        "past": bool(change.effective_date and change.effective_date < now.date()),
        "status": change.status,
        "sources": len(change.mentions),
        "first_seen": (as_utc(change.first_seen) or now).strftime("%Y-%m-%d"),
        "evidence": cut(change.evidence, 160),
        "summary": summary(change, lexicon, lang),
    }


def link(url: str | None) -> str | None:
    """A link from a feed, or None when it is not http(s) (a ``javascript:`` link stays text)."""
    return safe_url(url)


@dataclass
class Segment:
    text: str
    mark: bool = False


@dataclass
class Article:
    """An article's text as paragraphs of segments, the evidence marked; ``excerpt`` is the marked
    paragraphs with one on each side, ``found`` whether the evidence was found at all."""

    paragraphs: list[list[Segment]] = field(default_factory=list)
    excerpt: list[list[Segment]] = field(default_factory=list)
    found: bool = False
    truncated: bool = False


def _locate(haystack: str, needle: str) -> int:
    i = haystack.find(needle)
    if i >= 0 or len(needle) < 4:
        return i
    # Traditional article, Simplified evidence (or the reverse): OpenCC maps characters one to one,
    # so an offset in the converted paragraph is the offset in the original.
    simple = to_simplified(haystack)
    if len(simple) == len(haystack):
        return simple.find(to_simplified(needle))
    return -1


def _mark(lines: list[str], wanted: list[str]) -> tuple[list[list[Segment]], list[int]]:
    paragraphs: list[list[Segment]] = []
    marked_at: list[int] = []
    for n, line in enumerate(lines):
        spans: list[tuple[int, int]] = []
        for s in wanted:
            i = _locate(line, s)
            if i >= 0 and not any(a < i + len(s) and i < b for a, b in spans):
                spans.append((i, i + len(s)))
        segs: list[Segment] = []
        pos = 0
        for a, b in sorted(spans):
            if a > pos:
                segs.append(Segment(line[pos:a]))
            segs.append(Segment(line[a:b], True))
            pos = b
        if pos < len(line):
            segs.append(Segment(line[pos:]))
        paragraphs.append(segs)
        if spans:
            marked_at.append(n)
    return paragraphs, marked_at


def highlight(title: str, body: str, evidence: str) -> Article:
    """The article's text with each sentence of ``evidence`` marked where it appears; the title leads
    the text only when the evidence is the title (a headline that states the change). An article
    whose text retention removed has only its title."""
    text = html_to_text(body or "")
    truncated = len(text) > ARTICLE_LIMIT
    lines = [line for line in (_SPACE.sub(" ", x).strip() for x in text[:ARTICLE_LIMIT].splitlines()) if line]
    wanted = [s for s in sentences(evidence)] or ([evidence.strip()] if evidence.strip() else [])
    paragraphs, marked_at = _mark(lines, wanted)
    title = _SPACE.sub(" ", title or "").strip()
    if not marked_at and title:
        head, head_marked = _mark([title], wanted)
        if head_marked:
            paragraphs, marked_at = head + paragraphs, [0]
    out = Article(paragraphs=paragraphs, truncated=truncated, found=bool(marked_at))
    keep = sorted({k for n in marked_at for k in (n - 1, n, n + 1) if 0 <= k < len(paragraphs)})
    out.excerpt = [paragraphs[k] for k in keep]
    return out
