"""Issue 13, in process: the pieces behind the hardening, each against real parts (a real HTTP server
on loopback, SQLite and PostgreSQL), with the daemon's insides in reach."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from conftest import DOUYIN_ITEM, HTTPServer, Project, Route, open_app, rss

KS_ITEM = {
    "title": "快手宣布直播间禁止挂淘宝链接",
    "link": "http://news.example.org/2023/04/kuaishou.html",
    "published": datetime.fromisoformat("2023-04-10T03:00:00+00:00"),
    "body": "<p>快手电商宣布，4月20日起禁止在快手直播间发布淘宝商品链接。</p>",
}


def _items(n: int, start: datetime = datetime(2023, 4, 1, tzinfo=timezone.utc)) -> list[dict[str, Any]]:
    return [dict(DOUYIN_ITEM, title=f"第{i}条：抖音电商发布直播间商品链接新规", link=f"http://news.example.org/{i}",
                 guid=f"item-{i}", published=start + timedelta(hours=i)) for i in range(n)]


# -- defect 4: whatever raises stays the source's failure -------------------------------------------
def test_anything_that_raises_in_a_poll_is_that_sources_failure(project: Project, http: HTTPServer,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.pipeline import poll
    from monitor.store import repo

    http.routes["/good.xml"] = Route(rss([DOUYIN_ITEM]))
    http.routes["/bad.xml"] = Route(rss([KS_ITEM]))
    project.write_config([{"name": "good", "url": http.url("/good.xml")}, {"name": "bad", "url": http.url("/bad.xml")}])
    app = open_app(project)
    real = repo.add_entries

    def explode(session: Any, source: Any, items: Any, lang: Any, now: Any) -> Any:
        if source.name == "bad":
            raise RuntimeError("a bug nobody foresaw")
        return real(session, source, items, lang, now)

    monkeypatch.setattr(repo, "add_entries", explode)
    try:
        bad = poll(app, app.config.source("bad"))
        good = poll(app, app.config.source("good"))
        assert not bad.ok and "internal error: RuntimeError: a bug nobody foresaw" in str(bad.error)
        assert good.ok and good.new_entries == 1
        with app.sessions() as s:
            row = repo.get_source(s, "bad")
            assert row.status == "failing" and "a bug nobody foresaw" in (row.last_error or "")
            assert row.lease_owner is None
    finally:
        app.close()


def test_json_feed_fields_of_the_wrong_type_are_read_as_absent() -> None:
    from monitor.sources.feeds import MAX_GUID, parse_feed

    doc = {"version": "https://jsonfeed.org/version/1.1", "items": [
        {"id": "x" * 600, "url": ["http://a.example/1", "http://b.example/1"], "title": {"zh": "标题"},
         "content_html": "<p>正文</p>", "date_published": 20230410},
        {"id": True, "url": "http://a.example/2", "title": "two", "content_text": ["not", "text"]},
        "not an item",
    ]}
    items = parse_feed(json.dumps(doc).encode(), {}, "http://a.example/feed.json")
    assert [(it.url, it.title, it.body, it.published) for it in items] == [
        (None, "", "<p>正文</p>", None), ("http://a.example/2", "two", "", None)]
    assert len(items[0].guid) == MAX_GUID and items[0].guid.startswith("x" * 400) and "#sha256:" in items[0].guid
    assert items[1].guid == "http://a.example/2"
    assert parse_feed(json.dumps({"version": "https://jsonfeed.org/version/1", "items": {"a": 1}}).encode(),
                      {}, "u") == []


# -- defect 6: extraction outside the write transaction, short transactions -------------------------
def test_extraction_runs_outside_the_write_transaction(sqlite_project: Project, http: HTTPServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import event

    from monitor.pipeline import BATCH, poll

    http.routes["/feed.xml"] = Route(rss(_items(60)))
    sqlite_project.write_config([{"name": "news", "url": http.url("/feed.xml")}])
    app = open_app(sqlite_project)
    path = sqlite_project.dir / "monitor.db"
    free: list[bool] = []
    real = app.extractor.extract

    def probe(article: Any) -> Any:
        """Another writer tries SQLite's write lock, without waiting, while the extractor works."""
        con = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("ROLLBACK")
            free.append(True)
        except sqlite3.OperationalError:
            free.append(False)
        finally:
            con.close()
        return real(article)

    monkeypatch.setattr(app.extractor, "extract", probe)
    commits: list[int] = []
    event.listen(app.engine, "commit", lambda conn: commits.append(1))
    try:
        outcome = poll(app, app.config.source("news"))
    finally:
        app.close()
    assert outcome.ok and outcome.new_entries == 60
    assert len(free) == 60 and all(free)
    assert len(commits) >= 60 // BATCH + 1   # written in short transactions, not one


