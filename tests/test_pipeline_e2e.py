"""Acceptance of the foundation: a feed on a real HTTP server, the CLI as a user runs it, a real
SMTP server receiving the alert, on SQLite and on PostgreSQL."""

from __future__ import annotations



from conftest import DOUYIN_ITEM, HTTPServer, Project, Route, SMTPServer, load_seed, rss


def seed_item(shared) -> dict:  # type: ignore[no-untyped-def]
    seed = load_seed(shared)
    return {"title": seed["title"], "link": "https://www.cnbeta.com/articles/tech/1241234.htm",
            "published": seed["published"], "body": seed["body"]}


def test_seed_article_from_feed_to_one_email(project: Project, http: HTTPServer, smtp: SMTPServer, shared) -> None:
    http.routes["/feed.xml"] = Route(rss([seed_item(shared)]))
    project.write_config([{"name": "cnbeta", "url": http.url("/feed.xml"), "lang": "zh"}],
                         [{"name": "ops-mail", "url": smtp.url}])

    project.run("once", now="2022-02-26T10:00:00+08:00", check=0)

    assert len(smtp.messages) == 1
    text = smtp.texts()[0]
    assert "快手" in text or "kuaishou" in text.lower()
    for word in ("淘宝", "京东", "2022-03-01", "还有 3 天", "直播电商断外链可取吗", "3月1日起",
                 'href="https://www.cnbeta.com/articles/tech/1241234.htm"'):
        assert word in text, word
    [change] = project.json("changes")
    assert (change["platform"], change["action"], change["link_type"]) == ("kuaishou", "ban", "affiliate")
    assert sorted(change["targets"]) == ["jd", "taobao"]
    assert change["effective_date"] == "2022-03-01"
    assert "3月1日起" in change["evidence"]
    assert [s["title"] for s in change["sources"]] == ["直播电商断外链可取吗？"]
    assert change["sources"][0]["url"].startswith("https://www.cnbeta.com/")

    # A second pass finds nothing new and sends nothing.
    project.run("once", now="2022-02-26T10:20:00+08:00", check=0)
    assert len(smtp.messages) == 1
    assert len(project.json("changes")) == 1
    deliveries = project.json("deliveries")
    [alert] = [d for d in deliveries if d["kind"] == "alert"]
    assert (alert["status"], alert["attempts"]) == ("sent", 1)
    # Reminders one day before and on the day; the one a week before had passed when it was found.
    assert sorted((d["kind"], d["status"]) for d in deliveries if d["kind"] != "alert") == \
        [("reminder", "pending"), ("reminder", "pending")]


def test_same_change_from_two_sources_is_one_change_with_two_mentions(
        project: Project, http: HTTPServer, smtp: SMTPServer) -> None:
    second = dict(DOUYIN_ITEM, title="抖音将切断拼多多链接", link="http://other.example.com/a/1",
                  body="<p>据报道，抖音电商宣布4月15日起禁止在抖音直播间发布拼多多商品链接。</p>")
    http.routes["/a.xml"] = Route(rss([DOUYIN_ITEM]))
    http.routes["/b.xml"] = Route(rss([DOUYIN_ITEM]))  # the same article under a second source
    http.routes["/c.xml"] = Route(rss([second]))       # a second article about the same change
    project.write_config([{"name": "site-a", "url": http.url("/a.xml")},
                          {"name": "site-b", "url": http.url("/b.xml")},
                          {"name": "site-c", "url": http.url("/c.xml")}],
                         [{"name": "ops-mail", "url": smtp.url}])

    project.run("once", now="2023-04-10T12:00:00+08:00", check=0)

    [change] = project.json("changes")
    assert change["platform"] == "douyin" and change["effective_date"] == "2023-04-15"
    assert sorted(s["source"] for s in change["sources"]) == ["site-a", "site-b", "site-c"]
    assert len(smtp.messages) == 1
    text = smtp.texts()[0]
    assert "抖音将切断拼多多链接" in text and "site-b" in text  # every source listed in the one alert
    entries = project.json("entries")
    assert len(entries) == 3 and all(e["changes"] == 1 for e in entries)


