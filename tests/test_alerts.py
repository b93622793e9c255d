"""Alerts people act on: routing, reminders, updates, retries and dead letters, operator messages,
digests and inert article text, against a real SMTP server and a real JSON webhook on loopback."""

from __future__ import annotations

import json
from datetime import datetime

from conftest import DOUYIN_ITEM, HTTPServer, Project, Route, SMTPServer, rss

# The Douyin item is published 2023-04-10 and takes effect 2023-04-15 (Asia/Shanghai).
KS_ITEM = {
    "title": "快手宣布直播间禁止挂淘宝链接",
    "link": "http://news.example.org/2023/04/kuaishou.html",
    "published": datetime.fromisoformat("2023-04-10T03:00:00+00:00"),
    "body": "<p>快手电商宣布，4月20日起禁止在快手直播间发布淘宝商品链接。</p>",
}
YT_ITEM = {
    "title": "YouTube will make links in Shorts descriptions unclickable",
    "link": "http://news.example.org/2023/08/shorts.html",
    "published": datetime.fromisoformat("2023-08-09T15:00:00+00:00"),
    "body": "<p>YouTube announced that starting August 31, links in Shorts descriptions will no longer be "
            "clickable.</p>",
}


def hook(http: HTTPServer, path: str = "/hook", fmt: str | None = None) -> str:
    url = f"json://127.0.0.1:{http.server.server_address[1]}{path}"
    return url


def messages(http: HTTPServer, path: str = "/hook") -> list[str]:
    return [f"{p.get('title', '')}\n{p.get('message', '')}" for p in http.posts.get(path, [])]


def test_two_notifiers_receive_exactly_what_they_asked_for(project: Project, http: HTTPServer,
                                                          smtp: SMTPServer) -> None:
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM, KS_ITEM, YT_ITEM]))
    project.write_config([{"name": "news", "url": http.url("/feed.xml")}], [
        {"name": "cn-ecom", "url": smtp.url, "platforms": ["douyin", "kuaishou"], "targets": ["taobao"]},
        {"name": "global", "url": hook(http), "lang": "en", "platforms": ["youtube", "douyin"],
         "actions": ["ban"]},
    ], extra='[extract]\nalert_window = "365d"\n')  # April's changes are news on this first poll in August
    project.run("once", now="2023-08-10T10:00:00+08:00", check=0)
    assert len(project.json("changes")) == 3
    mails = smtp.texts()
    assert len(mails) == 1 and "快手" in mails[0] and "淘宝" in mails[0]      # taobao target only
    hooks = messages(http)
    assert len(hooks) == 2
    assert any("YouTube" in m and "2023-08-31" in m for m in hooks)
    assert any("Douyin" in m and "Pinduoduo" in m for m in hooks)
    assert all("Kuaishou" not in m for m in hooks)
    # English template for the English notifier
    assert any("Effective: 2023-08-31" in m for m in hooks)


def test_alert_then_reminders_one_day_before_and_on_the_day(project: Project, http: HTTPServer) -> None:
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))  # effective 2023-04-15
    project.write_config([{"name": "news", "url": http.url("/feed.xml")}],
                         [{"name": "ops", "url": hook(http), "lang": "en"}],
                         extra='[reminders]\noffsets = ["7d", "1d", "0d"]\nat = "09:00"\n')
    project.run("once", now="2023-04-12T12:00:00+08:00", check=0)        # 3 days before
    assert [m.splitlines()[0] for m in messages(http)] == \
        ["[link policy] Douyin (抖音) bans third-party product links of Pinduoduo (拼多多) (2023-04-15)"]
    project.run("once", now="2023-04-13T12:00:00+08:00", check=0)
    assert len(messages(http)) == 1
    project.run("once", now="2023-04-14T09:05:00+08:00", check=0)        # a restart each time
    assert len(messages(http)) == 2 and "takes effect in 1 day." in messages(http)[1]
    project.run("once", now="2023-04-14T18:00:00+08:00", check=0)
    assert len(messages(http)) == 2
    project.run("once", now="2023-04-15T09:30:00+08:00", check=0)
    assert len(messages(http)) == 3 and "takes effect today." in messages(http)[2]
    project.run("once", now="2023-04-16T09:30:00+08:00", check=0)
    assert len(messages(http)) == 3
    kinds = sorted((d["kind"], d["status"]) for d in project.json("deliveries"))
    assert kinds == [("alert", "sent"), ("reminder", "sent"), ("reminder", "sent")]


