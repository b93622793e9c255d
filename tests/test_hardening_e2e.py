"""Issue 13, end to end: the CLI as a user runs it, against hostile and mislabelled sources on a real
HTTP server, a slow SMTP server and a JSON webhook on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from conftest import (
    DOUYIN_ITEM,
    POSTGRES_ONLY,
    HTTPServer,
    Project,
    Route,
    SlowSMTPServer,
    drip_headers,
    rss,
    wait_for,
)

NOW = "2023-04-10T12:00:00+08:00"
PUBLISHED = datetime.fromisoformat("2023-04-10T03:00:00+00:00")
ARTICLES = [  # (title, body): one change each, on four platforms
    ("快手宣布直播间禁止挂淘宝链接", "<p>快手电商宣布，4月20日起禁止在快手直播间发布淘宝商品链接。</p>"),
    ("小红书禁止笔记挂淘宝链接", "<p>小红书宣布，5月1日起禁止在小红书笔记中发布淘宝商品链接。</p>"),
    ("B站限制京东链接", "<p>哔哩哔哩宣布，4月25日起禁止在B站视频简介中发布京东商品链接。</p>"),
    ("微博禁止拼多多链接", "<p>微博宣布，4月28日起禁止在微博正文中发布拼多多商品链接。</p>"),
]


def hook(http: HTTPServer, path: str = "/hook") -> str:
    return f"json://127.0.0.1:{http.server.server_address[1]}{path}"


def posted(http: HTTPServer, path: str = "/hook") -> list[str]:
    return [f"{p.get('title', '')}\n{p.get('message', '')}" for p in http.posts.get(path, [])]


def json_feed(items: list[dict[str, Any]]) -> bytes:
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": items}).encode()


# -- defects 3 and 11, and the first poll ----------------------------------------------------------
def test_control_characters_escapes_and_old_news_on_a_first_poll(sqlite_project: Project, http: HTTPServer) -> None:
    vt = dict(id="vt", url="http://news.example.org/vt", title=DOUYIN_ITEM["title"],
              date_published="2023-04-10T02:00:00Z", content_html=DOUYIN_ITEM["body"].replace("。</p>", "。\x0b</p>", 1))
    old = dict(id="old", url="http://news.example.org/2022", title="快手断外链",
               date_published="2022-02-26T00:55:04Z",
               content_html="<p>快手电商宣布，3月1日起禁止在快手直播间发布淘宝、京东商品链接。</p>")
    evil = dict(id="evil", url="http://news.example.org/evil", date_published="2023-04-09T02:00:00Z",
                title="retitled\x1b]0;pwned\x07 \u202eevil\r\nline", content_text="nothing here")
    http.routes["/feed.json"] = Route(json_feed([vt, old, evil]), content_type="application/feed+json")
    sqlite_project.write_config([{"name": "news", "url": http.url("/feed.json")}],
                                [{"name": "chat", "url": hook(http), "format": "text", "lang": "en"}])
    proc = sqlite_project.run("once", now=NOW, check=0)
    changes = {c["platform"]: c for c in sqlite_project.json("changes")}
    assert set(changes) == {"douyin", "kuaishou"}                  # the \x0b article kept its change
    [msg] = posted(http)                                           # the 2022 change: recorded, not news
    assert "Douyin" in msg and "Kuaishou" not in msg
    assert "first poll: 3 entries recorded; 1 changes in them are older than extract.alert_window (30d)" in proc.stderr
    for args in (("entries",), ("entries", "--format", "json"), ("changes", "--format", "csv")):
        out = sqlite_project.run(*args, check=0).stdout
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out and "\r" not in out, args
    assert "retitled]0;pwned evil line" in sqlite_project.run("entries", check=0).stdout

    records = sqlite_project.dir / "in.jsonl"
    records.write_text(json.dumps({"id": "a", "title": vt["title"], "published": "2023-04-10T02:00:00+00:00",
                                   "lang": "zh", "body": vt["content_html"]}, ensure_ascii=False) + "\n")
    out = sqlite_project.run("extract", "--input", str(records), check=0).stdout
    assert json.loads(out)["changes"][0]["platform"] == "douyin"


# -- defect 4 --------------------------------------------------------------------------------------
@POSTGRES_ONLY  # a 600-character id overflowed only there; the list-valued url is tested in process too
def test_json_feed_of_wrong_types_does_not_stop_the_run(project: Project, http: HTTPServer) -> None:
    items = [{"id": "z" * 600, "url": ["http://a.example/1", "http://b.example/1"], "title": DOUYIN_ITEM["title"],
              "content_html": DOUYIN_ITEM["body"], "date_published": "2023-04-10T02:00:00Z"}]
    http.routes["/odd.json"] = Route(json_feed(items), content_type="application/feed+json")
    http.routes["/ok.xml"] = Route(rss([dict(DOUYIN_ITEM, link="http://c.example/2")]))
    project.write_config([{"name": "odd", "url": http.url("/odd.json")}, {"name": "ok", "url": http.url("/ok.xml")}])
    project.run("once", now=NOW, check=0)
    status = {s["name"]: s for s in project.json("sources")}
    assert status["odd"]["status"] == status["ok"]["status"] == "ok"
    assert status["odd"]["entries_seen"] == 1 and len(project.json("changes")) == 1


# -- defects 5 and 12 ------------------------------------------------------------------------------
def test_long_source_names_reach_operators_and_secrets_reach_no_one(project: Project, http: HTTPServer) -> None:
    name = "youtube-external-links-policy-" + "x" * 40        # 70 characters
    http.routes["/feed.xml"] = Route(b"down", status=500, content_type="text/plain")
    url = http.url("/feed.xml").replace("http://", "http://alice:s3cret@") + "?token=T0KEN&page=2"
    project.write_config([{"name": name, "url": url}],
                         [{"name": "oncall", "url": hook(http), "ops": True, "lang": "en"}],
                         extra='[ops]\nfailing_after = "1m"\n[display]\ntimezone = "Asia/Shanghai"\n')
    first = project.run("once", now=NOW)
    later = project.run("once", now="2023-04-10T12:05:00+08:00")
    assert first.returncode == later.returncode == 1
    [ops] = posted(http)
    assert name in ops and "HTTP 500" in ops
    assert "has failed since 2023-04-10 12:00 CST" in ops           # a readable time, in the display zone
    table = project.run("sources", check=0).stdout
    listing = project.run("sources", "--format", "json", check=0).stdout
    for text in (first.stderr, later.stderr, ops, table, listing):
        assert "s3cret" not in text and "T0KEN" not in text and "alice" not in text, text
    [src] = json.loads(listing)
    assert src["url"].endswith("/feed.xml?token=***&page=***") and "token=***" in src["last_error"]
    assert src["last_polled"] == "2023-04-10T04:05:00Z"
    assert "2023-04-10 12:05:00+08:00" in table                     # the table: local, to the second


# -- defect 8 --------------------------------------------------------------------------------------
def _gb_feed(title: str, body: str, prolog: str) -> bytes:
    from xml.sax.saxutils import escape

    doc = (f'<?xml version="1.0" encoding="{prolog}"?>' if prolog else '<?xml version="1.0"?>') + \
        f'<rss version="2.0"><channel><title>中文资讯</title><item><title>{escape(title)}</title>' \
        f"<link>http://news.example.org/{abs(hash(title))}</link><pubDate>Mon, 10 Apr 2023 03:00:00 GMT</pubDate>" \
        f"<description>{escape(body)}</description></item></channel></rss>"
    return doc.encode("gb18030")


def test_mislabelled_encodings_are_detected_and_mojibake_is_reported(sqlite_project: Project,
                                                                     http: HTTPServer) -> None:
    labels = [("application/rss+xml; charset=utf-8", ""), ("application/rss+xml; charset=iso-8859-1", ""),
              ("application/rss+xml; charset=big5", ""), ("application/rss+xml", "utf-8")]
    sources = []
    for i, ((title, body), (ctype, prolog)) in enumerate(zip(ARTICLES, labels)):
        http.routes[f"/{i}.xml"] = Route(_gb_feed(title, body, prolog), content_type=ctype)
        sources.append({"name": f"zh-{i}", "url": http.url(f"/{i}.xml"), "lang": "zh"})
    # GB18030 bytes read as latin-1 upstream and sent on as UTF-8: valid UTF-8, garbled past detection
    garbled = rss([dict(DOUYIN_ITEM, title=DOUYIN_ITEM["title"].encode("gb18030").decode("latin-1"),
                        body=DOUYIN_ITEM["body"].encode("gb18030").decode("latin-1"))])
    http.routes["/garbled.xml"] = Route(garbled)
    sources.append({"name": "garbled", "url": http.url("/garbled.xml")})
    sqlite_project.write_config(sources)
    proc = sqlite_project.run("once", now=NOW, check=0)
    assert {c["platform"] for c in sqlite_project.json("changes")} == {"kuaishou", "xiaohongshu", "bilibili", "weibo"}
    titles = {e["title"] for e in sqlite_project.json("entries")}
    assert {t for t, _b in ARTICLES} <= titles
    status = {s["name"]: s for s in sqlite_project.json("sources")}
    assert "looks garbled" in (status["garbled"]["warning"] or "")
    assert all(status[f"zh-{i}"]["warning"] is None for i in range(4))
    assert "warning: source garbled: the text looks garbled" in proc.stderr
    assert "looks garbled" in sqlite_project.run("sources", check=0).stdout


# -- defect 9 --------------------------------------------------------------------------------------
def test_a_slow_smtp_server_gets_one_copy_per_change(sqlite_project: Project, http: HTTPServer) -> None:
    smtp = SlowSMTPServer(delay=3)
    smtp.start()
    try:
        items = [dict(DOUYIN_ITEM, title=t, body=b, link=f"http://news.example.org/{i}", published=PUBLISHED)
                 for i, (t, b) in enumerate(ARTICLES[:3])]
        http.routes["/feed.xml"] = Route(rss(items))
        sqlite_project.write_config([{"name": "news", "url": http.url("/feed.xml")}],
                                    [{"name": "mail", "url": smtp.url, "reminders": False}])
        text = sqlite_project.config.read_text().replace("[delivery]\n", '[delivery]\ntimeout = "1s"\n')
        sqlite_project.config.write_text(text)
        first = sqlite_project.run("once", now=NOW, check=0)
        assert "may have been sent" in first.stderr and "deliveries retry" in first.stderr
        sqlite_project.run("once", now="2023-04-11T12:00:00+08:00", check=0)  # any retry would be due by now
        assert len(smtp.messages) == 3      # one per change (the server counts a message as it arrives)
        rows = sqlite_project.json("deliveries")
        # each tried once: "unknown" (may have gone out), or "sent" when the server answered late while
        # the process still ran; never "failed", retried and sent again, nor "dead"
        assert [d["attempts"] for d in rows] == [1, 1, 1]
        assert {d["status"] for d in rows} <= {"sent", "unknown"} and all(d["next_attempt"] is None for d in rows)
        unknown = [d for d in rows if d["status"] == "unknown"]
        assert unknown and "may have been sent" in unknown[0]["last_error"]  # the last: its process had ended
        # the operator decides: one retry sends one more copy
        sqlite_project.run("deliveries", "retry", str(unknown[0]["id"]), now="2023-04-11T12:00:30+08:00", check=0)
        sqlite_project.run("once", now="2023-04-11T12:01:00+08:00", check=0)
        assert len(smtp.messages) == 4
    finally:
        smtp.stop()


# -- the first hour: paths, secrets, exit codes, times, Ctrl-C ---------------------------------------
def test_commands_find_the_database_from_any_folder_and_read_without_secrets(tmp_path: Path,
                                                                            http: HTTPServer) -> None:
    home = tmp_path / "project"
    home.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    project = Project(home, "sqlite:///data/monitor.db", env={"OPS_MAIL_URL": hook(http)})
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))
    project.write_config([{"name": "news", "url": http.url("/feed.xml")}],
                         [{"name": "ops-mail", "url": "${OPS_MAIL_URL}"}],
                         extra='[display]\ntimezone = "Asia/Shanghai"\n')
    project.run("once", now=NOW, check=0)
    assert (home / "data" / "monitor.db").exists()
    away = Project(elsewhere, "", env={})                       # another folder, no notifier secret
    config = str(project.config)
    for args in (["changes"], ["history", "news"]):              # (sources, deliveries: below)
        proc = away.run(*args, "--config", config, check=0)
        assert "OPS_MAIL_URL" not in proc.stderr, args
    [src] = away.json("sources", "--config", config)
    assert src["status"] == "ok" and src["entries_seen"] == 1
    table = away.run("sources", "--config", config, check=0).stdout
    assert "2023-04-10 12:00:00+08:00" in table and "." not in table.split("2023-04-10 12:00:00")[1][:1]
    rows = away.json("deliveries", "--config", config)
    [sent] = [d for d in rows if d["kind"] == "alert"]
    assert sent["status"] == "sent" and sent["next_attempt"] is None
    assert all(d["next_attempt"] for d in rows if d["status"] == "pending")   # reminders still have theirs
    assert not (elsewhere / "data").exists()
    proc = away.run("once", "--config", config)                 # sending needs the secret
    assert proc.returncode == 2 and "OPS_MAIL_URL is not set" in proc.stderr

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "monitor.toml").write_text("")
    proc = Project(empty, "").run("sources", "--config", str(empty / "monitor.toml"))
    assert proc.returncode == 2 and "no database at" in proc.stderr
    assert list(empty.iterdir()) == [empty / "monitor.toml"]    # nothing created


def test_exit_codes_for_usage_and_configuration_errors(sqlite_project: Project, http: HTTPServer) -> None:
    sqlite_project.write_config([{"name": "news", "url": "http://127.0.0.1:9/feed.xml"}])
    sqlite_project.run("db", "upgrade", check=0)
    proc = sqlite_project.run("entries", "--source", "NOPE")
    assert proc.returncode == 2 and "no source named 'NOPE'" in proc.stderr
    proc = sqlite_project.run("extract", "--input", str(sqlite_project.dir / "missing.jsonl"))
    assert proc.returncode == 2 and "cannot read" in proc.stderr
    bad = sqlite_project.dir / "bad.jsonl"
    bad.write_text('{"id": "1", "body": "x"}\n{"id": "2", "text": "the body, misnamed"}\n')
    proc = sqlite_project.run("extract", "--input", str(bad))
    assert proc.returncode == 1 and "bad.jsonl:2: missing field 'body'; unknown field 'text'" in proc.stderr
    unlabeled = sqlite_project.dir / "corpus.jsonl"
    unlabeled.write_text('{"title": "t", "body": "b", "published": null, "lang": "en"}\n')
    proc = sqlite_project.run("eval", str(unlabeled))
    assert proc.returncode == 2 and "corpus.jsonl:1: missing field 'id'" in proc.stderr
    for url, words in (("postgresql://admin:hunter2@db:port/monitor", "the port is not a number"),
                       ("postgresql//admin:hunter2@db/monitor", "cannot be parsed")):
        other = Project(sqlite_project.dir / url.split(":")[0].replace("/", ""), url)
        other.dir.mkdir(exist_ok=True)
        other.write_config([{"name": "news", "url": "http://127.0.0.1:9/feed.xml"}])
        for command in (["sources"], ["once"]):
            proc = other.run(*command)
            assert proc.returncode == 2 and words in proc.stderr, (command, proc.stderr)
            assert "hunter2" not in proc.stderr and "Traceback" not in proc.stderr


def test_apprise_errors_are_printed_once(sqlite_project: Project, http: HTTPServer) -> None:
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))
    http.post_status["/hook"] = 503
    sqlite_project.write_config([{"name": "news", "url": http.url("/feed.xml")}], [{"name": "chat", "url": hook(http)}])
    proc = sqlite_project.run("once", now=NOW, check=0)
    assert proc.stderr.count("503") == 1, proc.stderr


def test_ctrl_c_stops_taking_work_and_twice_exits_now(sqlite_project: Project, http: HTTPServer) -> None:
    http.routes["/drip.xml"] = Route(handler=drip_headers)
    sqlite_project.write_config([{"name": f"drip-{i}", "url": http.url("/drip.xml")} for i in range(3)])
    text = sqlite_project.config.read_text().replace('timeout = "3s"', 'timeout = "300s"')
    sqlite_project.config.write_text(text + '\n[daemon]\nshutdown_grace = "60s"\n')
    proc = sqlite_project.popen("once")
    try:
        wait_for(lambda: http.hits.get("/drip.xml", 0) >= 1, timeout=60, proc=proc)
        proc.send_signal(signal.SIGINT)
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "interrupted: starting no more sources" in err and "interrupted again: exiting now" in err
    assert proc.returncode == 130