def test_smtp_down_then_up_delivers_exactly_once(project: Project, http: HTTPServer) -> None:
    smtp = SMTPServer()  # not started: nothing listens on its port
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))
    project.write_config([{"name": "news", "url": http.url("/feed.xml")}], [{"name": "ops-mail", "url": smtp.url}])

    first = project.run("once", now="2023-04-10T12:00:00+08:00")
    assert first.returncode == 0, first.stderr  # the source was fine; the delivery is retried later
    assert "ops-mail" in first.stderr
    [change] = project.json("changes")
    [d] = [d for d in project.json("deliveries") if d["kind"] == "alert"]
    assert (d["status"], d["attempts"]) == ("failed", 1) and d["last_error"]

    # Before the backoff has passed nothing is attempted, even with the server up.
    smtp.start()
    try:
        project.run("once", now="2023-04-10T12:00:30+08:00", check=0)
        assert smtp.messages == []
        project.run("once", now="2023-04-10T12:02:00+08:00", check=0)
        assert len(smtp.messages) == 1
        project.run("once", now="2023-04-10T13:00:00+08:00", check=0)
        assert len(smtp.messages) == 1
        [d] = [d for d in project.json("deliveries") if d["kind"] == "alert"]
        assert (d["status"], d["attempts"], d["change_id"]) == ("sent", 2, change["id"])
    finally:
        smtp.stop()


def test_failing_sources_are_recorded_and_healthy_ones_processed(project: Project, http: HTTPServer,
                                                                 smtp: SMTPServer) -> None:
    http.routes["/ok.xml"] = Route(rss([DOUYIN_ITEM]))
    http.routes["/500.xml"] = Route(b"oops", status=500, content_type="text/plain")
    http.routes["/hang.xml"] = Route(rss([DOUYIN_ITEM]), delay=6)
    http.routes["/garbage.xml"] = Route(b"\x00\xff<<<not a feed at all>>>" * 20, content_type="text/html")
    project.write_config([{"name": "broken", "url": http.url("/500.xml")},
                          {"name": "slow", "url": http.url("/hang.xml"), "timeout": "1s"},
                          {"name": "garbage", "url": http.url("/garbage.xml")},
                          {"name": "healthy", "url": http.url("/ok.xml")}],
                         [{"name": "ops-mail", "url": smtp.url}])

    proc = project.run("once", now="2023-04-10T12:00:00+08:00")

    assert proc.returncode == 1
    assert "source broken: HTTP 500" in proc.stderr
    assert "source slow: timed out" in proc.stderr
    assert "source garbage: not a feed" in proc.stderr
    status = {s["name"]: s for s in project.json("sources")}
    assert status["healthy"]["status"] == "ok" and status["healthy"]["entries_seen"] == 1
    for name in ("broken", "slow", "garbage"):
        assert status[name]["status"] == "failing" and status[name]["last_error"], name
    assert "HTTP 500" in status["broken"]["last_error"]
    assert len(project.json("changes")) == 1 and len(smtp.messages) == 1
    table = project.run("sources", check=0).stdout
    assert "failing" in table and "healthy" in table


def test_conditional_get_skips_unchanged_feed(project: Project, http: HTTPServer) -> None:
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]), etag='"v1"')
    project.write_config([{"name": "news", "url": http.url("/feed.xml")}])
    project.run("once", check=0)
    proc = project.run("once", check=0)
    assert "not modified" in proc.stderr
    assert http.hits["/feed.xml"] == 2
    [s] = project.json("sources")
    assert s["status"] == "ok" and s["entries_seen"] == 1


def test_changes_filters_and_formats(project: Project, http: HTTPServer, shared) -> None:
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM, seed_item(shared)]))
    project.write_config([{"name": "news", "url": http.url("/feed.xml")}])
    project.run("once", check=0)
    assert {c["platform"] for c in project.json("changes")} == {"douyin", "kuaishou"}
    assert [c["platform"] for c in project.json("changes", "--platform", "kuaishou")] == ["kuaishou"]
    assert [c["platform"] for c in project.json("changes", "--target", "pinduoduo")] == ["douyin"]
    assert [c["platform"] for c in project.json("changes", "--effective-from", "2023-01-01")] == ["douyin"]
    assert [c["platform"] for c in project.json("changes", "--effective-to", "2022-12-31")] == ["kuaishou"]
    assert project.json("changes", "--action", "allow") == []
    csv_out = project.run("changes", "--format", "csv", check=0).stdout.splitlines()
    assert csv_out[0].startswith("id,platform,action,targets") and len(csv_out) == 3
    table = project.run("changes", check=0).stdout
    assert "kuaishou" in table and "douyin" in table
    bad = project.run("changes", "--since", "yesterday")
    assert bad.returncode == 2 and "not a date" in bad.stderr
