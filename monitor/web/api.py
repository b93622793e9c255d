"""The JSON API: the objects of ``changes / sources / entries --format json`` over HTTP, the CLI's
filters as query parameters, keyset pages (``limit`` and ``cursor``), JSON errors with their HTTP
status, an OpenAPI description at ``/openapi.json`` and a readable one at ``/api``."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from typing_extensions import TypedDict

from monitor.labels import Judgement, LabelError, record
from monitor.records import (
    ChangeRecord,
    DeliveryRecord,
    EntryRecord,
    SourceRecord,
    change_record,
    delivery_record,
    entry_record,
    source_records,
)
from monitor.store import repo
from monitor.web.app import SafeJSON, error_response, page, web
from monitor.web.security import Forbidden

router = APIRouter(prefix="/api", tags=["change log"])

Action = Literal["ban", "restrict", "allow", "require"]
LinkType = Literal["affiliate", "third_party_product", "external_url", "mini_program", "social_profile", "news",
                   "payment", "other"]
Status = Literal["active", "reversed", "withdrawn", "all"]


class ChangePage(TypedDict):
    """One page of the change log, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    changes: list[ChangeRecord]
    next_cursor: str | None


class ChangeDetail(ChangeRecord):
    """A change with the messages owed for it (alerts, updates, reminders) and how they went."""

    deliveries: list[DeliveryRecord]


class ErrorBody(TypedDict):
    status: int
    message: str


class Error(TypedDict):
    error: ErrorBody


class Correction(BaseModel):
    """A person's judgement of a change, as ``policy-monitor label`` takes it. ``effective_date: null``
    says the text gives no date; a field left out is not judged."""

    not_a_change: bool = Field(False, description="not a link-policy change: withdraw it")
    effective_date: date | None = Field(None, description="the right effective date (null: the text gives none)")
    platform: str | None = Field(None, description="the right platform id (kuaishou, wechat, …)")
    action: Action | None = Field(None, description="the right action")


class Applied(TypedDict):
    change_id: int
    recorded: list[str]
    unchanged: list[str]
    updates_queued: int
    change: ChangeRecord


ERRORS: dict[int | str, dict[str, Any]] = {400: {"model": Error, "description": "a parameter is invalid"}}


def _scrubbed(request: Request, d: DeliveryRecord) -> DeliveryRecord:
    d["last_error"] = web(request).scrub(d["last_error"])
    return d


@router.get("/changes", response_model=ChangePage, responses=ERRORS, summary="The change log, newest first")
def list_changes(
    request: Request,
    platform: str | None = Query(None, description="platform id, e.g. kuaishou"),
    target: str | None = Query(None, description="changes that affect this site's links, e.g. taobao"),
    action: Action | None = Query(None),
    link_type: LinkType | None = Query(None),
    status: Status | None = Query(None, description="default: every status but withdrawn"),
    since: date | None = Query(None, description="first seen on or after this day (UTC)"),
    until: date | None = Query(None, description="first seen on or before this day (UTC)"),
    effective_from: date | None = Query(None, description="effective on or after"),
    effective_to: date | None = Query(None, description="effective on or before"),
    q: str | None = Query(None, max_length=200, description="text in the evidence, a reporting title, the platform "
                                                             "or a target"),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
) -> Response:
    try:
        after = repo.Cursor.decode(cursor) if cursor else None
    except ValueError as exc:
        return error_response(request, 400, f"cursor: {exc}")
    f = repo.ChangeFilter(platform=(platform or "").lower() or None, target=(target or "").lower() or None,
                          action=action, since=since, until=until, effective_from=effective_from,
                          effective_to=effective_to, status=status, link_type=link_type, text=q or None)
    with web(request).reads() as s:
        rows, nxt = repo.page_changes(s, f, limit, after)
        body: ChangePage = {"changes": [change_record(c) for c in rows], "next_cursor": nxt.encode() if nxt else None}
    response = SafeJSON(body)
    if nxt:
        response.headers["link"] = f'<{request.url.include_query_params(cursor=nxt.encode())}>; rel="next"'
    return response


