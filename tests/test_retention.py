"""Retention: `db prune` removes old entries, page versions and finished deliveries; the change log
keeps every change with its sources; an item its feed still lists is never reported again."""

from __future__ import annotations

import logging
import signal
import subprocess
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from conftest import DOUYIN_ITEM, HTTPServer, Project, Route, free_port, open_app, rss, wait_for

PLAIN_ITEM = {
    "title": "抖音电商发布618活动报名通知",
    "link": "http://news.example.org/2023/04/douyin-618.html",
    "published": datetime.fromisoformat("2023-04-09T02:00:00+00:00"),
    "body": "<p>抖音电商618大促活动报名将于5月开始，商家可在后台报名。</p>",
}
POLLED = "2023-04-10T12:00:00+08:00"
LATER = "2023-10-28T12:00:00+08:00"   # 201 days on: past the default entries_max_age of 180d


def _hook(http: HTTPServer) -> str:
    return f"json://127.0.0.1:{http.server.server_address[1]}/hook"


def _prune(project: Project, *args: str) -> dict[str, int]:
    out = project.run("db", "prune", *args, now=LATER, check=0).stdout
    return {line.split(":")[0]: int(line.rsplit(" ", 1)[1]) for line in out.splitlines() if ":" in line}


def _serve(project: Project) -> tuple[subprocess.Popen[str], httpx.Client]:
    port = free_port()
    proc = project.popen("serve", "--listen", f"127.0.0.1:{port}", now=LATER)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def up() -> bool:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            return client.get("/api/sources").status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, timeout=60)
    return proc, client


def test_prune_keeps_the_change_and_its_sources_and_a_repoll_reports_nothing_again(
        sqlite_project: Project, http: HTTPServer) -> None:
    project = sqlite_project
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM, PLAIN_ITEM]))  # no validators: every poll re-reads it
    project.write_config([{"name": "news", "url": http.url("/feed.xml")}],
                         [{"name": "team", "url": _hook(http), "lang": "en", "reminders": False}])
    project.run("once", now=POLLED, check=0)
    before = project.json("changes")
    assert len(before) == 1 and len(http.posts["/hook"]) == 1
    assert before[0]["sources"][0]["title"] == DOUYIN_ITEM["title"]

    assert _prune(project, "--dry-run") == {"entries": 2, "page_versions": 0, "deliveries": 0}
    # (the alert stays: it records who was told of the change) and the dry run removed nothing:
    assert _prune(project) == {"entries": 2, "page_versions": 0, "deliveries": 0}

    # Both items are still in the feed: the next poll knows them (by their kept keys) and says nothing.
    proc = project.run("once", now=LATER, check=0)
    assert "2 items, 0 new" in proc.stderr
    assert project.json("entries") == []
    assert project.json("changes") == before                      # same sources: title, link, date
    assert len(http.posts["/hook"]) == 1

    # The page and the Atom feed show the article from the change's own copy.
    server, client = _serve(project)
    try:
        page = client.get(f"/changes/{before[0]['id']}?lang=en").text
        assert DOUYIN_ITEM["title"] in page and DOUYIN_ITEM["link"] in page and "removed by retention" in page
        assert DOUYIN_ITEM["link"] in client.get("/feeds/changes.atom").text
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)


