#!/usr/bin/env python3
"""The web server over a large change log: request latency of the JSON API, the pages and the feeds.

    .venv/bin/python bench/http.py [--changes 100000] [--requests 1000] [--database URL]

Fills a fresh SQLite database (unless --database gives another, e.g. PostgreSQL) with --changes
changes over 30 platforms, each reported by one or two entries with a few histories and deliveries,
starts `policy-monitor serve` on 127.0.0.1 in its own process, and times, from a client with a
kept-alive connection:

- `/api/changes?platform=P&limit=50` for --requests requests (P rotating over the platforms),
- the same 20 pages deep through the cursor,
- `/` (the change log page), `/?platform=P`, `/changes/{id}`, `/upcoming`,
- `/feeds/changes.atom` and `/feeds/effective.ics` (2,000 events), each built afresh (distinct
  queries) and kept (the same query again while the change log has not moved).

It prints p50, p95 and max per endpoint in milliseconds, and whether the targets hold (API p95 at
most 50 ms, page p95 at most 100 ms).
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named as the issue asks, bench/http.py: its folder must not stand first on the path,
# or `import http` anywhere (urllib, httpx) would find this file instead of the standard library.
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402

import httpx  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from monitor.app import App  # noqa: E402
from monitor.config import load  # noqa: E402
from monitor.store.models import Change, ChangeEvent, Delivery, Entry, Mention, Source  # noqa: E402

PLATFORMS = ["kuaishou", "douyin", "taobao", "tmall", "jd", "pinduoduo", "wechat", "weibo", "xiaohongshu",
             "bilibili", "zhihu", "baidu", "alipay", "meituan", "tiktok", "twitter", "youtube", "instagram",
             "facebook", "threads", "reddit", "linkedin", "pinterest", "amazon", "apple", "google", "telegram",
             "discord", "substack", "medium"]
ACTIONS = ["ban", "restrict", "allow", "require"]
LINKS = ["affiliate", "third_party_product", "external_url", "mini_program", "social_profile", "news", "payment",
         "other"]
NOW = datetime(2025, 6, 1, 2, 0, tzinfo=timezone.utc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fill(app: App, n: int) -> None:
    """n changes in batches, through SQLAlchemy Core (the ORM would take minutes for this many)."""
    rnd = random.Random(7)
    with app.sessions.begin() as s:
        source_id = s.query(Source.id).filter(Source.name == "bench").scalar()
    batch = 5000
    change_id = entry_id = 0
    for start in range(0, n, batch):
        changes, entries, mentions, events, deliveries = [], [], [], [], []
        for i in range(start, min(n, start + batch)):
            change_id += 1
            platform = PLATFORMS[i % len(PLATFORMS)]
            seen = NOW - timedelta(minutes=(n - i) * 15)
            effective = (seen + timedelta(days=rnd.randint(-10, 60))).date() if rnd.random() < 0.7 else None
            status = "withdrawn" if i % 97 == 0 else "reversed" if i % 41 == 0 else "active"
            targets = rnd.sample(PLATFORMS, rnd.randint(0, 2))
            evidence = f"{platform} 宣布 {effective or ''} 起{ACTIONS[i % 4]} {' '.join(targets)} 链接（样例 {i}）。"
            changes.append({"id": change_id, "platform": platform, "targets": targets, "action": ACTIONS[i % 4],
                            "link_type": LINKS[i % len(LINKS)], "effective_date": effective, "evidence": evidence,
                            "confidence": 0.5 + (i % 5) / 10, "first_seen": seen, "updated_at": seen,
                            "status": status, "found_by": "poll"})
            for k in range(1 if i % 3 else 2):
                entry_id += 1
                entries.append({"id": entry_id, "source_id": source_id, "guid": f"bench-{entry_id}",
                                "url": f"https://news.example.org/{entry_id}.html",
                                "canonical_url": f"https://news.example.org/{entry_id}.html",
                                "content_hash": f"{entry_id:064d}", "title": f"样例新闻 {entry_id}：{platform} 链接新规",
                                "published": seen - timedelta(hours=k), "lang": "zh",
                                "body": f"<p>{evidence}</p><p>{'正文内容。' * 60}</p>", "discovered_at": seen,
                                "changes_found": 1})
                mentions.append({"change_id": change_id, "entry_id": entry_id, "evidence": evidence,
                                 "effective_date": effective, "confidence": 0.7, "created_at": seen})
            if i % 7 == 0 and effective:
                events.append({"change_id": change_id, "entry_id": entry_id, "kind": "date_moved",
                               "old_value": (effective - timedelta(days=3)).isoformat(),
                               "new_value": effective.isoformat(), "evidence": evidence, "at": seen})
            deliveries.append({"change_id": change_id, "notifier": "team", "kind": "alert", "key": "",
                               "status": "sent", "attempts": 1, "next_attempt": seen, "created_at": seen,
                               "sent_at": seen})
        with app.engine.begin() as conn:
            conn.execute(insert(Change), changes)
            conn.execute(insert(Entry), entries)
            conn.execute(insert(Mention), mentions)
            if events:
                conn.execute(insert(ChangeEvent), events)
            conn.execute(insert(Delivery), deliveries)
    if app.engine.dialect.name == "postgresql":
        with app.engine.begin() as conn:
            for table in ("changes", "entries", "mentions", "change_events", "outbox"):
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                     f"(SELECT max(id) FROM {table}))")
            conn.exec_driver_sql("ANALYZE")
    else:
        with app.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def timed(client: httpx.Client, urls: list[str]) -> list[float]:
    out = []
    for url in urls:
        t = time.perf_counter()
        r = client.get(url)
        out.append((time.perf_counter() - t) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"{url}: HTTP {r.status_code}: {r.text[:300]}")
    return out


def line(name: str, ms: list[float]) -> tuple[str, float, float, float, int]:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return name, statistics.median(ms), p95, ms[-1], len(ms)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--changes", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--database", help="a SQLAlchemy URL of an empty database (default: a new SQLite file)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="pm-bench-http-") as tmp:
        url = args.database or f"sqlite:///{tmp}/monitor.db"
        cfg = Path(tmp) / "monitor.toml"
        cfg.write_text(f'[storage]\nurl = "{url}"\n\n[[sources]]\nname = "bench"\nurl = "http://127.0.0.1:9/feed"\n',
                       encoding="utf-8")
        app = App.open(load(cfg))
        t = time.perf_counter()
        fill(app, args.changes)
        app.close()
        size = os.path.getsize(f"{tmp}/monitor.db") / 1e6 if not args.database else 0.0
        print(f"filled {args.changes:,} changes in {time.perf_counter() - t:.1f}s"
              + (f" (SQLite file {size:.0f} MB)" if size else ""))

        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
        env["MONITOR_NOW"] = NOW.isoformat()
        server = subprocess.Popen([sys.executable, "-m", "monitor", "serve", "--config", str(cfg), "--listen",
                                   f"127.0.0.1:{port}"], env=env, stderr=subprocess.PIPE, text=True)
        try:
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/api/sources").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start: " + (server.stderr.read() if server.stderr else ""))
                time.sleep(0.2)
            api = [f"/api/changes?platform={PLATFORMS[i % len(PLATFORMS)]}&limit=50" for i in range(args.requests)]
            timed(client, api[:30])  # warm-up: connections, caches, the first template compile
            results = [line("/api/changes?platform=P&limit=50", timed(client, api))]
            deep = []
            for p in PLATFORMS[:10]:
                nxt = None
                for _ in range(20):
                    q = f"/api/changes?platform={p}&limit=50" + (f"&cursor={nxt}" if nxt else "")
                    t = time.perf_counter()
                    body = client.get(q).json()
                    deep.append((time.perf_counter() - t) * 1000)
                    nxt = body["next_cursor"]
            results.append(line("/api/changes, pages 1-20 by cursor", deep))
            pages = max(100, args.requests // 5)
            results.append(line("/ (change log page)", timed(client, ["/"] * pages)))
            results.append(line("/?platform=P", timed(client, [f"/?platform={PLATFORMS[i % 30]}" for i in range(pages)])))
            ids = random.Random(1).sample(range(1, args.changes + 1), min(pages, args.changes))
            results.append(line("/changes/{id}", timed(client, [f"/changes/{i}" for i in ids])))
            results.append(line("/upcoming", timed(client, ["/upcoming"] * 50)))
            results.append(line("/feeds/changes.atom?platform=P, built", timed(
                client, [f"/feeds/changes.atom?platform={p}" for p in PLATFORMS])))
            results.append(line("/feeds/changes.atom, kept", timed(client, ["/feeds/changes.atom"] * 51)[1:]))
            # distinct queries (the same events) so that each calendar is built, not served again
            results.append(line("/feeds/effective.ics, built (2,000 events)", timed(
                client, [f"/feeds/effective.ics?effective_from=2000-01-{d:02d}" for d in range(1, 6)])))
            results.append(line("/feeds/effective.ics, kept", timed(client, ["/feeds/effective.ics"] * 21)[1:]))
            client.close()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    print(f"{'endpoint':40} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'requests':>9}")
    for name, p50, p95, top, n in results:
        print(f"{name:40} {p50:8.1f} {p95:8.1f} {top:8.1f} {n:9d}")
    api_p95, page_p95 = results[0][2], results[2][2]
    print(f"targets: API p95 {api_p95:.1f} ms (≤ 50: {'met' if api_p95 <= 50 else 'NOT met'}), "
          f"page p95 {page_p95:.1f} ms (≤ 100: {'met' if page_p95 <= 100 else 'NOT met'})")


if __name__ == "__main__":
    main()