# -- defect 7: bounded parsing, newest items kept ---------------------------------------------------
def test_documents_beyond_the_parse_bounds_are_refused_before_parsing() -> None:
    from monitor.sources import limits
    from monitor.sources.feeds import ParseError, parse_feed

    attrs = " ".join(f'a{i}="x"' for i in range(limits.MAX_ATTRIBUTES + 100))
    hostile = f'<?xml version="1.0"?><rss version="2.0"><channel><item {attrs}><title>t</title></item></channel></rss>'
    with pytest.raises(ParseError, match="refused to parse: a tag with 600 attributes"):
        parse_feed(hostile.encode(), {}, "u")
    many = "".join(f"<item><title>{i}</title></item>" for i in range(limits.MAX_FEED_ITEMS + 1))
    with pytest.raises(ParseError, match="refused to parse: 10001 items"):
        parse_feed(f'<rss version="2.0"><channel>{many}</channel></rss>'.encode(), {}, "u")
    assert limits.precheck(rss(_items(50))) is None


def test_a_poll_keeps_the_newest_items_and_says_so(sqlite_project: Project, http: HTTPServer) -> None:
    import random

    from monitor.pipeline import poll

    items = _items(12)
    random.Random(4).shuffle(items)
    http.routes["/feed.xml"] = Route(rss(items))
    sqlite_project.write_config([{"name": "news", "url": http.url("/feed.xml")}],
                                extra="")
    sqlite_project.config.write_text(sqlite_project.config.read_text().replace("[fetch]\n", "[fetch]\nmax_items = 5\n"))
    app = open_app(sqlite_project)
    try:
        outcome = poll(app, app.config.source("news"))
        assert outcome.ok and outcome.new_entries == 5
        assert outcome.warning == "kept the newest 5 of 12 items (fetch.max_items)"
        from monitor.store.repo import get_source, list_entries

        with app.sessions() as s:
            assert sorted(e.title for e in list_entries(s)) == sorted(f"第{i}条：抖音电商发布直播间商品链接新规"
                                                                     for i in range(7, 12))
            assert get_source(s, "news").last_warning == outcome.warning
    finally:
        app.close()


# -- defect 10: shorten fields, never the markup ----------------------------------------------------
def _change(title: str) -> Any:
    from monitor.store.models import Change, Entry, Mention, Source

    entry = Entry(title=title, url="http://news.example.org/a", published=datetime(2023, 4, 10, tzinfo=timezone.utc),
                  source=Source(name="news", kind="feed", url="http://x/"))
    change = Change(id=7, platform="douyin", targets=["pinduoduo"], action="ban", link_type="third_party_product",
                    effective_date=date(2023, 4, 15), evidence="抖音电商宣布4月15日起禁止发布拼多多商品链接。" * 50,
                    confidence=0.9, found_by="poll", status="active")
    change.mentions = [Mention(entry=entry)]
    return change


@pytest.mark.parametrize("fmt", ["html", "markdown", "text"])
def test_a_huge_title_is_shortened_and_the_markup_and_footer_survive(fmt: str) -> None:
    from monitor.extract.lexicon import load
    from monitor.notify.render import Renderer

    now = datetime(2023, 4, 10, tzinfo=timezone.utc)
    message = Renderer(load(None)).render("alert", "en", fmt, now, change=_change("T" * 1_000_000), budget=4096)
    body = message.body
    assert len(body) <= 4096 and body.endswith("Change #7")       # the footer is there
    assert "TTTTTTTTTT…" in body                                   # the title was shortened
    if fmt == "html":
        assert body.count("<a href=") == body.count("</a>") == 1
        assert body.count("<blockquote>") == body.count("</blockquote>") == 1
    if fmt == "markdown":
        assert "](http://news.example.org/a)" in body


def test_a_budget_smaller_than_any_message_keeps_whole_lines() -> None:
    from monitor.extract.lexicon import load
    from monitor.notify.render import Renderer

    body = Renderer(load(None)).render("alert", "en", "html", datetime(2023, 4, 10, tzinfo=timezone.utc),
                                       change=_change("title"), budget=120).body
    assert len(body) <= 120 and body.endswith("…") and body.count("<b>") == body.count("</b>")


