"""Subscriptions: ``/feeds/changes.atom`` (feedgen) for feed readers and ``/feeds/effective.ics``
(icalendar) for calendars, both taking the change log's filters as query parameters
(``?platform=kuaishou&action=ban``).

Both include withdrawn and reversed changes unless a status is asked for, so a subscriber learns of
the withdrawal: in Atom the entry's ``updated`` moves, in the calendar the event turns CANCELLED.
A calendar event keeps its UID for the life of the change, and its SEQUENCE counts the updates that
altered it, so calendar apps show a moved date as the same event moved.

Feed readers and calendar apps poll: each answer carries an ETag, and a matching If-None-Match gets
a 304 with no body. Neither document depends on the time of day, only on the rows, so the last few
built are kept and served again until the change log moves (a new or updated change, a new report,
a new history event): a calendar of 2,000 events takes icalendar seconds to write, a lookup of four
index ends takes a millisecond."""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any, Callable

from fastapi import APIRouter, Request
from feedgen.feed import FeedGenerator
from icalendar import Calendar, Event
from sqlalchemy import func, or_, select
from starlette.responses import Response

from monitor import __version__
from monitor.clock import as_utc
from monitor.notify.render import WORDS
from monitor.records import report_of
from monitor.store import repo
from monitor.store.models import Change, ChangeEvent, Mention
from monitor.web import filters, i18n, present
from monitor.web.app import Web, error_response, web

router = APIRouter(prefix="/feeds", include_in_schema=False)
FEED_SIZE = 100
CALENDAR_SIZE = 2000
# XML 1.0 cannot carry these at all; a feed item with one would otherwise break the whole feed.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml(text: str | None) -> str:
    return _NOT_XML.sub("", text or "")


class _Built:
    """The last documents built, by (path, query, language, base URL), with the log's version then."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.docs: OrderedDict[tuple[str, ...], tuple[tuple[Any, ...], bytes, str]] = OrderedDict()

    def get(self, key: tuple[str, ...], version: tuple[Any, ...]) -> tuple[bytes, str] | None:
        with self.lock:
            hit = self.docs.get(key)
            if hit is None or hit[0] != version:
                return None
            self.docs.move_to_end(key)
            return hit[1], hit[2]

    def put(self, key: tuple[str, ...], version: tuple[Any, ...], body: bytes) -> str:
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        with self.lock:
            self.docs[key] = (version, body, etag)
            self.docs.move_to_end(key)
            while len(self.docs) > self.size:
                self.docs.popitem(last=False)
        return etag


def _version(w: Web) -> tuple[Any, ...]:
    """What a feed's content depends on, read from index ends only: any change created or updated,
    any report or history event added moves it. (A report that re-extraction takes away from a change
    it does not withdraw shows in the feeds at the next of those; counting the reports would cost
    50 ms a request on a log of 100,000.)"""
    with w.reads() as s:
        # one aggregate per query: SQLite reads a max() from the index end only when it is alone
        return tuple(s.scalar(select(func.max(column))) for column in (Change.updated_at, Change.id, Mention.id,
                                                                       ChangeEvent.id))


def _serve(request: Request, lang: str, media_type: str, build: Callable[[], bytes]) -> Response:
    w = web(request)
    built: _Built = w.cache.setdefault("feeds", _Built())
    key = (request.url.path, request.url.query, lang, str(request.base_url))
    version = _version(w)
    hit = built.get(key, version)
    if hit is not None:
        body, etag = hit
    else:
        body = build()
        etag = built.put(key, version, body)
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
        r = report_of(m)
        published = as_utc(r.published)
        out.append({"source": r.source, "title": r.title, "url": present.link(r.url),
                    "published": published.date().isoformat() if published else None})
    return out


def _feed(request: Request, media_type: str, build: Callable[[Request, Web, repo.ChangeFilter, str], bytes]
          ) -> Response:
    """A feed of the change log under the filters of the query string (a 400 names a bad one)."""
    w = web(request)
    lang = _lang(request)
    try:
        f = filters.parse(request.query_params, default_status="all")
    except ValueError as exc:
        return error_response(request, 400, str(exc))
    return _serve(request, lang, media_type, lambda: build(request, w, f, lang))


@router.get("/changes.atom")
def atom(request: Request) -> Response:
    return _feed(request, "application/atom+xml; charset=utf-8", _atom)


def _atom(request: Request, w: Web, f: repo.ChangeFilter, lang: str) -> bytes:
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
    return bytes(fg.atom_str(pretty=False))


def _calendar_changes(w: Web, f: repo.ChangeFilter) -> list[Change]:
    """Changes with an effective date, and those whose date a person cleared (kept, cancelled)."""
    cleared = select(ChangeEvent.change_id).where(ChangeEvent.kind.in_(present.DATE_KINDS),
                                                  ChangeEvent.old_value.is_not(None), ChangeEvent.new_value.is_(None))
    stmt = repo.change_query(f).where(or_(Change.effective_date.is_not(None), Change.id.in_(cleared)))
    stmt = stmt.order_by(Change.effective_date.desc(), Change.id.desc()).limit(CALENDAR_SIZE)
    with w.reads() as s:
        rows = list(s.scalars(repo.with_sources(stmt)).all())
        for c in rows:  # everything the event shows is read inside the session
            _ = [report_of(m) for m in c.mentions]
    return rows


@router.get("/effective.ics")
def calendar(request: Request) -> Response:
    return _feed(request, "text/calendar; charset=utf-8", _calendar)


def _calendar(request: Request, w: Web, f: repo.ChangeFilter, lang: str) -> bytes:
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
    return bytes(cal.to_ical())
