"""Messages from templates, in the format each channel takes (text, Markdown, HTML).

Everything that comes from an article (titles, evidence, source names) is third-party text: it is
escaped for the target format and stripped of mentions, control characters and bidi overrides, so
a hostile title cannot inject markup, links, an @all, a terminal escape or reversed text. Long
messages are fitted to the channel's own length limit by shortening fields before they are escaped
(titles first, then the evidence at a sentence) and listing fewer sources, never by cutting the
rendered markup (a 1 MB title once cut an HTML message inside an <a> and lost its footer), and
never by applying one channel's limit to all.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Callable
from urllib.parse import quote as urlquote
from zoneinfo import ZoneInfo

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, StrictUndefined

from monitor.clock import as_utc
from monitor.records import report_of
from monitor.extract.lexicon import Lexicon
from monitor.sanitize import for_display, mask_url
from monitor.store.models import Change

FORMATS = ("text", "markdown", "html")
WORDS: dict[str, dict[str, Any]] = {
    "zh": {
        "action": {"ban": "禁止", "restrict": "限制", "allow": "允许", "require": "要求"},
        "link": {"affiliate": "联盟/推广链接", "third_party_product": "第三方商品链接", "external_url": "外部链接",
                 "mini_program": "小程序链接", "social_profile": "其他平台主页链接", "news": "新闻链接",
                 "payment": "支付/购买链接", "other": "链接"},
        "any": "任何网站", "no_date": "未说明", "sep": "、",
        "title": {"alert": "【链接政策变更】", "update": "【更新】", "reminder": "【提醒】", "digest": "【汇总】",
                  "ops": "【运维】", "test": "【测试】"},
    },
    "en": {
        "action": {"ban": "bans", "restrict": "restricts", "allow": "allows", "require": "requires"},
        "link": {"affiliate": "affiliate links", "third_party_product": "third-party product links",
                 "external_url": "external links", "mini_program": "mini-program links",
                 "social_profile": "social-profile links", "news": "news links", "payment": "payment links",
                 "other": "links"},
        "any": "any site", "no_date": "not stated", "sep": ", ",
        "title": {"alert": "[link policy]", "update": "[update]", "reminder": "[reminder]", "digest": "[digest]",
                  "ops": "[ops]", "test": "[test]"},
    },
}
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")
_MENTION = re.compile(r"@(?=\S)")
_SENTENCE_END = "。！？.!?；;"


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    format: str


def inert(text: str, newlines: bool = True) -> str:
    """No channel may read article text as a mention or a Slack/Discord control sequence, and no
    reader's terminal or mail client may see its control or bidi-override characters."""
    return _MENTION.sub("@\u200b", for_display(text, newlines=newlines)).replace("<!", "<\u200b!")


def escape(text: Any, fmt: str) -> str:
    value = inert("" if text is None else str(text))
    if fmt == "html":
        return html.escape(value, quote=True)
    if fmt == "markdown":
        return _MD_SPECIAL.sub(r"\\\1", value)
    return value


def safe_url(url: str | None) -> str | None:
    """Only http(s) links are rendered, percent-encoded so that they cannot break out of markup."""
    if not url or not re.match(r"^https?://", url.strip(), re.I):
        return None
    return urlquote(url.strip(), safe=":/?#&=%+,;~@!$'*")


