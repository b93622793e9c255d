"""Subscriptions: ``/feeds/changes.atom`` (feedgen) for feed readers and ``/feeds/effective.ics``
(icalendar) for calendars, both taking the change log's filters as query parameters
(``?platform=kuaishou&action=ban``).

Both include withdrawn and reversed changes unless a status is asked for, so a subscriber learns of
the withdrawal: in Atom the entry's ``updated`` moves, in the calendar the event turns CANCELLED.
A calendar event keeps its UID for the life of the change, and its SEQUENCE counts the updates that
altered it, so calendar apps show a moved date as the same event moved.

Feed readers and calendar apps poll: each answer carries an ETag, and a matching If-None-Match gets
a 304 with no body."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from feedgen.feed import FeedGenerator
from icalendar import Calendar, Event
from sqlalchemy import or_, select
from starlette.responses import Response

from monitor import __version__
from monitor.clock import as_utc
from monitor.notify.render import WORDS
from monitor.store import repo
from monitor.store.models import Change, ChangeEvent
from monitor.web import filters, i18n, present
from monitor.web.app import Web, error_response, web

router = APIRouter(prefix="/feeds", include_in_schema=False)
FEED_SIZE = 100
CALENDAR_SIZE = 2000
# XML 1.0 cannot carry these at all; a feed item with one would otherwise break the whole feed.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml(text: str | None) -> str:
    return _NOT_XML.sub("", text or "")


def _cached(request: Request, body: bytes, media_type: str) -> Response:
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"etag": etag, "cache-control": "no-cache", "vary": "Accept-Language"}
    if etag in (request.headers.get("if-none-match") or ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def _lang(request: Request) -> str:
    # Feed readers and calendar apps rarely send Accept-Language: ?lang= is the way to choose.
    return i18n.negotiate(request.query_params, {}, request.headers.get("accept-language"))[0]


def _title(c: Change, w: Web, lang: str) -> str:
    when = c.effective_date.isoformat() if c.effective_date else WORDS[lang]["no_date"]
    head = present.summary(c, w.lexicon, lang) + (f"（{when}）" if lang == "zh" else f" ({when})")
    if c.status != "active":
        head = f"[{i18n.STATUS[lang][c.status]}] " + head
    return head


def _sources(c: Change) -> list[dict[str, Any]]:
    out = []
    for m in c.mentions:
        e = m.entry
        published = as_utc(e.published)
        out.append({"source": e.source.name, "title": e.title, "url": present.link(e.url),
                    "published": published.date().isoformat() if published else None})
    return out


@router.get("/changes.atom")
def atom(request: Request) -> Response:
    w = web(request)
    lang = _lang(request)
    try:
        f = filters.parse(request.query_params, default_status="all")
    except ValueError as exc:
        return error_response(request, 400, str(exc))
    base = str(request.base_url).rstrip("/")
    fg = FeedGenerator()
    fg.id(_xml(str(request.url)))
    described = ", ".join(f"{k}={v}" for k, v in filters.query(request.query_params).items())
    fg.title(_xml("policy-monitor: " + i18n.UI[lang]["title_changes"] + (f" ({described})" if described else "")))
    fg.author({"name": "policy-monitor"})
    fg.link(href=str(request.url), rel="self", type="application/atom+xml")
    fg.link(href=f"{base}/" + (f"?{request.url.query}" if request.url.query else ""), rel="alternate",
            type="text/html")
    fg.language(lang)
    fg.generator("policy-monitor", version=__version__)
    template = w.templates.get_template("feed_entry.html")
    newest: datetime | None = None
    with w.reads() as s:
        rows = repo.list_changes(s, f, limit=FEED_SIZE, order="updated")
        for c in rows:
            updated = as_utc(c.updated_at)
            assert updated is not None
            newest = max(newest, updated) if newest else updated
            url = f"{base}/changes/{c.id}"
            fe = fg.add_entry(order="append")
            fe.id(f"urn:uuid:{present.uid(c)}")
            fe.title(_xml(_title(c, w, lang)))
            fe.updated(updated)
            fe.published(as_utc(c.first_seen))
            fe.link(href=url, rel="alternate", type="text/html")
            fe.category(term=c.platform, label=_xml(w.lexicon.display(c.platform, lang)))
            fe.category(term=c.action, label=WORDS[lang]["action"].get(c.action, c.action))
            fe.content(_xml(template.render(
                summary=present.summary(c, w.lexicon, lang), effective_label=i18n.UI[lang]["effective"],
                effective=c.effective_date.isoformat() if c.effective_date else None,
                no_date=WORDS[lang]["no_date"], status=c.status, status_word=i18n.STATUS[lang][c.status],
                evidence=c.evidence, sources=_sources(c), change_url=url)), type="html")
    fg.updated(newest or as_utc(w.now()))
    return _cached(request, fg.atom_str(pretty=False), "application/atom+xml; charset=utf-8")


def _calendar_changes(w: Web, f: repo.ChangeFilter) -> list[Change]:
    """Changes with an effective date, and those whose date a person cleared (kept, cancelled)."""
    cleared = select(ChangeEvent.change_id).where(ChangeEvent.kind.in_(present.DATE_KINDS),
                                                  ChangeEvent.old_value.is_not(None), ChangeEvent.new_value.is_(None))
    stmt = repo.change_query(f).where(or_(Change.effective_date.is_not(None), Change.id.in_(cleared)))
    stmt = stmt.order_by(Change.effective_date.desc(), Change.id.desc()).limit(CALENDAR_SIZE)
    with w.reads() as s:
        rows = list(s.scalars(repo.with_sources(stmt)).all())
        for c in rows:  # everything the event shows is read inside the session
            _ = [(m.entry.title, m.entry.source.name) for m in c.mentions]
    return rows


@router.get("/effective.ics")
def calendar(request: Request) -> Response:
    w = web(request)
    lang = _lang(request)
    try:
        f = filters.parse(request.query_params, default_status="all")
    except ValueError as exc:
        return error_response(request, 400, str(exc))
    base = str(request.base_url).rstrip("/")
    cal = Calendar()
    cal.add("prodid", f"-//policy-monitor//effective dates {__version__}//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", "policy-monitor: " + i18n.UI[lang]["effective"])
    cal.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", "PT1H")
    for c in _calendar_changes(w, f):
        day = present.last_known_date(c)
        if day is None:
            continue
        url = f"{base}/changes/{c.id}"
        updated = as_utc(c.updated_at)
        lines = [_title(c, w, lang), "", c.evidence, ""]
        for s in _sources(c):
            lines.append(f"{s['title']} — {s['source']}" + (f", {s['published']}" if s["published"] else "")
                         + (f"\n{s['url']}" if s["url"] else ""))
        lines += ["", url]
        ev = Event()
        ev.add("uid", f"{present.uid(c)}@policy-monitor")
        ev.add("dtstamp", updated)
        ev.add("last-modified", updated)
        ev.add("created", as_utc(c.first_seen))
        ev.add("sequence", present.sequence(c))
        ev.add("dtstart", day)
        ev.add("dtend", day + timedelta(days=1))
        ev.add("summary", _title(c, w, lang))
        ev.add("description", "\n".join(lines))
        ev.add("url", url)
        ev.add("status", "CONFIRMED" if c.status == "active" and c.effective_date else "CANCELLED")
        ev.add("transp", "TRANSPARENT")
        ev.add("categories", [c.platform, c.action])
        cal.add_component(ev)
    return _cached(request, cal.to_ical(), "text/calendar; charset=utf-8")