def _rows(app: Any, now: datetime) -> dict[str, Any]:
    """Two sources' worth of old and new rows, written as the pipeline writes them."""
    from monitor.extract.model import PolicyChange
    from monitor.sources.feeds import FeedItem
    from monitor.store import repo
    from monitor.store.models import Delivery, Label, PageVersion

    old, new = now - timedelta(days=200), now - timedelta(days=1)
    with app.sessions.begin() as s:
        news, page = repo.get_source(s, "news"), repo.get_source(s, "page")
        items = [FeedItem(guid=f"g{i}", title=f"item {i}", url=f"http://x.example/{i}", published=old, body=f"b{i}")
                 for i in range(6)]
        entries = repo.add_entries(s, news, items[:4], "en", old) + repo.add_entries(s, news, items[4:], "en", new)
        found = PolicyChange(platform="douyin", targets=("pinduoduo",), action="ban", link_type="third_party_product",
                             effective_date=None, evidence="links banned", confidence=0.9)
        judged = repo.record_change(s, entries[0], found, old).change
        s.add(Label(change_id=judged.id, kind="date", value="2023-01-01", previous=None, by="cli", created_at=old))
        found2 = PolicyChange(platform="kuaishou", targets=("taobao",), action="ban", link_type="third_party_product",
                              effective_date=None, evidence="taobao links banned", confidence=0.9)
        change = repo.record_change(s, entries[1], found2, old).change
        for i in range(5):
            s.add(PageVersion(source_id=page.id, fetched_at=old + timedelta(days=i), content_hash=f"h{i}",
                              title="p", text=f"v{i}"))
        for kind, status, created in (("alert", "sent", old), ("update", "sent", old), ("reminder", "dead", old),
                                      ("update", "pending", old), ("update", "sent", new)):
            s.add(Delivery(change_id=change.id, notifier="team", kind=kind, key=f"{kind}-{status}-{created.day}",
                           status=status, attempts=1, next_attempt=created, created_at=created,
                           sent_at=created if status == "sent" else None))
    return {"entries": entries, "items": items, "change": change.id, "judged": judged.id}


@pytest.mark.parametrize("database_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_rules_remove_only_what_they_name(project: Project, caplog: pytest.LogCaptureFixture) -> None:
    from sqlalchemy import func, select

    from monitor.daemon import Daemon
    from monitor.store import repo
    from monitor.store.models import Delivery, Entry, PageVersion, PrunedEntry
    from monitor.store.retention import prune

    project.write_config([{"name": "news", "url": "http://127.0.0.1:9/feed"},
                          {"name": "page", "kind": "page", "url": "http://127.0.0.1:9/page"}],
                         extra='[retention]\nentries_max_count = 2\nversions_keep = 2\nversions_max_age = "off"\n')
    app = open_app(project, secrets=False)
    try:
        now = datetime.now(timezone.utc)
        made = _rows(app, now)
        rules = app.config.settings.retention
        dry = prune(app.sessions, rules, now, dry_run=True)
        # entries: 4 old ones minus the one behind a labelled change; the count rule (2 newest) takes
        # none of the new ones. Versions: 5 minus the newest 2. Deliveries: the old finished
        # non-alerts (the sent update and the dead reminder).
        assert dry.counts == {"entries": 3, "page_versions": 3, "deliveries": 2}
        with app.sessions() as s:
            assert s.scalar(select(func.count()).select_from(Entry)) == 6
        done = prune(app.sessions, rules, now, batch=2)      # several batches
        assert done.counts == dry.counts
        with app.sessions() as s:
            left = set(s.scalars(select(Entry.guid)))
            assert left == {"g0", "g4", "g5"}
            assert [v.text for v in s.scalars(select(PageVersion).order_by(PageVersion.id))] == ["v3", "v4"]
            kinds = sorted((d.kind, d.status) for d in s.scalars(select(Delivery)))
            assert kinds == [("alert", "sent"), ("update", "pending"), ("update", "sent")]
            assert s.scalar(select(func.count()).select_from(PrunedEntry)) == 3
            change = repo.get_change(s, made["change"])
            assert change is not None and [(m.entry, m.title, m.url, m.source_name) for m in change.mentions] == [
                (None, "item 1", "http://x.example/1", "news")]
            # the removed items are still known: offered again by their feed, none is new
            assert repo.new_items(s, repo.get_source(s, "news"), made["items"]) == []
            # a message about the change (an update, say) still names its source
            body = app.renderer.render("alert", "en", "text", now, change=change).body
            assert "item 1" in body and "http://x.example/1" in body
        # the daemon's daily job: one line with the counts
        caplog.set_level(logging.INFO, logger="monitor.daemon")
        Daemon(app)._prune_job()
        assert "retention: removed 0 entries, 0 page_versions, 0 deliveries" in caplog.text
    finally:
        app.close()
