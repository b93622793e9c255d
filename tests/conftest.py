"""Real parts on loopback for the tests: an HTTP server with programmable routes, an SMTP server
(aiosmtpd), SQLite and, where it answers, the PostgreSQL server at 127.0.0.1:5432."""

from __future__ import annotations

import email
import email.policy
import gzip
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.utils import format_datetime
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator
from xml.sax.saxutils import escape

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


# -- shared data -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not present next to the repository")
    return SHARED


def load_seed(shared: Path) -> dict[str, Any]:
    """The seed article of ../shared/seeds as title, published and HTML body."""
    from email.utils import parsedate_to_datetime
    import re

    path = next((shared / "seeds").glob("*.md"))
    raw = path.read_text(encoding="utf-8")
    _, front, body = raw.split("---", 2)
    title = re.search(r"^title:\s*'(.*)'\s*$", front, re.M)[1]  # type: ignore[index]
    published = parsedate_to_datetime(re.search(r"^date:\s*(.*)$", front, re.M)[1].strip())  # type: ignore[index]
    return {"title": title, "published": published, "body": body.strip()}


# -- HTTP ------------------------------------------------------------------------------------------
@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/rss+xml; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0          # seconds before answering
    etag: str | None = None     # answer 304 when If-None-Match matches
    gzip: bool = False
    handler: Callable[[BaseHTTPRequestHandler], None] | None = None


class HTTPServer:
    """A real HTTP server on 127.0.0.1 whose routes a test sets and changes while it runs."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.routes: dict[str, Route] = {}
        self.hits: dict[str, int] = {}
        self.posts: dict[str, list[dict[str, Any]]] = {}
        self.post_status: dict[str, int] = {}
        self.post_delay: dict[str, float] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_a: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                """A webhook receiver: records each JSON body; answers post_status (default 200).
                A route set as ``routes["POST /path"]`` answers with its body (an API read by POST)."""
                path = self.path.split("?")[0]
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                api = outer.routes.get(f"POST {path}")
                if api is not None:
                    outer.posts.setdefault(path, []).append({"raw": raw.decode("utf-8", "replace"),
                                                             "content_type": self.headers.get("Content-Type")})
                    self.send_response(api.status)
                    self.send_header("Content-Type", api.content_type)
                    self.send_header("Content-Length", str(len(api.body)))
                    self.end_headers()
                    self.wfile.write(api.body)
                    return
                if outer.post_delay.get(path):
                    time.sleep(outer.post_delay[path])
                status = outer.post_status.get(path, 200)
                if status == 200:
                    try:
                        outer.posts.setdefault(path, []).append(json.loads(raw))
                    except ValueError:
                        outer.posts.setdefault(path, []).append({"raw": raw.decode("utf-8", "replace")})
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                outer.hits[path] = outer.hits.get(path, 0) + 1
                route = outer.routes.get(path)
                if route is None:
                    self.send_error(404)
                    return
                if route.delay:
                    time.sleep(route.delay)
                if route.handler:
                    route.handler(self)
                    return
                if route.etag and self.headers.get("If-None-Match") == route.etag:
                    self.send_response(304)
                    self.send_header("ETag", route.etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = gzip.compress(route.body) if route.gzip else route.body
                try:
                    self.send_response(route.status)
                    self.send_header("Content-Type", route.content_type)
                    self.send_header("Content-Length", str(len(body)))
                    if route.gzip:
                        self.send_header("Content-Encoding", "gzip")
                    if route.etag:
                        self.send_header("ETag", route.etag)
                    for k, v in route.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients that hang up early are what several tests are about

        self.server = Server((host, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http() -> Iterator[HTTPServer]:
    server = HTTPServer()
    yield server
    server.close()


def rss(items: list[dict[str, Any]], title: str = "Test feed") -> bytes:
    """An RSS 2.0 document; each item has title, link, guid, published (datetime) and body (HTML)."""
    parts = [f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>{escape(title)}</title>'
             "<link>http://example.org/</link><description>test</description>"]
    for it in items:
        parts.append(
            f"<item><title>{escape(it['title'])}</title><link>{escape(it['link'])}</link>"
            f"<guid>{escape(it.get('guid', it['link']))}</guid>"
            f"<pubDate>{format_datetime(it['published'])}</pubDate>"
            f"<description><![CDATA[{it['body']}]]></description></item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


# -- SMTP ------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SMTPServer:
    """aiosmtpd on loopback, collecting every message it accepts; can be started late or stopped."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[email.message.EmailMessage] = []
        self.controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                outer.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()
            self.controller = None

    @property
    def url(self) -> str:
        return (f"mailto://127.0.0.1:{self.port}?from=monitor@example.org&to=ops@example.org"
                "&mode=insecure")

    def texts(self) -> list[str]:
        """Subject, plain-text part and HTML part of each message, as one string."""
        out = []
        for m in self.messages:
            parts = [str(m["subject"])]
            for kind in ("plain", "html"):
                body = m.get_body(preferencelist=(kind,))
                if body is not None:
                    parts.append(body.get_content())
            out.append("\n".join(parts))
        return out


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    server = SMTPServer()
    server.start()
    yield server
    server.stop()


# -- databases -------------------------------------------------------------------------------------
def _postgres_reason() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL at 127.0.0.1:5432 does not answer ({exc.__class__.__name__})"


