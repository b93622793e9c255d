#!/usr/bin/env python3
"""What retention costs: `db prune` over a large database, and dedup against the pruned keys.

    .venv/bin/python bench/prune.py [--entries 100000] [--url sqlite:///tmp/x.db | postgresql://...]

Builds a database (a fresh SQLite file by default) with --entries entries over 20 sources, all old
enough for the default ``entries_max_age``; one in 20 reports a change (a mention and a history
event), plus watched-page versions and finished deliveries. Then prints: the dry run (deciding
only), the prune itself (rows per second), and the time of one poll's dedup check (500 items, all
pruned) against ``pruned_entries``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py would shadow the standard library's http package: drop this folder from the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402

from sqlalchemy import insert  # noqa: E402

from monitor.config import RetentionConfig  # noqa: E402
from monitor.sources.feeds import FeedItem  # noqa: E402
from monitor.store import db, repo  # noqa: E402
from monitor.store.models import Change, ChangeEvent, Delivery, Entry, Mention, PageVersion, Source  # noqa: E402
from monitor.store.retention import prune  # noqa: E402


def build(url: str, n: int, now: datetime) -> None:
    engine = db.make_engine(url)
    db.upgrade(engine)
    old = now - timedelta(days=400)
    with engine.begin() as conn:
        conn.execute(insert(Source), [{"id": i + 1, "name": f"s{i}", "kind": "feed", "url": f"http://x/{i}",
                                       "status": "ok", "failures": 0, "entries_seen": 0, "ops_alerted": False}
                                      for i in range(20)])
        rows = [{"id": i + 1, "source_id": i % 20 + 1, "guid": f"g{i}", "url": f"http://news.example/{i}",
                 "canonical_url": f"http://news.example/{i}", "content_hash": f"{i:064x}", "title": f"title {i}",
                 "published": old, "lang": "zh", "body": "正文" * 500, "discovered_at": old, "changes_found": 0}
                for i in range(n)]
        for start in range(0, n, 5000):
            conn.execute(insert(Entry), rows[start:start + 5000])
        reported = list(range(1, n + 1, 20))
        conn.execute(insert(Change), [{"id": k + 1, "platform": "douyin", "targets": [], "action": "ban",
                                       "link_type": "other", "evidence": "e", "confidence": 0.9, "first_seen": old,
                                       "updated_at": old, "status": "active", "found_by": "poll"}
                                      for k in range(len(reported))])
        conn.execute(insert(Mention), [{"change_id": k + 1, "entry_id": e, "evidence": "e", "confidence": 0.9,
                                        "created_at": old, "source_name": f"s{(e - 1) % 20}", "title": f"title {e - 1}",
                                        "url": f"http://news.example/{e - 1}", "published": old}
                                       for k, e in enumerate(reported)])
        conn.execute(insert(ChangeEvent), [{"change_id": k + 1, "entry_id": e, "kind": "date_set", "evidence": "e",
                                            "at": old} for k, e in enumerate(reported)])
        conn.execute(insert(PageVersion), [{"source_id": 1, "fetched_at": old, "content_hash": f"{i}", "title": "p",
                                            "text": "line\n" * 200} for i in range(300)])
        conn.execute(insert(Delivery), [{"change_id": (i % len(reported)) + 1, "notifier": "team", "kind": "update",
                                         "key": f"e{i}", "status": "sent", "attempts": 1, "next_attempt": old,
                                         "created_at": old, "sent_at": old} for i in range(n // 10)])
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--url", help="a database URL (default: a new SQLite file)")
    args = ap.parse_args()
    url = args.url or f"sqlite:///{tempfile.mkdtemp(prefix='pm-prune-')}/monitor.db"
    now = datetime.now(timezone.utc)
    started = time.perf_counter()
    build(url, args.entries, now)
    print(f"built {args.entries} entries on {db.shown(url) if not url.startswith('sqlite') else 'SQLite'} "
          f"in {time.perf_counter() - started:.1f}s")
    engine = db.make_engine(url)
    sessions = db.session_factory(engine)
    rules = RetentionConfig()
    t = time.perf_counter()
    dry = prune(sessions, rules, now, dry_run=True)
    print(f"dry run: {dry.line()} in {time.perf_counter() - t:.2f}s")
    t = time.perf_counter()
    done = prune(sessions, rules, now)
    took = time.perf_counter() - t
    print(f"prune: {done.line()} in {took:.2f}s ({done.total / took:,.0f} rows/s)")
    items = [FeedItem(guid=f"g{i}", title="t", url=f"http://news.example/{i}", published=None, body="b")
             for i in range(0, 500 * 20, 20)]
    with sessions() as s:
        source = repo.get_source(s, "s0")
        t = time.perf_counter()
        fresh = repo.new_items(s, source, items)
        print(f"dedup of one poll (500 pruned items): {len(fresh)} new, {(time.perf_counter() - t) * 1000:.1f} ms")
    engine.dispose()


if __name__ == "__main__":
    main()
