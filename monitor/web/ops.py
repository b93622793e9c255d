"""``/metrics`` (Prometheus text format) and ``/healthz`` (for a load balancer, a container runtime's
HEALTHCHECK, a Kubernetes probe), served beside the pages by ``serve`` and by the daemon's listener.

``/healthz`` answers 200 while the database answers a trivial query within a few seconds and, in the
daemon, while its scheduler runs and its polling loop makes progress; otherwise 503 with the reason.
The daemon says how its loop is doing through ``app.state.liveness`` (a function returning None or
the problem); ``serve``, which runs no scheduler, checks the database only and says so.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any, Callable
from urllib.parse import quote

from fastapi import APIRouter, Request
from sqlalchemy import text
from starlette.responses import Response

from monitor.sanitize import mask_urls_in
from monitor.web.app import SafeJSON, Web, web

router = APIRouter(include_in_schema=False)
#: How long /healthz waits for the database before calling it down.
DB_TIMEOUT = 3.0


@router.get("/metrics")
def metrics(request: Request) -> Response:
    from monitor.metrics import CONTENT_TYPE

    w = web(request)
    body = w.app.metrics.exposition(w.reads)
    return Response(body, media_type=CONTENT_TYPE, headers={"cache-control": "no-store"})


@router.get("/healthz")
async def healthz(request: Request) -> Response:
    w = web(request)
    checks: dict[str, str] = {}
    problems: list[str] = []
    try:
        await asyncio.wait_for(asyncio.to_thread(database_answers, w), timeout=DB_TIMEOUT)
        checks["database"] = "ok"
    except (asyncio.TimeoutError, TimeoutError):
        checks["database"] = f"no answer within {DB_TIMEOUT:g}s"
        problems.append(f"database: {checks['database']}")
    except Exception as exc:
        detail = w.scrub(mask_urls_in(str(getattr(exc, "orig", None) or exc)).splitlines()[0][:300]) or ""
        checks["database"] = f"{type(exc).__name__}: {detail}"
        problems.append(f"database: {checks['database']}")
    liveness: Callable[[], str | None] | None = getattr(request.app.state, "liveness", None)
    if liveness is None:
        checks["scheduler"] = "not checked: policy-monitor serve runs no scheduler"
    else:
        problem = liveness()
        checks["scheduler"] = problem or "ok"
        if problem:
            problems.append(f"scheduler: {problem}")
    body: dict[str, Any] = {"status": "unavailable" if problems else "ok", "checks": checks}
    if problems:
        body["reason"] = "; ".join(problems)
    return SafeJSON(body, status_code=503 if problems else 200, headers={"cache-control": "no-store"})


def database_answers(w: Web) -> None:
    """Raise unless the database answers now. SQLite is opened afresh, read-only, so a database file
    removed or replaced under a running daemon is noticed (a pooled connection would go on reading
    the old file); a server database is asked ``SELECT 1`` under a statement timeout."""
    engine = w.app.engine
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        if path and path != ":memory:":
            conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=DB_TIMEOUT)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                conn.close()
            return
    with w.reads() as s:
        if engine.dialect.name == "postgresql":
            s.execute(text(f"SET LOCAL statement_timeout = {int(DB_TIMEOUT * 1000)}"))
        s.execute(text("SELECT 1"))
