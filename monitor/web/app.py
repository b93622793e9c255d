"""The ASGI application: one FastAPI (so Starlette) app built from the shared core.

``create_app(app)`` assembles the routers listed in ``ROUTERS`` (pages, JSON API, feeds) around a
``Web`` context that every route reads from ``request.app.state.web``. Another module serving more
from the same process (``/metrics``, ``/healthz``) adds its ``APIRouter`` to ``ROUTERS`` or calls
``include_router`` on the returned app.

Reads go through their own session factory: on SQLite a connection that starts deferred
transactions and refuses writes, so a page reads a snapshot beside a polling daemon instead of
waiting for its write lock. Writes (corrections) use the core's sessions, as the CLI does.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.staticfiles import StaticFiles

from monitor import __version__, clock
from monitor.app import App
from monitor.notify.channels import mask
from monitor.store import db
from monitor.web import i18n
from monitor.web.security import Guard, SecurityHeaders

log = logging.getLogger("monitor.web")
STATIC = Path(__file__).with_name("static")


class SafeJSON(JSONResponse):
    """JSON with ``<``, ``>`` and ``&`` written as \\u escapes: the same strings to a JSON parser, and
    nothing a browser sniffing the body as HTML could run."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode("utf-8")


@dataclass
class Web:
    """What every route needs, built once per process."""

    app: App
    reads: sessionmaker[Session]
    templates: Environment
    guard: Guard
    secrets: tuple[tuple[str, str], ...]
    cache: dict[str, Any] = field(default_factory=dict)   # modules' own caches (feeds: documents built)
    _platforms: tuple[float, list[str]] = field(default=(0.0, []))

    @property
    def lexicon(self) -> Any:
        return self.app.lexicon

    def now(self) -> datetime:
        return clock.now()

    def scrub(self, text: str | None) -> str | None:
        """Error texts may quote a notifier URL or the database URL: never show them as they are."""
        if text is None:
            return None
        for secret, masked in self.secrets:
            text = text.replace(secret, masked)
        return text

    def platforms(self, session: Session) -> list[str]:
        """The platforms of the change log for filter menus, cached for a minute (a DISTINCT over
        the whole table is the slowest query of a page otherwise)."""
        from monitor.store.repo import platforms_in_log

        at, cached = self._platforms
        if time.monotonic() - at > 60:
            cached = platforms_in_log(session)
            self._platforms = (time.monotonic(), cached)
        return cached


def web(request: Request) -> Web:
    w: Web = request.app.state.web
    return w


def _secrets(app: App) -> tuple[tuple[str, str], ...]:
    out = [(n.url, mask(n.url)) for n in app.config.settings.notify if n.url]
    out.append((app.engine.url.render_as_string(hide_password=False), "[database]"))
    if app.config.database_url:
        out.append((app.config.database_url, "[database]"))
    if app.config.settings.http.token:
        out.append((app.config.settings.http.token, "****"))
    return tuple(sorted(set(out), key=lambda pair: -len(pair[0])))


def templates() -> Environment:
    env = Environment(loader=PackageLoader("monitor.web", "templates"),
                      autoescape=select_autoescape(enabled_extensions=("html", "xml"), default=True),
                      trim_blocks=True, lstrip_blocks=True)
    return env


def page(request: Request, name: str, context: dict[str, Any], status: int = 200,
         cookies: Sequence[tuple[str, str, dict[str, Any]]] = ()) -> HTMLResponse:
    """Render a page in the visitor's language (remembering a switch in a cookie)."""
    w = web(request)
    lang, remember = i18n.negotiate(request.query_params, request.cookies, request.headers.get("accept-language"))
    here = request.url
    ctx = {
        "lang": lang, "t": i18n.WORDS[lang], "status_words": i18n.STATUS[lang], "event_words": i18n.EVENTS[lang],
        "delivery_words": i18n.DELIVERY[lang], "switch_url": str(here.include_query_params(
            lang="en" if lang == "zh" else "zh")),
        "path": here.path, "writable": w.guard.writable, "version": __version__,
        **context,
    }
    html = w.templates.get_template(name).render(**ctx)
    response = HTMLResponse(html, status_code=status)
    response.headers["vary"] = "Accept-Language, Cookie"
    response.headers["cache-control"] = "no-store" if w.guard.writable else "no-cache"
    if remember:
        response.set_cookie("lang", lang, max_age=365 * 86400, samesite="lax", httponly=True)
    for key, value, options in cookies:
        response.set_cookie(key, value, **options)
    return response


