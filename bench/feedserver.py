"""The local site the polling benches run against, in a process of its own (a real site does not
share the poller's interpreter lock): N RSS feeds with ETags, a webhook receiver, and counters.

    GET  /feed/{i}.xml      the feed (304 when If-None-Match matches its ETag)
    POST /hook              a webhook (apprise's json://): the change id in each message is kept
    GET  /_stats[?reset=1]  {"200": n, "304": n, "polls": [[i, t], ...], "hooks": [[change id, digest], ...]}

The request log ("polls") is what bench/workers.py counts duplicate polls from; the status counters
show what each tool actually received (a tool that sends If-None-Match gets 304s too).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import re
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SENTENCES = [
    "快手电商今日发布公告，{d}起禁止在快手直播间发布淘宝商品链接。",
    "Twitter said it will restrict links to Mastodon starting next Monday.",
    "新款手机发布，搭载全新芯片，续航提升百分之二十。",
    "Quarterly revenue rose 12 percent as advertising recovered.",
    "监管部门召开座谈会，要求平台保障网址链接正常访问。",
]
_CHANGE_ID = re.compile(r"(?:变更编号|Change) #(\d+)")


def feed(i: int, items: int, base: datetime = datetime(2024, 1, 1, tzinfo=timezone.utc)) -> bytes:
    """Feed ``i``: ``items`` items, a fifth of them announcing a link ban (so a cycle finds changes),
    published hourly from ``base`` (a recent base makes news a first poll alerts on)."""
    parts = [f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Feed {i}</title>'
             f"<link>http://example.org/{i}</link><description>bench</description>"]
    for j in range(items):
        text = SENTENCES[(i + j) % len(SENTENCES)].format(d=f"{(j % 12) + 1}月{(i % 27) + 1}日")
        parts.append(f"<item><title>Item {j} of feed {i}</title><link>http://example.org/{i}/{j}</link>"
                     f"<guid>bench-{i}-{j}</guid><pubDate>{format_datetime(base + timedelta(hours=j))}</pubDate>"
                     f"<description><![CDATA[<p>{text}</p><p>{'正文内容。' * 40}</p>]]></description></item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


def serve(feeds: int, items: int, recent: bool = False) -> ThreadingHTTPServer:
    base = datetime.now(timezone.utc) - timedelta(hours=items) if recent else datetime(2024, 1, 1, tzinfo=timezone.utc)
    bodies = [feed(i, items, base) for i in range(feeds)]
    etags = ['"' + hashlib.sha1(b).hexdigest()[:16] + '"' for b in bodies]
    lock = threading.Lock()
    stats: dict[str, Any] = {"200": 0, "304": 0, "polls": [], "hooks": []}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_a: object) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", ctype: str = "application/json",
                  etag: str | None = None) -> None:
            self.send_response(status)
            if etag:
                self.send_header("ETag", etag)
            if body:
                self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            if self.path.startswith("/_stats"):
                with lock:
                    body = json.dumps(stats).encode()
                    if "reset=1" in self.path:
                        stats.update({"200": 0, "304": 0, "polls": [], "hooks": []})
                self._send(200, body)
                return
            m = re.fullmatch(r"/feed/(\d+)\.xml", self.path)
            if not m or int(m[1]) >= feeds:
                self._send(404)
                return
            i = int(m[1])
            fresh = self.headers.get("If-None-Match") != etags[i]
            with lock:
                stats["200" if fresh else "304"] += 1
                stats["polls"].append((i, time.time()))
            if fresh:
                self._send(200, bodies[i], "application/rss+xml; charset=utf-8", etags[i])
            else:
                self._send(304, etag=etags[i])

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                message = json.loads(raw).get("message", "")
            except ValueError:
                message = raw.decode("utf-8", "replace")
            digest = hashlib.sha1(message.encode("utf-8")).hexdigest()[:12]
            ids = [int(x) for x in _CHANGE_ID.findall(message)]
            with lock:  # the same message twice is a duplicate; an update of a change is another message
                stats["hooks"].append([ids[0] if ids else -1, digest])
            self._send(200)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 512
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _serve_forever(feeds: int, items: int, recent: bool, ready: "multiprocessing.Queue[int]") -> None:
    server = serve(feeds, items, recent)
    ready.put(server.server_address[1])
    threading.Event().wait()


def start(feeds: int, items: int, recent: bool = False) -> tuple[multiprocessing.Process, int]:
    """The server in its own process, and its port."""
    ready: multiprocessing.Queue[int] = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_serve_forever, args=(feeds, items, recent, ready), daemon=True)
    proc.start()
    return proc, ready.get(timeout=120)


def stats(port: int, reset: bool = False) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats{'?reset=1' if reset else ''}", timeout=30) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]