# -- defect 11: nothing shown or sent carries control or bidi-override characters --------------------
def test_shown_and_sent_text_is_free_of_escapes_and_overrides() -> None:
    from monitor.notify.render import escape
    from monitor.output import render

    evil = "a\x1b]0;pwned\x07b\u202ec\r\nd\x9be"
    rows = [{"title": evil, "when": datetime(2023, 4, 10, 4, 5, 6, 789, tzinfo=timezone.utc)}]
    for fmt in ("table", "csv", "json"):
        out = render(rows, fmt, ["title", "when"], timezone(timedelta(hours=8)))
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out and "\x9b" not in out, fmt
        assert "\r" not in out
    csv_lines = render(rows, "csv", ["title", "when"], timezone(timedelta(hours=8))).splitlines()
    assert csv_lines[1] == "a]0;pwnedbc de,2023-04-10 12:05:06+08:00"
    assert json.loads(render(rows, "json", ["title"]))[0]["when"] == "2023-04-10T04:05:06Z"
    for fmt in ("text", "markdown", "html"):
        sent = escape(evil, fmt)
        assert "\x1b" not in sent and "\u202e" not in sent and "\r" not in sent


# -- defect 12 and the first hour: URLs and database URLs -------------------------------------------
def test_urls_are_shown_without_credentials_or_query_values() -> None:
    from monitor.sanitize import mask_url, mask_urls_in
    from monitor.store.db import DatabaseError, make_engine

    assert mask_url("https://bob:pw@feeds.example.org:8443/rss?token=abc&page=2#x") == \
        "https://***@feeds.example.org:8443/rss?token=***&page=***"
    assert mask_urls_in("HTTP 500 from http://u:p@h/x?k=v, retry") == "HTTP 500 from http://***@h/x?k=***, retry"
    for url, words in (("postgresql://admin:hunter2@db:port/monitor", "the port is not a number"),
                       ("postgresql//admin:hunter2@db/monitor", "cannot be parsed")):
        with pytest.raises(DatabaseError) as err:
            make_engine(url)
        assert err.value.usage and words in str(err.value) and "hunter2" not in str(err.value)


# -- defect 13: polls claimed by lease --------------------------------------------------------------
def test_a_poll_is_leased_to_one_worker_until_released_or_expired(database_url: str) -> None:
    from monitor.store import db, repo
    from monitor.store.models import Source

    engine = db.make_engine(database_url)
    db.upgrade(engine)
    sessions = db.session_factory(engine)
    now = datetime(2023, 4, 10, 12, tzinfo=timezone.utc)
    lease, interval = timedelta(minutes=2), timedelta(seconds=10)
    try:
        with sessions.begin() as s:
            s.add(Source(name="news", kind="feed", url="http://x/", status="never", failures=0, entries_seen=0))

        def claim(owner: str, at: datetime, due_by: datetime | None) -> bool:
            with sessions.begin() as s:
                return repo.claim_poll(s, "news", owner, at, lease, due_by)

        assert claim("a", now, now + timedelta(seconds=2))
        assert not claim("b", now + timedelta(seconds=1), now + timedelta(seconds=3))  # held by a
        assert not claim("b", now + timedelta(seconds=1), None)                       # even for `once`
        with sessions.begin() as s:
            repo.record_success(s, repo.get_source(s, "news"), now + timedelta(seconds=3), interval, None, None, 0,
                                owner="a")
        # released, but polled 3 s ago with a 10 s interval: a daemon's job firing early is not due
        assert not claim("b", now + timedelta(seconds=5), now + timedelta(seconds=7))
        assert claim("b", now + timedelta(seconds=12), now + timedelta(seconds=14))
        # b is killed mid-poll: its lease holds until it expires, then a takes the source
        assert not claim("a", now + timedelta(seconds=60), None)
        assert claim("a", now + timedelta(seconds=12) + lease, None)
        with sessions.begin() as s:  # b's late outcome does not release a's lease
            repo.record_failure(s, repo.get_source(s, "news"), now + lease + timedelta(seconds=13), "x", interval,
                                timedelta(hours=1), owner="b")
            assert repo.get_source(s, "news").lease_owner == "a"
    finally:
        engine.dispose()


def test_leases_of_killed_processes_on_this_machine_are_released_at_start(sqlite_project: Project) -> None:
    from monitor.store import repo
    from monitor.worker import dead_here, worker_id

    sqlite_project.write_config([{"name": "news", "url": "http://127.0.0.1:9/feed.xml"}])
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    mine = worker_id()
    dead = mine.rsplit("/", 2)[0] + f"/{int(gone.stdout)}/0000"
    assert dead_here(dead) and not dead_here(mine) and not dead_here("other-host/b/1/1/x")
    app = open_app(sqlite_project)
    try:
        with app.sessions.begin() as s:
            assert repo.claim_poll(s, "news", dead, datetime.now(timezone.utc), timedelta(hours=1))
        assert app.release_dead_leases() == 1
        with app.sessions() as s:
            assert repo.get_source(s, "news").lease_owner is None
    finally:
        app.close()