def error_response(request: Request, status: int, message: str) -> Response:
    """Errors in the form the caller reads: JSON for the API, a page for people, text for feeds."""
    path = request.url.path
    if path.startswith("/api/") or path == "/openapi.json":
        return SafeJSON({"error": {"status": status, "message": message}}, status_code=status)
    if path.startswith("/feeds/") or path.startswith("/static/"):
        return PlainTextResponse(message, status_code=status)
    lang, _ = i18n.negotiate(request.query_params, request.cookies, request.headers.get("accept-language"))
    title = {404: "not_found", 400: "bad_request"}.get(status, "server_error" if status >= 500 else "page_error")
    return page(request, "error.html", {"title": i18n.UI[lang][title], "message": message, "status": status},
                status=status)


_MESSAGES = {404: "not found", 405: "method not allowed"}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else _MESSAGES.get(exc.status_code, "error")
    if detail == "Not Found":
        detail = f"nothing at {request.url.path}"
    elif detail == "Method Not Allowed":
        detail = f"{request.method} is not allowed on {request.url.path}"
    response = error_response(request, exc.status_code, detail)
    for k, v in (exc.headers or {}).items():
        response.headers[k] = v
    return response


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ())[1:]) or "request"
        parts.append(f"{where}: {err.get('msg')}")
    return error_response(request, 400, "; ".join(parts) or "invalid request")


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    return error_response(request, 500, "internal error; the server's log has the details")


#: Routers of the app, in order. Each is a function of nothing returning an APIRouter, so a module
#: is imported only when the app is built.
def _default_routers() -> list[APIRouter]:
    from monitor.web import api, feeds, pages

    return [pages.router, api.router, feeds.router]


def _ops_routers() -> list[APIRouter]:
    from monitor.web import ops

    return [ops.router]


ROUTERS: list[Callable[[], list[APIRouter]]] = [_ops_routers, _default_routers]

DESCRIPTION = """The change log of policy-monitor over HTTP: the same objects as `policy-monitor changes
--format json`, `sources --format json` and `entries --format json`.

Lists are newest first. `/api/changes` pages with `limit` and `cursor`: pass the `next_cursor` of one
page to get the next (the `Link` header carries the same, as `rel="next"`). Errors are JSON,
`{"error": {"status": 404, "message": "..."}}`, with the HTTP status.

Corrections (`POST /api/changes/{id}/labels`) need the server's token (`[http] token` or
`$MONITOR_HTTP_TOKEN`) as `Authorization: Bearer TOKEN`; without a configured token the server is
read-only."""


def create_app(app: App) -> FastAPI:
    """The ASGI app serving ``app``'s change log: pages, JSON API, Atom and iCalendar."""
    if app.engine.dialect.name == "sqlite":
        read_engine = db.make_engine(app.config.database_url, readonly=True)
        reads = db.session_factory(read_engine)
    else:
        reads = app.sessions
    _ = app.lexicon  # loaded now, not by the first request's thread
    w = Web(app=app, reads=reads, templates=templates(), guard=Guard(app.config.settings.http.token),
            secrets=_secrets(app))
    api = FastAPI(title="policy-monitor", version=__version__, description=DESCRIPTION, docs_url=None,
                  redoc_url=None, openapi_url="/openapi.json", default_response_class=SafeJSON)
    api.state.web = w
    api.add_middleware(SecurityHeaders)  # type: ignore[arg-type]
    api.add_exception_handler(StarletteHTTPException, _http_error)
    api.add_exception_handler(RequestValidationError, _validation_error)
    api.add_exception_handler(Exception, _server_error)
    api.mount("/static", StaticFiles(directory=STATIC), name="static")
    for routers in ROUTERS:
        for r in routers():
            api.include_router(r)
    return api