def test_date_moved_then_reversed(project: Project, http: HTTPServer) -> None:
    http.routes["/a.xml"] = Route(rss([KS_ITEM]))  # 2023-04-20
    project.write_config([{"name": "site-a", "url": http.url("/a.xml")}],
                         [{"name": "ops", "url": hook(http), "lang": "zh"}])
    project.run("once", now="2023-04-10T12:00:00+08:00", check=0)
    assert len(messages(http)) == 1
    reminders = [d for d in project.json("deliveries") if d["kind"] == "reminder"]
    assert len(reminders) == 3 and all(d["status"] == "pending" for d in reminders)

    moved = dict(KS_ITEM, title="快手推迟淘宝链接禁令", link="http://news.example.org/2023/04/moved.html",
                 published=datetime.fromisoformat("2023-04-12T03:00:00+00:00"),
                 body="<p>快手电商宣布，禁止在快手直播间发布淘宝商品链接的规定推迟至5月1日起执行。</p>")
    http.routes["/a.xml"] = Route(rss([KS_ITEM, moved]))
    project.run("once", now="2023-04-12T12:00:00+08:00", check=0)
    [change] = project.json("changes")
    assert change["effective_date"] == "2023-05-01" and len(change["sources"]) == 2
    msgs = messages(http)
    assert len(msgs) == 2 and "【更新】" in msgs[1] and "2023-04-20" in msgs[1] and "2023-05-01" in msgs[1]
    by_status: dict[str, int] = {}
    for d in project.json("deliveries"):
        if d["kind"] == "reminder":
            by_status[d["status"]] = by_status.get(d["status"], 0) + 1
    assert by_status == {"cancelled": 3, "pending": 3}

    assert [(h["what"], h["old"], h["new"]) for h in change["history"]] == [("date_moved", "2023-04-20", "2023-05-01")]

    reversed_ = dict(KS_ITEM, title="快手恢复淘宝链接", link="http://news.example.org/2023/04/reversed.html",
                     published=datetime.fromisoformat("2023-04-14T03:00:00+00:00"),
                     body="<p>快手电商宣布撤回此前规定，即日起恢复允许在快手直播间发布淘宝商品链接。</p>")
    http.routes["/a.xml"] = Route(rss([KS_ITEM, moved, reversed_]))
    project.run("once", now="2023-04-14T12:00:00+08:00", check=0)
    [change] = project.json("changes")
    assert change["status"] == "reversed" and [h["what"] for h in change["history"]] == ["date_moved", "reversed"]
    msgs = messages(http)
    assert len(msgs) == 3 and "撤回" in msgs[2]
    assert all(d["status"] == "cancelled" for d in project.json("deliveries") if d["kind"] == "reminder")
    project.run("once", now="2023-05-01T12:00:00+08:00", check=0)  # nothing more, not even on the old dates
    assert len(messages(http)) == 3