def cut(text: str, limit: int) -> str:
    """Shorten at a sentence end when one is near, so a quote never stops mid-word."""
    text = " ".join(text[: limit * 4 + 100].split())  # a 1 MB field is not split whole
    if len(text) <= limit:
        return text
    head = text[:limit]
    stop = max(head.rfind(p) for p in _SENTENCE_END)
    return (head[: stop + 1] if stop > limit // 3 else head.rstrip()) + " …"


def days_left(effective: date | None, now: datetime, tz: str | None, lang: str) -> str:
    if effective is None:
        return "生效日期未说明" if lang == "zh" else "no date given"
    today = now.astimezone(ZoneInfo(tz)).date() if tz else now.date()
    n = (effective - today).days
    if lang == "zh":
        return f"还有 {n} 天" if n > 0 else "今天生效" if n == 0 else f"已生效 {-n} 天"
    if n > 0:
        return f"in {n} day{'s' if n != 1 else ''}"
    return "today" if n == 0 else f"{-n} day{'s' if n != -1 else ''} ago"


def shorten(text: str | None, limit: int) -> str | None:
    """A title or name to at most ``limit`` characters, on one line."""
    if text is None:
        return None
    flat = " ".join(text[: limit * 4 + 100].split())
    return flat if len(flat) <= limit else flat[: max(1, limit - 1)].rstrip() + "…"


#: Field limits tried in turn until a message fits the channel: (evidence, sources listed, titles).
FITS = [(600, 10, 200), (300, 5, 120), (150, 3, 80), (80, 1, 40), (40, 1, 20), (20, 0, 10)]


class Renderer:
    def __init__(self, lexicon: Lexicon, templates_dir: str | None = None, tz: Any = None) -> None:
        self.lexicon = lexicon
        self.tz = tz     # display.timezone, for the times in operator messages (None: local)
        loaders: list[Any] = []
        if templates_dir:
            loaders.append(FileSystemLoader(templates_dir))
        loaders.append(PackageLoader("monitor.notify", "templates"))
        self.env = Environment(loader=ChoiceLoader(loaders), autoescape=False, undefined=StrictUndefined,
                               keep_trailing_newline=False)

    # -- values ------------------------------------------------------------------------------------
    def change_view(self, change: Change, lang: str, fmt: str, now: datetime, evidence_limit: int,
                    max_sources: int, title_limit: int = 200) -> dict[str, Any]:
        words = WORDS[lang]
        e: Callable[[Any], str] = lambda v: escape(v, fmt)  # noqa: E731
        platform = self.lexicon.platforms.get(change.platform)
        tz = platform.tz if platform else None
        targets = [self.lexicon.display(t, lang) for t in change.targets or []]
        sources = []
        for m in change.mentions:
            r = report_of(m)
            published = as_utc(r.published)
            sources.append({"title": shorten(r.title, title_limit), "url": r.url, "source": r.source,
                            "published": published.date().isoformat() if published else None})
        return {
            "id": change.id,
            "platform": e(self.lexicon.display(change.platform, lang)),
            "action": change.action,
            "action_word": words["action"].get(change.action, change.action),
            "targets": e(words["sep"].join(targets) if targets else words["any"]),
            "has_targets": bool(targets),
            "link_word": words["link"].get(change.link_type, change.link_type),
            "effective": change.effective_date.isoformat() if change.effective_date else words["no_date"],
            "days_left": days_left(change.effective_date, now, tz, lang),
            "confidence": f"{change.confidence:.2f}",
            "evidence": cut(change.evidence, evidence_limit),
            "sources": sources[:max_sources],
            "more_sources": max(0, len(sources) - max_sources),
            "found_by": change.found_by,
            "status": change.status,
        }

    def title(self, kind: str, lang: str, change: Change | None, extra: str = "") -> str:
        words = WORDS[lang]
        head = words["title"][kind]
        if change is None:
            return inert(f"{head} {extra}".strip(), newlines=False)
        platform = self.lexicon.display(change.platform, lang)
        targets = words["sep"].join(self.lexicon.display(t, lang) for t in change.targets or [])
        when = change.effective_date.isoformat() if change.effective_date else words["no_date"]
        if lang == "zh":
            text = f"{head}{platform}{words['action'][change.action]}{targets}{words['link'][change.link_type]}（{when}）"
        else:
            of = f" of {targets}" if targets else ""
            text = f"{head} {platform} {words['action'][change.action]} {words['link'][change.link_type]}{of} ({when})"
        return inert(text + (f" {extra}" if extra else ""), newlines=False)

    # -- rendering ---------------------------------------------------------------------------------
    def helpers(self, fmt: str) -> dict[str, Callable[..., str]]:
        def link(text: Any, url: str | None) -> str:
            u = safe_url(url)
            label = escape(text, fmt)
            if fmt == "html":
                return f'<a href="{html.escape(u, quote=True)}">{label}</a>' if u else label
            if fmt == "markdown":
                return f"[{label}]({u.replace(')', '%29').replace('(', '%28')})" if u else label
            return f"{label}\n  {u}" if u else label

        def bold(text: str) -> str:
            return {"html": f"<b>{text}</b>", "markdown": f"**{text}**"}.get(fmt, text)

        def quote(text: Any) -> str:
            value = escape(text, fmt)
            if fmt == "html":
                return f"<blockquote>{value}</blockquote>"
            if fmt == "markdown":
                return "> " + value
            return f"  “{value}”"

        return {"e": lambda v: escape(v, fmt), "link": link, "b": bold, "quote": quote}

    def render(self, kind: str, lang: str, fmt: str, now: datetime, *, change: Change | None = None,
               event: dict[str, Any] | None = None, days_before: int | None = None,
               items: list[tuple[str, Change]] | None = None, ops: dict[str, Any] | None = None,
               name: str = "", budget: int | None = None) -> Message:
        """The message; when ``budget`` (the channel's body limit) is given, shortened to fit it."""
        template = self.env.get_template(f"message.{lang}.j2")
        body = ""
        for evidence_limit, max_sources, title_limit in FITS:
            ctx: dict[str, Any] = {
                "kind": kind, "name": shorten(name, title_limit), "days_before": days_before,
                "ops": self.ops_view(ops or {}, evidence_limit), "event": event or {},
                "c": self.change_view(change, lang, fmt, now, evidence_limit, max_sources, title_limit)
                if change else None,
                "items": [{"kind": k, "c": self.change_view(ch, lang, fmt, now, evidence_limit, max_sources,
                                                            title_limit)}
                          for k, ch in (items or [])],
                **self.helpers(fmt),
            }
            body = template.render(**ctx).strip()
            if fmt == "html":
                # <br> alone: a newline after it becomes a stray leading space on every line of the
                # plain-text part mail clients show (apprise derives it from the HTML)
                body = body.replace("\n", "<br>")
            if budget is None or len(body) <= budget:
                break
        if budget is not None and len(body) > budget:
            body = _whole_lines(body, budget, "<br>" if fmt == "html" else "\n")
        extra = ""
        if kind == "digest":
            extra = f"({len(items or [])})"
        elif kind == "ops" and ops:
            extra = f"{ops.get('source')}: {'failing' if ops.get('event') == 'failing' else 'recovered'}"
        return Message(self.title(kind, lang, change if kind not in ("digest", "ops") else None, extra), body, fmt)

    def ops_view(self, ops: dict[str, Any], limit: int) -> dict[str, Any]:
        """An operator message's facts as people read them: the time in the display zone to the
        minute, the URL masked, the error shortened."""
        if not ops:
            return {}
        view = dict(ops)
        since = ops.get("since")
        if since:
            try:
                when = datetime.fromisoformat(str(since)).astimezone(self.tz)
                view["since"] = when.strftime("%Y-%m-%d %H:%M ") + (when.strftime("%Z") or when.strftime("%z"))
            except ValueError:
                pass
        if ops.get("url"):
            view["url"] = mask_url(str(ops["url"]))
        if ops.get("error"):
            view["error"] = shorten(str(ops["error"]), max(limit, 80))
        return view


def _whole_lines(body: str, budget: int, newline: str) -> str:
    """The last resort for a budget smaller than the shortest message: whole lines only. Every line
    of the templates closes the markup it opens, so this never cuts inside a tag."""
    kept: list[str] = []
    size = len(newline) + 1
    for line in body.split(newline):
        if size + len(line) + len(newline) > budget:
            break
        kept.append(line)
        size += len(line) + len(newline)
    return newline.join(kept) + (newline + "…" if kept else "…")

