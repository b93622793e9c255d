"""The text of an alert: what a merchant needs at a glance, in plain text every channel accepts.

Values from articles (titles, evidence) are third-party text; plain text keeps them inert here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from monitor.clock import as_utc
from monitor.extract.lexicon import Lexicon
from monitor.store.models import Change

_ACTION_WORDS = {"ban": "禁止 / bans", "restrict": "限制 / restricts", "allow": "允许 / allows",
                 "require": "要求 / requires"}
_LINK_WORDS = {"affiliate": "affiliate (联盟/推广) links", "third_party_product": "third-party product links",
               "external_url": "external links", "mini_program": "mini-program links",
               "social_profile": "social-profile links", "news": "news links", "payment": "payment links",
               "other": "links"}
MAX_EVIDENCE = 600


@dataclass(frozen=True)
class Message:
    title: str
    body: str


def days_left(effective: date | None, now: datetime, tz: str | None) -> str:
    if effective is None:
        return "effective date not stated"
    today = now.astimezone(ZoneInfo(tz)).date() if tz else now.date()
    n = (effective - today).days
    if n > 0:
        return f"in {n} day{'s' if n != 1 else ''}"
    if n == 0:
        return "today"
    return f"{-n} day{'s' if n != -1 else ''} ago"


def _cut(text: str, limit: int) -> str:
    """Shorten at a sentence end when one is near, so a quote never stops mid-word."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    stop = max(head.rfind(p) for p in "。！？.!?；;")
    return (head[:stop + 1] if stop > limit // 2 else head.rstrip()) + " …"


def render_alert(change: Change, lexicon: Lexicon, now: datetime) -> Message:
    platform = lexicon.display(change.platform)
    targets = ", ".join(lexicon.display(t) for t in change.targets or []) or "any site"
    action = _ACTION_WORDS.get(change.action, change.action)
    kind = _LINK_WORDS.get(change.link_type, change.link_type)
    tz = lexicon.platforms[change.platform].tz if change.platform in lexicon.platforms else None
    when = change.effective_date.isoformat() if change.effective_date else "date not stated"
    title = f"[policy-monitor] {platform} {action} {targets} {kind} — {when}"
    lines = [
        f"Platform:     {platform}",
        f"Action:       {change.action}",
        f"Whose links:  {targets}",
        f"Link type:    {change.link_type}",
        f"Effective:    {when} ({days_left(change.effective_date, now, tz)})",
        f"Confidence:   {change.confidence:.2f}",
        "",
        "Evidence:",
        f"  “{_cut(change.evidence, MAX_EVIDENCE)}”",
        "",
        "Sources:",
    ]
    for m in change.mentions:
        e = m.entry
        published = as_utc(e.published)
        stamp = published.date().isoformat() if published else "undated"
        lines.append(f"- {e.title or '(untitled)'} [{e.source.name}, {stamp}]")
        if e.url:
            lines.append(f"  {e.url}")
    lines += ["", f"Change #{change.id} — `policy-monitor changes --format json` shows the full record."]
    return Message(title=title, body="\n".join(lines))


def render_test(name: str) -> Message:
    return Message(title="[policy-monitor] test message",
                   body=f"This is a test from policy-monitor to the notifier '{name}'. "
                        "If you can read it, alerts will reach you here.")