#: For tests of what only PostgreSQL does (or of what the SQLite case of another test covers already).
POSTGRES_ONLY = pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                                        indirect=True)


def fresh_database(kind: str, tmp: Path) -> Iterator[str]:
    """A fresh empty database of ``kind``: a SQLite file in ``tmp``, or a PostgreSQL database
    created here and dropped when the generator closes (skipped where no server answers)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'monitor.db'}"
        return
    reason = _postgres_reason()
    if reason:
        pytest.skip(reason)
    import psycopg

    name = f"pm_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database: a SQLite file, or a PostgreSQL database created and dropped here."""
    yield from fresh_database(request.param, tmp_path)


# -- the CLI ---------------------------------------------------------------------------------------
def toml_value(v: Any) -> str:
    """JSON is TOML for strings, numbers, booleans and arrays; tables are written inline."""
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)


@dataclass
class Project:
    """A working folder with a config file, and the CLI run in it as a user would run it."""

    dir: Path
    database_url: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.dir / "monitor.toml"

    def write_config(self, sources: list[dict[str, Any]], notifiers: list[dict[str, Any]] = (),  # type: ignore[assignment]
                     extra: str = "") -> Path:
        lines = [f'[storage]\nurl = "{self.database_url}"\n', "[fetch]\ntimeout = \"3s\"\nconnect_timeout = \"2s\"\nhost_delay = \"0s\"\nhost_concurrency = 8\n",
                 "[delivery]\nretry_after = \"1m\"\nmax_attempts = 4\n", extra]
        for s in sources:
            lines.append("[[sources]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in s.items()))
        for n in notifiers:
            lines.append("[[notify]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in n.items()))
        self.config.write_text("\n".join(lines), encoding="utf-8")
        return self.config

    def environ(self, now: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
        env.update(self.env)
        if now:
            env["MONITOR_NOW"] = now
        return env

    def run(self, *args: str, now: str | None = None, timeout: float = 120, check: int | None = None
            ) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "monitor", *args]
        if args and args[0] not in ("extract", "eval") and "--config" not in args:
            cmd += ["--config", str(self.config)]
        proc = subprocess.run(cmd, cwd=self.dir, env=self.environ(now), capture_output=True, text=True,
                              timeout=timeout)
        if check is not None:
            assert proc.returncode == check, f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def json(self, *args: str, now: str | None = None) -> Any:
        proc = self.run(*args, "--format", "json", now=now, check=0)
        return json.loads(proc.stdout)

    def popen(self, *args: str, now: str | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "monitor", *args, "--config", str(self.config)],
                                cwd=self.dir, env=self.environ(now), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)


@pytest.fixture
def project(tmp_path: Path, database_url: str) -> Project:
    return Project(tmp_path, database_url)


@pytest.fixture
def sqlite_project(tmp_path: Path) -> Project:
    return Project(tmp_path, f"sqlite:///{tmp_path / 'monitor.db'}")


def wait_for(predicate: Callable[[], Any], timeout: float = 30, every: float = 0.2,
             proc: subprocess.Popen[str] | None = None) -> Any:
    """Poll ``predicate`` until it is true. With ``proc`` (a daemon the condition depends on), stop as
    soon as it exits and show what it printed, rather than wait out the timeout in silence."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            _out, err = proc.communicate()
            raise AssertionError(f"the process exited ({proc.returncode}) before the condition was met:\n"
                                 f"{(err or '')[-4000:]}")
        time.sleep(every)
    if proc is not None and proc.poll() is None:
        proc.kill()
        _out, err = proc.communicate()
        raise AssertionError(f"condition not met in {timeout:g}s; the process printed:\n{(err or '')[-4000:]}")
    raise AssertionError("condition not met in time")


# An announcement written for these tests (not from the corpus): Douyin stops Pinduoduo links.
DOUYIN_ITEM = {
    "title": "抖音电商发布直播间商品链接新规",
    "link": "http://news.example.org/2023/04/douyin-links.html",
    "published": datetime.fromisoformat("2023-04-10T02:00:00+00:00"),
    "body": "<p>抖音电商今日发布公告。</p><p>4月15日起，拼多多商品链接将无法在抖音直播间购物车中发布，"
            "已发布的链接将被下架。</p><p>平台表示，此举是为了保障消费者的售后体验。</p>",
}


# -- in process ------------------------------------------------------------------------------------
def open_app(project: Project, secrets: bool = True) -> Any:
    """The core on a project's config, in this process (for tests that watch its insides)."""
    from monitor.app import App
    from monitor.config import load

    return App.open(load(project.config, secrets=secrets))


class SlowSMTPServer(SMTPServer):
    """An SMTP server that takes each message at once but answers ``delay`` seconds later: the sender
    cannot know whether it went out."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def start(self) -> None:
        import asyncio

        from aiosmtpd.controller import Controller

        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                outer.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
                await asyncio.sleep(outer.delay)
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()


def drip_headers(h: BaseHTTPRequestHandler, seconds: float = 120) -> None:
    """A server that sends its headers one byte at a time, never idle long enough for a read timeout."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nX-Padding: " + b"x" * 400 + b"\r\n\r\n"
    pause = seconds / len(head)
    try:
        for i in range(len(head)):
            h.wfile.write(head[i:i + 1])
            h.wfile.flush()
            time.sleep(pause)
        h.wfile.write(b"<rss/>")
    except (BrokenPipeError, ConnectionResetError, OSError):
        pass
    h.close_connection = True
