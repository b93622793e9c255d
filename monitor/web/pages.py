"""The web pages, server-rendered (Jinja2, autoescaped) and readable without JavaScript:
``/`` the change log, ``/changes/{id}`` one change with its evidence, sources, history and
deliveries, ``/upcoming`` effective dates by week, ``/sources`` the sources' health; and the form
that records a person's correction (``POST /changes/{id}/label``, through ``monitor.labels.record``
as ``policy-monitor label`` does)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from monitor.clock import as_utc
from monitor.extract.model import ACTIONS
from monitor.labels import Judgement, LabelError, record
from monitor.records import report_of, source_records
from monitor.store import repo
from monitor.web import filters, i18n, present
from monitor.web.app import error_response, page, web
from monitor.web.security import AUTH_COOKIE, CSRF_COOKIE, Forbidden, new_csrf

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
FLASH_COOKIE = "pm_flash"
MAX_FORM = 16 * 1024


def _lang(request: Request) -> str:
    return i18n.negotiate(request.query_params, request.cookies, request.headers.get("accept-language"))[0]


def _filter_form(request: Request) -> dict[str, Any]:
    return {"values": {k: request.query_params.get(k, "") for k in filters.NAMES},
            "actions": ACTIONS, "link_types": filters.LINK_TYPES, "statuses": repo.STATUSES,
            "feed_query": urlencode(filters.query(request.query_params))}


@router.get("/")
def changes_page(request: Request) -> Response:
    w = web(request)
    lang = _lang(request)
    try:
        f = filters.parse(request.query_params)
        cursor = request.query_params.get("cursor")
        after = repo.Cursor.decode(cursor) if cursor else None
    except ValueError as exc:
        return error_response(request, 400, str(exc))
    now = w.now()
    with w.reads() as s:
        changes, nxt = repo.page_changes(s, f, PAGE_SIZE, after)
        rows = [present.row(c, w.lexicon, lang, now) for c in changes]
        platforms = [(p, w.lexicon.display(p, lang)) for p in w.platforms(s)]
    words = present.WORDS[lang]
    return page(request, "changes.html", {
        "title": i18n.UI[lang]["title_changes"], "rows": rows, "platforms": platforms,
        "link_words": words["link"], "action_words": words["action"],
        "next_url": str(request.url.include_query_params(cursor=nxt.encode())) if nxt else None,
        "first_url": str(request.url.remove_query_params("cursor")) if after else None,
        **_filter_form(request)})


def _flash(request: Request) -> list[str]:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return []
    try:
        lines = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8"))
        return [str(x) for x in lines][:10] if isinstance(lines, list) else []
    except (ValueError, UnicodeDecodeError):
        return []


@router.get("/changes/{change_id}")
def change_page(request: Request, change_id: int) -> Response:
    w = web(request)
    lang = _lang(request)
    now = w.now()
    with w.reads() as s:
        change = repo.get_change(s, change_id)
        if change is None:
            return error_response(request, 404, i18n.UI[lang]["no_change"].format(id=change_id))
        view = present.row(change, w.lexicon, lang, now)
        reports = []
        for m in change.mentions[:20]:
            r = report_of(m)
            published = as_utc(r.published)
            reports.append({
                "source": r.source, "title": r.title, "url": present.link(r.url),
                "raw_url": r.url if not present.link(r.url) else None,
                "published": published.strftime("%Y-%m-%d %H:%M UTC") if published else None,
                "evidence": m.evidence or change.evidence,
                "article": present.highlight(r.title, r.entry.body if r.entry else "", m.evidence or change.evidence),
                "pruned": r.entry is None,
            })
        history = [{"at": (as_utc(h.at) or now).strftime("%Y-%m-%d %H:%M UTC"), "kind": h.kind,
                    "old": h.old_value, "new": h.new_value, "evidence": h.evidence} for h in change.history]
        deliveries = [{"notifier": d.notifier, "kind": d.kind, "status": d.status, "attempts": d.attempts,
                       "key": d.key if d.kind == "reminder" else "",
                       "next": (as_utc(d.next_attempt) or now).strftime("%Y-%m-%d %H:%M UTC")
                       if d.status in repo.DUE else "",
                       "sent": (as_utc(d.sent_at) or now).strftime("%Y-%m-%d %H:%M UTC") if d.sent_at else "",
                       "error": w.scrub(d.last_error)} for d in repo.list_deliveries(s, change_id=change_id)]
        updated = (as_utc(change.updated_at) or now).strftime("%Y-%m-%d %H:%M UTC")
        seen = (as_utc(change.first_seen) or now).strftime("%Y-%m-%d %H:%M UTC")
        confidence = f"{change.confidence:.2f}"
        found_by = change.found_by
    cookies = []
    csrf = request.cookies.get(CSRF_COOKIE) or ""
    if w.guard.writable and not csrf:
        csrf = new_csrf()
        cookies.append((CSRF_COOKIE, csrf, {"httponly": True, "samesite": "strict", "path": "/"}))
    flash = _flash(request)
    if flash:
        cookies.append((FLASH_COOKIE, "", {"max_age": 0, "path": f"/changes/{change_id}"}))
    return page(request, "change.html", {
        "title": f"#{change_id} {view['summary']}", "c": view, "reports": reports, "history": history,
        "deliveries": deliveries, "updated": updated, "seen": seen, "confidence": confidence,
        "found_by": found_by, "csrf": csrf, "signed_in": w.guard.signed_in(request.cookies), "flash": flash,
        "actions": ACTIONS, "action_words": present.WORDS[lang]["action"],
    }, cookies=cookies)


def _judgement(form: dict[str, str]) -> Judgement:
    if form.get("what") == "not_a_change":
        return Judgement(not_a_change=True)
    when = (form.get("date") or "").strip()
    clear = form.get("no_date") == "1"
    day: date | None = None
    if when and not clear:
        try:
            day = date.fromisoformat(when)
        except ValueError:
            raise LabelError(f"{when!r} is not a date (YYYY-MM-DD)") from None
    return Judgement(effective_date=day, clear_date=clear, platform=(form.get("platform") or "").strip() or None,
                     action=(form.get("action") or "").strip() or None)


@router.post("/changes/{change_id}/label")
async def label_form(request: Request, change_id: int) -> Response:
    """A correction from the change page: checked (origin, CSRF pair, token), then recorded by the
    same code as ``policy-monitor label``, and the page shown again with what was recorded."""
    w = web(request)
    body = await request.body()
    if len(body) > MAX_FORM:
        return error_response(request, 413, "the form is too large")
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    try:
        typed = w.guard.check_form(request.headers, request.cookies, form)
    except Forbidden as exc:
        return error_response(request, exc.status, exc.message)

    def apply() -> list[str]:
        judgement = _judgement(form)
        if judgement.empty():
            raise LabelError("nothing to correct: give the right date, platform or action")
        with w.app.sessions.begin() as s:
            applied = record(s, w.app.planner, change_id, judgement, by="web")
        lines = [f"✓ {line}" for line in applied.recorded] + [f"= {line}" for line in applied.unchanged]
        if applied.recorded:
            lines.append(f"{applied.updates_queued} message{'s' if applied.updates_queued != 1 else ''} queued")
        return lines

    try:
        lines = await run_in_threadpool(apply)
    except LabelError as exc:
        if str(exc).startswith("there is no change"):
            return error_response(request, 404, str(exc))
        lines = [f"✗ {exc}"]
    response = RedirectResponse(f"/changes/{change_id}", status_code=303)
    flash = base64.urlsafe_b64encode(json.dumps(lines, ensure_ascii=False).encode()).decode().rstrip("=")
    response.set_cookie(FLASH_COOKIE, flash, max_age=120, path=f"/changes/{change_id}", httponly=True,
                        samesite="strict")
    if typed:
        # a session cookie (no Max-Age): the browser forgets it when it closes
        response.set_cookie(AUTH_COOKIE, w.guard.session_value(), httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")
    return response


UPCOMING_PAGE = 100


@router.get("/upcoming")
def upcoming_page(request: Request) -> Response:
    w = web(request)
    lang = _lang(request)
    now = w.now()
    today = now.date()
    try:
        f = filters.parse(request.query_params, default_status="active")
        after = _after_effective(request.query_params.get("after"))
    except ValueError as exc:
        return error_response(request, 400, str(exc))
    start = max(f.effective_from or today, today)
    with w.reads() as s:
        changes = repo.list_changes(s, replace(f, effective_from=start), limit=UPCOMING_PAGE + 1, order="effective",
                                    after_effective=after)
        more = len(changes) > UPCOMING_PAGE
        changes = changes[:UPCOMING_PAGE]
        rows = [present.row(c, w.lexicon, lang, now) for c in changes]
        platforms = [(p, w.lexicon.display(p, lang)) for p in w.platforms(s)]
    weeks: list[dict[str, Any]] = []
    for r, c in zip(rows, changes):
        assert c.effective_date is not None
        monday = c.effective_date - timedelta(days=c.effective_date.weekday())
        if not weeks or weeks[-1]["monday"] != monday:
            weeks.append({"monday": monday, "label": i18n.UI[lang]["week_of"].format(date=monday.isoformat()),
                          "rows": []})
        r["weekday"] = c.effective_date.strftime("%a") if lang == "en" else "一二三四五六日"[c.effective_date.weekday()]
        weeks[-1]["rows"].append(r)
    last = changes[-1] if changes else None
    later = (str(request.url.include_query_params(after=f"{last.effective_date}.{last.id}"))
             if more and last is not None else None)
    words = present.WORDS[lang]
    return page(request, "upcoming.html", {"title": i18n.UI[lang]["title_upcoming"], "weeks": weeks,
                                           "platforms": platforms, "link_words": words["link"],
                                           "action_words": words["action"], "later_url": later,
                                           **_filter_form(request)})


def _after_effective(value: str | None) -> tuple[date, int] | None:
    """``?after=2023-05-01.42``: the upcoming page's continuation after that date and change."""
    if not value:
        return None
    day, _, ident = value.partition(".")
    try:
        return date.fromisoformat(day), int(ident)
    except ValueError:
        raise ValueError(f"after: {value!r} is not DATE.ID from a previous page") from None


@router.get("/sources")
def sources_page(request: Request) -> Response:
    w = web(request)
    lang = _lang(request)
    with w.reads() as s:
        rows = source_records(s, w.app.config.settings.sources)
    for r in rows:
        r["last_error"] = w.scrub(r["last_error"])
        for key in ("last_polled", "next_poll"):
            value = r[key]  # type: ignore[literal-required]
            r[key] = value.replace("T", " ")[:16] + " UTC" if value else None  # type: ignore[literal-required]
    return page(request, "sources.html", {"title": i18n.UI[lang]["title_sources"], "rows": rows})