def test_down_notifier_backs_off_others_on_time_then_dead_and_retry(project: Project, http: HTTPServer,
                                                                   smtp: SMTPServer) -> None:
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))
    http.post_status["/hook"] = 503
    project.write_config([{"name": "news", "url": http.url("/feed.xml")}],
                         [{"name": "mail", "url": smtp.url}, {"name": "chat", "url": hook(http)}])
    project.run("once", now="2023-04-10T12:00:00+08:00", check=0)
    assert len(smtp.messages) == 1 and messages(http) == []             # mail on time, chat failed
    [chat] = [d for d in project.json("deliveries") if d["notifier"] == "chat" and d["kind"] == "alert"]
    assert chat["status"] == "failed" and chat["attempts"] == 1
    # backoff 1m, 2m, 4m with max_attempts = 4 (conftest): the 4th failure makes it dead
    for minute in ("12:01:30", "12:04:00", "12:09:00"):
        project.run("once", now=f"2023-04-10T{minute}+08:00", check=0)
    [chat] = [d for d in project.json("deliveries") if d["notifier"] == "chat" and d["kind"] == "alert"]
    assert chat["status"] == "dead" and chat["attempts"] == 4 and "503" in (chat["last_error"] or "")
    assert "dead" in project.run("deliveries", "--status", "dead", check=0).stdout
    http.post_status["/hook"] = 200
    project.run("once", now="2023-04-10T13:00:00+08:00", check=0)
    assert messages(http) == []                                           # dead stays dead…
    out = project.run("deliveries", "retry", "--all-dead", now="2023-04-10T13:00:00+08:00", check=0).stdout
    assert "1 delivery queued again" in out
    project.run("once", now="2023-04-10T13:00:10+08:00", check=0)
    assert len(messages(http)) == 1 and len(smtp.messages) == 1           # …until retried, then once


def test_hung_channel_is_cut_off_and_does_not_delay_the_other(sqlite_project: Project, http: HTTPServer,
                                                              smtp: SMTPServer) -> None:
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))
    http.post_delay["/slow"] = 8
    sqlite_project.write_config([{"name": "news", "url": http.url("/feed.xml")}],
                                [{"name": "slow", "url": hook(http, "/slow") + "?rto=30"},
                                 {"name": "mail", "url": smtp.url}],
                                extra='[daemon]\n')
    text = sqlite_project.config.read_text().replace('[delivery]\n', '[delivery]\ntimeout = "2s"\n')
    sqlite_project.config.write_text(text)
    proc = sqlite_project.run("once", now="2023-04-10T12:00:00+08:00", check=0)
    assert len(smtp.messages) == 1
    [slow] = [d for d in sqlite_project.json("deliveries") if d["notifier"] == "slow" and d["kind"] == "alert"]
    # it may have reached the hook after all: unknown, never retried on its own (no second copy)
    assert slow["status"] == "unknown" and "may have been sent" in slow["last_error"]
    assert "may have been sent" in proc.stderr and "deliveries retry" in proc.stderr


def test_hostile_title_arrives_inert_in_every_format(sqlite_project: Project, http: HTTPServer,
                                                     smtp: SMTPServer) -> None:
    evil = dict(DOUYIN_ITEM, title='<img src=x onerror=alert(1)> **boom** [click](http://evil.example/) @all <!channel>')
    http.routes["/feed.xml"] = Route(rss([evil]))
    sqlite_project.write_config([{"name": "news", "url": http.url("/feed.xml")}], [
        {"name": "md", "url": hook(http, "/md"), "format": "markdown", "lang": "en"},
        {"name": "html", "url": hook(http, "/html"), "format": "html", "lang": "en"},
        {"name": "text", "url": hook(http, "/text"), "format": "text", "lang": "en"},
        {"name": "mail", "url": smtp.url, "lang": "en"},
    ])
    sqlite_project.run("once", now="2023-04-10T12:00:00+08:00", check=0)
    md, = messages(http, "/md")
    assert "\\[click\\]\\(http://evil\\.example/\\)" in md and "\\*\\*boom\\*\\*" in md
    assert "](http://evil" not in md and "<img" not in md.replace("\\<img", "")  # only escaped
    html_msg, = messages(http, "/html")
    assert "&lt;img src=x onerror=alert(1)&gt;" in html_msg and "<img" not in html_msg
    import re

    assert re.findall(r'href="([^"]*)"', html_msg) == [DOUYIN_ITEM["link"]]   # no link but the article's
    text_msg, = messages(http, "/text")
    for m in (md, html_msg, text_msg, smtp.texts()[0]):
        assert "@all" not in m and "@\u200ball" in m
        assert "<!channel>" not in m
    mail_html = smtp.messages[0].get_body(preferencelist=("html",)).get_content()
    assert "<img" not in mail_html and "&lt;img src=x" in mail_html   # the plain part is plain text: inert