# -- the first hour, in process ---------------------------------------------------------------------
def test_a_postponement_moves_the_known_change_whatever_the_clock(project: Project, http: HTTPServer,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Real clock (no MONITOR_NOW): the 2023 reports are judged by their publication times."""
    from monitor.pipeline import poll
    from monitor.store.repo import list_changes

    monkeypatch.delenv("MONITOR_NOW", raising=False)
    moved = dict(KS_ITEM, title="快手推迟淘宝链接禁令", link="http://news.example.org/2023/04/moved.html",
                 published=datetime.fromisoformat("2023-04-12T03:00:00+00:00"),
                 body="<p>快手电商宣布，禁止在快手直播间发布淘宝商品链接的规定推迟至5月1日起执行。</p>")
    http.routes["/a.xml"] = Route(rss([KS_ITEM]))
    http.routes["/b.xml"] = Route(rss([moved, KS_ITEM]))   # newest first, as feeds list them
    project.write_config([{"name": "site-a", "url": http.url("/a.xml")}, {"name": "site-b", "url": http.url("/b.xml")}])
    app = open_app(project)
    try:
        assert poll(app, app.config.source("site-a")).ok
        assert poll(app, app.config.source("site-b")).ok
        with app.sessions() as s:
            [change] = list_changes(s)
            assert change.effective_date == date(2023, 5, 1)
            assert [(h.kind, h.old_value, h.new_value) for h in change.history] == \
                [("date_moved", "2023-04-20", "2023-05-01")]
    finally:
        app.close()
    # one feed holding both reports, newest first, on its first poll: the same single change
    project2 = Project(project.dir / "two", project.database_url.replace("monitor.db", "two.db"))
    if project.database_url.startswith("sqlite"):
        project2.dir.mkdir()
        project2.write_config([{"name": "site-b", "url": http.url("/b.xml")}])
        app = open_app(project2)
        try:
            assert poll(app, app.config.source("site-b")).ok
            with app.sessions() as s:
                [change] = list_changes(s)
                assert change.effective_date == date(2023, 5, 1)
        finally:
            app.close()


def test_extract_input_records_are_checked_with_their_line_numbers() -> None:
    from monitor.extract.records import RecordError, read_articles

    good = '{"id": "a", "title": "t", "body": "b", "published": null, "lang": "zh", "source": "x", "label": {}}'
    assert [a.id for a in read_articles([good])] == ["a"]
    for line, words in (('{"id": "a", "text": "b"}', "missing field 'body'; unknown field 'text'"),
                        ('{"title": "t", "body": "b"}', "missing field 'id'"),
                        ('{"id": "a", "body": ["b"]}', "body must be a string or null, not list")):
        with pytest.raises(RecordError, match=f"in.jsonl:2: {words}"):
            list(read_articles([good, line], "in.jsonl"))


def test_relative_sqlite_paths_are_read_against_the_config_folder(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.config import load

    monkeypatch.delenv("MONITOR_DATABASE_URL", raising=False)
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "monitor.toml"
    path.write_text('[storage]\nurl = "sqlite:///data/m.db?timeout=5"\n[[notify]]\nname = "m"\nurl = "${PM_UNSET_SECRET}"\n')
    monkeypatch.chdir(tmp_path)
    cfg = load(path, secrets=False)                       # reading needs no notifier secret
    assert cfg.database_url == f"sqlite:///{tmp_path / 'conf' / 'data' / 'm.db'}?timeout=5"
    monkeypatch.setenv("MONITOR_DATABASE_URL", "sqlite:///here.db")
    assert load(path, secrets=False).database_url == "sqlite:///here.db"   # the environment is the shell's


def test_html_mail_has_a_plain_part_without_stray_leading_spaces(smtp: Any) -> None:
    from monitor.extract.lexicon import load
    from monitor.notify import channels
    from monitor.notify.render import Renderer

    message = Renderer(load(None)).render("alert", "en", "html", datetime(2023, 4, 10, tzinfo=timezone.utc),
                                          change=_change("A title"))
    assert channels.send(smtp.url, message.title, message.body, "html").ok
    plain = smtp.messages[0].get_body(preferencelist=("plain",)).get_content()
    lines = [line for line in plain.splitlines() if line.strip()]
    assert lines[0].startswith("Platform:") and lines[-1] == "Change #7"
    assert [line for line in lines if line.startswith(" ") and not line.lstrip().startswith(">")] == []
