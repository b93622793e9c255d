#!/usr/bin/env python3
"""One poll cycle over many feeds on a local server: fresh content, then every feed answering 304.

    .venv/bin/python bench/poll.py [--feeds 1000] [--items 20] [--workers 16] [--database URL]

Serves --feeds RSS feeds of --items items each from a threaded HTTP server on 127.0.0.1 (with
ETags), polls all of them once with policy-monitor's own pipeline (fetch, parse, store, extract),
then polls them again (all 304), and prints the time per cycle, fetches per second and peak RSS.
The database is a fresh SQLite file unless --database gives another (e.g. PostgreSQL).
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import resource
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/http.py (named by its issue) would shadow the standard library's http package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from monitor.app import App  # noqa: E402
from monitor.config import Config, Settings  # noqa: E402
from monitor.pipeline import poll  # noqa: E402

SENTENCES = [
    "快手电商今日发布公告，{d}起禁止在快手直播间发布淘宝商品链接。",
    "Twitter said it will restrict links to Mastodon starting next Monday.",
    "新款手机发布，搭载全新芯片，续航提升百分之二十。",
    "Quarterly revenue rose 12 percent as advertising recovered.",
    "监管部门召开座谈会，要求平台保障网址链接正常访问。",
]


def feed(i: int, items: int) -> bytes:
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    parts = [f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Feed {i}</title>'
             f"<link>http://example.org/{i}</link><description>bench</description>"]
    for j in range(items):
        text = SENTENCES[(i + j) % len(SENTENCES)].format(d=f"{(j % 12) + 1}月{(i % 27) + 1}日")
        parts.append(f"<item><title>Item {j} of feed {i}</title><link>http://example.org/{i}/{j}</link>"
                     f"<guid>bench-{i}-{j}</guid><pubDate>{format_datetime(base + timedelta(hours=j))}</pubDate>"
                     f"<description><![CDATA[<p>{text}</p><p>{'正文内容。' * 40}</p>]]></description></item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


def serve_in_process(feeds: int, items: int) -> tuple[multiprocessing.Process, int]:
    """The feed server in its own process, as a real site would be: it must not share this
    process's interpreter lock with the pipeline being measured."""
    ready: multiprocessing.Queue[int] = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_serve_forever, args=(feeds, items, ready), daemon=True)
    proc.start()
    return proc, ready.get(timeout=60)


def _serve_forever(feeds: int, items: int, ready: "multiprocessing.Queue[int]") -> None:
    server = serve(feeds, items)
    ready.put(server.server_address[1])
    threading.Event().wait()


def serve(feeds: int, items: int) -> ThreadingHTTPServer:
    bodies = {f"/feed/{i}.xml": feed(i, items) for i in range(feeds)}
    etags = {k: '"' + hashlib.sha1(v).hexdigest()[:16] + '"' for k, v in bodies.items()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_a: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            body = bodies.get(self.path)
            if body is None:
                self.send_error(404)
                return
            if self.headers.get("If-None-Match") == etags[self.path]:
                self.send_response(304)
                self.send_header("ETag", etags[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("ETag", etags[self.path])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--database")
    args = ap.parse_args()
    server, port = serve_in_process(args.feeds, args.items)
    tmp = tempfile.mkdtemp(prefix="pm-bench-")
    url = args.database or f"sqlite:///{tmp}/bench.db"
    settings = Settings.model_validate({
        "storage": {"url": url},
        "fetch": {"workers": args.workers, "host_concurrency": args.workers, "host_delay": "0s", "timeout": "30s"},
        "sources": [{"name": f"feed-{i}", "url": f"http://127.0.0.1:{port}/feed/{i}.xml", "interval": "15m"}
                    for i in range(args.feeds)],
    })
    app = App.open(Config(Path(tmp) / "bench.toml", settings))
    _ = app.extractor, app.planner
    print(f"{args.feeds} feeds x {args.items} items, {args.workers} workers, database {url.split('://')[0]}")
    for label in ("fresh", "304"):
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            outcomes = list(pool.map(lambda cfg: poll(app, cfg), settings.sources))
        elapsed = time.perf_counter() - started
        failed = [o for o in outcomes if not o.ok]
        print(f"cycle {label:5}  {elapsed:6.2f} s   {len(outcomes) / elapsed:7.0f} fetches/s   "
              f"new entries {sum(o.new_entries for o in outcomes):6}   changes {sum(o.changes for o in outcomes):5}"
              f"   failed {len(failed)}" + (f" (first: {failed[0].error})" if failed else ""))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB (the polling process: pipeline and database client; the server runs apart)")
    app.close()
    server.terminate()


if __name__ == "__main__":
    main()