def test_source_failing_for_hours_tells_operators_once_and_once_on_recovery(sqlite_project: Project,
                                                                            http: HTTPServer) -> None:
    http.routes["/feed.xml"] = Route(b"down", status=500, content_type="text/plain")
    sqlite_project.write_config([{"name": "news", "url": http.url("/feed.xml"), "interval": "15m"}],
                                [{"name": "oncall", "url": hook(http), "ops": True, "lang": "en"},
                                 {"name": "users", "url": hook(http, "/users")}],
                                extra='[ops]\nfailing_after = "6h"\n')
    for t in ("00:00", "03:00", "06:30", "07:00", "09:00"):
        sqlite_project.run("once", now=f"2023-04-10T{t}:00+00:00")
    msgs = [m for m in messages(http) if m.startswith("[ops]")]
    assert len(msgs) == 1 and "Source failing" in msgs[0] and "HTTP 500" in msgs[0] and "news" in msgs[0]
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))
    sqlite_project.run("once", now="2023-04-10T10:00:00+00:00", check=0)
    sqlite_project.run("once", now="2023-04-10T11:00:00+00:00", check=0)
    msgs = [m for m in messages(http) if m.startswith("[ops]")]
    assert len(msgs) == 2 and "Source recovered" in msgs[1]
    assert all("Source" not in m for m in messages(http, "/users"))   # ops messages go to ops notifiers only


def test_digest_batches_changes_into_one_message(sqlite_project: Project, http: HTTPServer) -> None:
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM, KS_ITEM]))
    sqlite_project.write_config([{"name": "news", "url": http.url("/feed.xml")}],
                                [{"name": "daily", "url": hook(http), "digest": "1d", "lang": "en",
                                  "reminders": False}])
    sqlite_project.run("once", now="2023-04-10T12:00:00+08:00", check=0)
    assert messages(http) == []                                           # waits for the end of the day (UTC)
    sqlite_project.run("once", now="2023-04-11T00:00:05+00:00", check=0)
    [digest] = messages(http)
    assert "Digest: 2 items" in digest and "Douyin" in digest and "Kuaishou" in digest
    sqlite_project.run("once", now="2023-04-12T00:00:05+00:00", check=0)
    assert len(messages(http)) == 1


def test_secrets_never_printed(sqlite_project: Project, http: HTTPServer) -> None:
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))
    secret_url = "mailto://alice:S3cretPassw0rd@127.0.0.1:9?from=a@example.org&to=b@example.org&mode=insecure"
    sqlite_project.env["PM_MAIL"] = secret_url
    sqlite_project.config.parent.mkdir(exist_ok=True)
    sqlite_project.write_config([{"name": "news", "url": http.url("/feed.xml")}],
                                [{"name": "mail", "url": "${PM_MAIL}"}])
    outputs = [sqlite_project.run("once", "-v", now="2023-04-10T12:00:00+08:00"),
               sqlite_project.run("deliveries"), sqlite_project.run("notify", "test")]
    for proc in outputs:
        assert "S3cretPassw0rd" not in proc.stdout + proc.stderr
    assert "alice:****@" in outputs[2].stdout and "FAILED" in outputs[2].stdout


def test_notify_test_sends_a_sample_from_a_stored_change(sqlite_project: Project, http: HTTPServer) -> None:
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))
    sqlite_project.write_config([{"name": "news", "url": http.url("/feed.xml")}],
                                [{"name": "chat", "url": hook(http), "lang": "en", "platforms": ["youtube"]}])
    sqlite_project.run("once", now="2023-04-10T12:00:00+08:00", check=0)
    assert messages(http) == []                                            # filtered out as an alert
    out = sqlite_project.run("notify", "test", "chat", check=0).stdout
    assert out.startswith("chat: ok")
    [msg] = messages(http)
    assert "This is a test" in msg and "Pinduoduo" in msg and json.dumps("x")


