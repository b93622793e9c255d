"""Issue 11, the poll loop: an unchanged cycle is recorded in batches (monitor.ledger) and claimed a
few dozen sources at a time (monitor.claims); what a user sees must be what it was (SQLite only: the
PostgreSQL path of these statements is the one bench/workers.py and the daemon tests run)."""

from __future__ import annotations

from conftest import DOUYIN_ITEM, HTTPServer, Project, Route, rss


def test_an_unchanged_cycle_records_every_source_and_frees_it(sqlite_project: Project, http: HTTPServer) -> None:
    n = 40  # more than one claim chunk (2 x fetch.workers) and one ledger batch per cycle
    for i in range(n):
        http.routes[f"/f{i}.xml"] = Route(rss([dict(DOUYIN_ITEM, link=f"http://news.example.org/{i}")]),
                                          etag=f'"v{i}"')
    sqlite_project.write_config([{"name": f"feed-{i}", "url": http.url(f"/f{i}.xml"), "interval": "15m"}
                                 for i in range(n)])
    sqlite_project.run("once", now="2023-04-10T00:00:00+00:00", check=0)
    for t in ("01:00", "02:00"):   # all 304; the second run finds every source free again
        proc = sqlite_project.run("once", now=f"2023-04-10T{t}:00+00:00", check=0)
        assert "skipped" not in proc.stderr, proc.stderr
    rows = sqlite_project.json("sources")
    assert len(rows) == n and {r["status"] for r in rows} == {"ok"}
    assert {r["last_polled"][:16] for r in rows} == {"2023-04-10T02:00"}
    assert {r["next_poll"][:16] for r in rows} == {"2023-04-10T02:15"}
    assert all(r["entries_seen"] == 1 for r in rows)
    assert sum(http.hits.values()) == 3 * n


def test_a_source_reported_failing_that_answers_304_is_reported_recovered(sqlite_project: Project,
                                                                           http: HTTPServer) -> None:
    body = rss([DOUYIN_ITEM])
    http.routes["/feed.xml"] = Route(body, etag='"v1"')
    http.routes["/other.xml"] = Route(body, etag='"v2"')
    hook = f"json://127.0.0.1:{http.server.server_address[1]}/hook"
    sqlite_project.write_config([{"name": "news", "url": http.url("/feed.xml"), "interval": "15m"},
                                 {"name": "other", "url": http.url("/other.xml"), "interval": "15m"}],
                                [{"name": "oncall", "url": hook, "ops": True, "lang": "en", "platforms": ["none"]}],
                                extra='[ops]\nfailing_after = "6h"\n')
    sqlite_project.run("once", now="2023-04-10T00:00:00+00:00", check=0)
    http.routes["/feed.xml"] = Route(b"down", status=500, content_type="text/plain")
    for t in ("01:00", "04:00", "07:30"):
        sqlite_project.run("once", now=f"2023-04-10T{t}:00+00:00")
    http.routes["/feed.xml"] = Route(body, etag='"v1"')   # back, unchanged: it answers 304
    sqlite_project.run("once", now="2023-04-10T09:00:00+00:00", check=0)
    ops = [f"{p.get('title', '')}\n{p.get('message', '')}" for p in http.posts.get("/hook", [])]
    assert len(ops) == 2 and "Source failing" in ops[0] and "Source recovered" in ops[1] and "news" in ops[1]
    rows = {r["name"]: r for r in sqlite_project.json("sources")}
    assert rows["news"]["status"] == "ok" and rows["news"]["last_error"] is None
    assert rows["other"]["status"] == "ok" and rows["other"]["last_polled"][:16] == "2023-04-10T09:00"