@router.get("/changes/{change_id}", response_model=ChangeDetail, responses={404: {"model": Error}},
            summary="One change, whatever its status, with its deliveries")
def get_change(request: Request, change_id: int = Path(ge=1)) -> Response:
    with web(request).reads() as s:
        change = repo.get_change(s, change_id)
        if change is None:
            return error_response(request, 404, f"there is no change #{change_id}")
        body: dict[str, Any] = dict(change_record(change))
        body["deliveries"] = [_scrubbed(request, delivery_record(d))
                              for d in repo.list_deliveries(s, change_id=change_id)]
    return SafeJSON(body)


@router.post("/changes/{change_id}/labels", response_model=Applied, status_code=200,
             responses={400: {"model": Error}, 401: {"model": Error}, 403: {"model": Error},
                        404: {"model": Error}},
             summary="Correct a change (needs the token as Authorization: Bearer)")
async def label_change(request: Request, correction: Correction, change_id: int = Path(ge=1),
                       authorization: str | None = Header(None)) -> Response:
    w = web(request)
    try:
        w.guard.check_bearer(authorization)
    except Forbidden as exc:
        response = error_response(request, exc.status, exc.message)
        if exc.status == 401:
            response.headers["www-authenticate"] = 'Bearer realm="policy-monitor"'
        return response
    judgement = Judgement(not_a_change=correction.not_a_change, effective_date=correction.effective_date,
                          clear_date="effective_date" in correction.model_fields_set
                          and correction.effective_date is None,
                          platform=correction.platform, action=correction.action)

    def apply() -> Applied:
        with w.app.sessions.begin() as s:
            applied = record(s, w.app.planner, change_id, judgement, by="web")
        with w.reads() as s:
            change = repo.get_change(s, change_id)
            assert change is not None
            return {"change_id": change_id, "recorded": applied.recorded, "unchanged": applied.unchanged,
                    "updates_queued": applied.updates_queued, "change": change_record(change)}

    try:
        return SafeJSON(await run_in_threadpool(apply))
    except LabelError as exc:
        return error_response(request, 404 if str(exc).startswith("there is no change") else 400, str(exc))


@router.get("/sources", response_model=list[SourceRecord], summary="Each configured source and its health")
def list_sources(request: Request) -> Response:
    w = web(request)
    with w.reads() as s:
        rows = source_records(s, w.app.config.settings.sources)
    for r in rows:
        r["last_error"] = w.scrub(r["last_error"])
    return SafeJSON(rows)


@router.get("/entries", response_model=list[EntryRecord], responses=ERRORS,
            summary="What the sources yielded, newest first")
def list_entries(request: Request, source: str | None = Query(None, description="only this source's entries"),
                 limit: int = Query(50, ge=1, le=500)) -> Response:
    with web(request).reads() as s:
        rows = [entry_record(e) for e in repo.list_entries(s, source, limit)]
    return SafeJSON(rows)


@router.get("", include_in_schema=False)
def api_page(request: Request) -> Response:
    """The API described for people, from the OpenAPI document (no script, no CDN)."""
    schema = request.app.openapi()
    endpoints = []
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            params = [{"name": p["name"], "in": p["in"], "required": p.get("required", False),
                       "type": _type_name(p.get("schema", {})), "description": p.get("description") or
                       p.get("schema", {}).get("description", "")} for p in op.get("parameters", [])]
            endpoints.append({"method": method.upper(), "path": path, "summary": op.get("summary", ""),
                              "params": params})
    base = str(request.base_url).rstrip("/")
    return page(request, "api.html", {"title": "JSON API", "endpoints": endpoints, "base": base,
                                      "description": schema.get("info", {}).get("description", "")})


def _type_name(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(map(str, schema["enum"]))
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            return _type_name(option)
    if schema.get("format") == "date":
        return "YYYY-MM-DD"
    return str(schema.get("type", ""))