def test_reextract_finds_changes_silently_updates_and_alerts_only_recent(sqlite_project: Project,
                                                                         http: HTTPServer) -> None:
    import re

    from monitor.extract.lexicon import BUILTIN

    weak = re.sub(r'"无法", |"下架", |"禁止", ', "", BUILTIN.read_text(encoding="utf-8"))
    (sqlite_project.dir / "weak.toml").write_text(weak, encoding="utf-8")
    old_item = dict(KS_ITEM, title="快手禁止淘宝链接（旧闻）", link="http://news.example.org/2021/old.html",
                    published=datetime.fromisoformat("2021-01-05T03:00:00+00:00"),
                    body="<p>快手电商宣布，1月10日起无法在快手直播间发布淘宝商品链接。</p>")
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM, old_item]))
    sqlite_project.write_config([{"name": "news", "url": http.url("/feed.xml")}],
                                [{"name": "chat", "url": hook(http), "lang": "en"}],
                                extra='[extract]\nlexicon = "weak.toml"\n')
    sqlite_project.run("once", now="2023-04-10T12:00:00+08:00", check=0)
    assert sqlite_project.json("changes") == [] and messages(http) == []

    sqlite_project.config.write_text(sqlite_project.config.read_text().replace('lexicon = "weak.toml"\n', ""))
    out = sqlite_project.run("reextract", now="2023-04-10T12:05:00+08:00", check=0)
    assert "2 entries re-extracted: 2 report a change; 2 new changes" in out.stdout
    assert "re-extracted 2/2 entries" in out.stderr
    sqlite_project.run("once", now="2023-04-10T12:06:00+08:00", check=0)
    [msg] = messages(http)                         # the 2021 change is recorded but is not news
    assert "Douyin" in msg and "found on re-extraction" in msg
    assert {c["platform"] for c in sqlite_project.json("changes")} == {"douyin", "kuaishou"}

    again = sqlite_project.run("reextract", now="2023-04-10T12:10:00+08:00", check=0)
    assert "0 new changes, 0 new mentions" in again.stdout
    sqlite_project.run("once", now="2023-04-10T12:11:00+08:00", check=0)
    assert len(messages(http)) == 1                # an extractor re-run is not news


def test_reextract_withdraws_a_change_the_extractor_no_longer_finds(project: Project, http: HTTPServer) -> None:
    """An extractor upgrade that fixes a false alert: the entry stops counting for the change, the
    change is withdrawn (kept, with its history) and its unsent alert is cancelled, silently."""
    import re

    from monitor.extract.lexicon import BUILTIN

    weak = re.sub(r'"无法", |"下架", |"禁止", ', "", BUILTIN.read_text(encoding="utf-8"))
    (project.dir / "weak.toml").write_text(weak, encoding="utf-8")
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM, KS_ITEM]))
    project.write_config([{"name": "news", "url": http.url("/feed.xml")}],
                         [{"name": "chat", "url": hook(http), "lang": "en", "reminders": False}])
    project.run("once", "--no-deliver", now="2023-04-10T12:00:00+08:00", check=0)
    assert {c["platform"] for c in project.json("changes")} == {"douyin", "kuaishou"}

    project.config.write_text(project.config.read_text() + '\n[extract]\nlexicon = "weak.toml"\n')
    out = project.run("reextract", now="2023-04-10T12:05:00+08:00", check=0)
    assert "2 mentions no longer found, 2 changes withdrawn" in out.stdout
    assert project.json("changes") == []
    withdrawn = project.json("changes", "--status", "withdrawn")
    assert {c["platform"] for c in withdrawn} == {"douyin", "kuaishou"}
    assert all(c["history"][-1]["what"] == "withdrawn" and c["sources"] == [] for c in withdrawn)
    assert {d["status"] for d in project.json("deliveries")} == {"cancelled"}
    project.run("once", now="2023-04-10T12:06:00+08:00", check=0)
    assert messages(http) == []                    # nothing was sent, not even about the withdrawal

    # the fixed extractor back: a new report is a new change, and it is news again
    project.config.write_text(project.config.read_text().replace('lexicon = "weak.toml"\n', ""))
    project.run("reextract", now="2023-04-10T12:10:00+08:00", check=0)
    assert {c["platform"] for c in project.json("changes")} == {"douyin", "kuaishou"}
    assert len(project.json("changes", "--status", "withdrawn")) == 2
