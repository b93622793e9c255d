"""HTML sources on a real local server: announcement list pages (followed to each article), watched
policy pages with versions and diffs, charset handling, and servers that misbehave."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler

from conftest import HTTPServer, Project, Route, rss, wait_for

LIST_V1 = """<html><head><meta charset="utf-8"><title>规则公告</title></head><body>
<nav><ul><li><a href="/">首页</a></li><li><a href="/rules">规则中心</a></li></ul></nav>
<div class="notice-list"><ul>
  <li><a href="/notice/101">关于调整直播间商品展示规范的公告</a><span class="date">2023-04-01</span></li>
  <li><a href="/notice/100">关于优化商家客服考核的通知</a><span class="date">2023-03-20</span></li>
</ul></div>
<footer>Copyright 示例平台</footer></body></html>"""

LIST_V2 = LIST_V1.replace('<li><a href="/notice/101">', '<li><a href="/notice/102">关于禁止在直播间发布第三方平台'
                          '商品链接的公告</a><span class="date">2023-04-10</span></li>\n  <li><a href="/notice/101">')

ARTICLE = """<html><head><meta charset="utf-8"><title>关于禁止在直播间发布第三方平台商品链接的公告</title>
<meta property="article:published_time" content="2023-04-10T10:00:00+08:00"></head><body>
<nav><a href="/">首页</a> <a href="/rules">规则中心</a></nav>
<article><h1>关于禁止在直播间发布第三方平台商品链接的公告</h1>
<p>为保障消费者权益，平台对直播间商品链接管理规范进行调整。</p>
<p>自2023年5月1日起，商家不得在直播间购物车发布淘宝、京东等第三方平台的商品链接，已发布的链接将被下架。</p>
<p>请各位商家提前做好准备。</p></article>
<aside class="related"><h3>相关文章</h3><ul><li><a href="/notice/99">快手宣布恢复外链</a></li></ul></aside>
<footer>Copyright 示例平台</footer></body></html>"""


def html_route(text: str, charset: str = "utf-8", declare: bool = True) -> Route:
    ctype = f"text/html; charset={charset}" if declare else "text/html"
    return Route(text.encode(charset), content_type=ctype)


def test_list_page_gains_one_item_followed_and_extracted(sqlite_project: Project, http: HTTPServer) -> None:
    http.routes["/list"] = html_route(LIST_V1)
    http.routes["/notice/102"] = html_route(ARTICLE)
    sqlite_project.write_config([{"name": "douyin-rules", "kind": "page-list", "url": http.url("/list"),
                                  "follow": True, "platform": "douyin", "lang": "zh"}],
                                extra="")
    text = sqlite_project.config.read_text().replace("[fetch]\n", "[fetch]\nallow_private = true\n")
    sqlite_project.config.write_text(text)
    sqlite_project.run("once", now="2023-04-05T10:00:00+08:00", check=0)
    first = sqlite_project.json("entries", "--source", "douyin-rules")
    assert sorted(e["title"] for e in first) == ["关于优化商家客服考核的通知", "关于调整直播间商品展示规范的公告"]
    assert all(e["url"].startswith(http.url("/notice/")) for e in first)
    assert {e["published"][:10] for e in first} == {"2023-04-01", "2023-03-20"}
    assert sqlite_project.json("changes") == []

    http.routes["/list"] = html_route(LIST_V2)
    sqlite_project.run("once", now="2023-04-10T12:00:00+08:00", check=0)
    entries = sqlite_project.json("entries", "--source", "douyin-rules")
    assert len(entries) == 3
    new = [e for e in entries if e["url"].endswith("/notice/102")]
    assert len(new) == 1 and new[0]["changes"] == 1
    assert http.hits.get("/notice/101") == 1             # followed when new, never again
    [change] = sqlite_project.json("changes")
    assert change["platform"] == "douyin" and change["action"] == "ban"
    assert change["effective_date"] == "2023-05-01" and set(change["targets"]) == {"taobao", "jd"}
    assert "相关文章" not in change["evidence"] and "2023年5月1日起" in change["evidence"]


def test_followed_links_to_private_addresses_are_refused_by_default(sqlite_project: Project,
                                                                   http: HTTPServer) -> None:
    http.routes["/list"] = html_route(LIST_V2)
    http.routes["/notice/102"] = html_route(ARTICLE)
    sqlite_project.write_config([{"name": "rules", "kind": "page-list", "url": http.url("/list"), "follow": True}])
    proc = sqlite_project.run("once", "-v", check=0)      # the configured URL itself is trusted
    assert "refused to follow" in proc.stderr and "allow_private" in proc.stderr
    assert http.hits.get("/notice/102") is None
    assert len(sqlite_project.json("entries")) == 3       # the items are kept, with their list text


def test_list_page_in_gbk_declared_only_in_meta(sqlite_project: Project, http: HTTPServer) -> None:
    page = LIST_V2.replace('<meta charset="utf-8">', '<meta http-equiv="Content-Type" content="text/html; charset=gb2312">')
    http.routes["/list"] = html_route(page, charset="gbk", declare=False)
    sqlite_project.write_config([{"name": "rules", "kind": "page-list", "url": http.url("/list"),
                                  "selectors": {"item": ".notice-list li", "date": ".date"}}])
    sqlite_project.run("once", check=0)
    titles = {e["title"] for e in sqlite_project.json("entries")}
    assert "关于禁止在直播间发布第三方平台商品链接的公告" in titles and len(titles) == 3


def test_bad_selector_is_a_source_error(sqlite_project: Project, http: HTTPServer) -> None:
    http.routes["/list"] = html_route(LIST_V1)
    sqlite_project.write_config([{"name": "rules", "kind": "page-list", "url": http.url("/list"),
                                  "selectors": {"item": "table.nothing-here tr"}}])
    proc = sqlite_project.run("once")
    assert proc.returncode == 1 and "matches nothing" in proc.stderr
    bad = sqlite_project.config.read_text().replace("table.nothing-here tr", "li[[")
    sqlite_project.config.write_text(bad)
    proc = sqlite_project.run("once")
    assert proc.returncode == 2 and "sources[0].selectors.item" in proc.stderr and "CSS selector" in proc.stderr


POLICY_V1 = """<html><head><meta charset="utf-8"><title>直播间链接管理规范</title></head><body>
<div id="content"><h1>直播间链接管理规范</h1>
<p class="meta">更新时间：2023-04-01 10:00:00 阅读 1024</p>
<p>第一条 商家应当在直播间展示真实有效的商品信息。</p>
<p>第二条 商家不得发布虚假宣传内容。</p>
<div class="ad">限时优惠！点击领取</div></div>
<div class="sidebar">热门规则</div></body></html>"""


def test_watched_page_versions_diff_and_noise(sqlite_project: Project, http: HTTPServer) -> None:
    http.routes["/policy"] = html_route(POLICY_V1)
    sqlite_project.write_config([{"name": "ks-policy", "kind": "page", "url": http.url("/policy"),
                                  "platform": "kuaishou", "selector": "#content", "lang": "zh"}])
    sqlite_project.run("once", now="2023-04-05T10:00:00+08:00", check=0)    # baseline: nothing to report
    assert sqlite_project.json("entries") == []

    noisy = POLICY_V1.replace("2023-04-01 10:00:00 阅读 1024", "2023-04-06 18:30:12 阅读 5873").replace(
        "限时优惠！点击领取", "新人专享！立即抢购")
    http.routes["/policy"] = html_route(noisy)
    sqlite_project.run("once", now="2023-04-06T10:00:00+08:00", check=0)    # only a timestamp, counter, ad
    assert sqlite_project.json("entries") == []

    v2 = noisy.replace("<p>第二条 商家不得发布虚假宣传内容。</p>",
                       "<p>第二条 商家不得发布虚假宣传内容。</p>\n<p>第三条 自4月20日起，禁止在直播间发布第三方平台商品链接。</p>")
    http.routes["/policy"] = html_route(v2)
    sqlite_project.run("once", now="2023-04-10T10:00:00+08:00", check=0)
    [entry] = sqlite_project.json("entries")
    assert entry["changes"] == 1 and "updated" in entry["title"]
    [change] = sqlite_project.json("changes")
    assert change["platform"] == "kuaishou" and change["action"] == "ban"
    assert change["effective_date"] == "2023-04-20"
    assert change["evidence"] == "第三条 自4月20日起，禁止在直播间发布第三方平台商品链接。"

    out = sqlite_project.run("history", "ks-policy", check=0).stdout
    table = out.split("\n\n")[0].splitlines()[2:]
    assert len(table) == 2                               # two stored versions (the noisy one is not new)
    assert "+第三条 自4月20日起，禁止在直播间发布第三方平台商品链接。" in out
    assert "-第三条" not in out


def test_retry_after_is_honoured(sqlite_project: Project, http: HTTPServer) -> None:
    http.routes["/feed"] = Route(b"slow down", status=429, content_type="text/plain",
                                 headers={"Retry-After": "7200"})
    sqlite_project.write_config([{"name": "busy", "url": http.url("/feed"), "interval": "15m"}])
    proc = sqlite_project.run("once", now="2023-04-10T00:00:00+00:00")
    assert proc.returncode == 1 and "HTTP 429" in proc.stderr and "Retry-After 7200s" in proc.stderr
    [s] = sqlite_project.json("sources")
    assert s["status"] == "failing" and s["next_poll"].startswith("2023-04-10T02:00")


def test_wrong_content_type_invalid_bytes_and_endless_body(sqlite_project: Project, http: HTTPServer) -> None:
    item = {"title": "Test item", "link": "http://example.org/1", "published": __import__("datetime").datetime(
        2023, 4, 10, tzinfo=__import__("datetime").timezone.utc), "body": "<p>hello</p>"}
    http.routes["/as-html"] = Route(rss([item]), content_type="text/html")
    http.routes["/bad-bytes"] = Route(rss([item]).replace(b"Test item", b"Test \xff\xfe item"))

    def endless(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.end_headers()
        try:
            chunk = b"<item>" + b"x" * 65536 + b"</item>"
            for _ in range(10_000):
                h.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass

    http.routes["/endless"] = Route(handler=endless)
    sqlite_project.write_config([{"name": "as-html", "url": http.url("/as-html")},
                                 {"name": "bad-bytes", "url": http.url("/bad-bytes")},
                                 {"name": "endless", "url": http.url("/endless")}])
    text = sqlite_project.config.read_text().replace("[fetch]\n", "[fetch]\nmax_bytes = 1000000\n")
    sqlite_project.config.write_text(text)
    proc = sqlite_project.run("once")
    status = {s["name"]: s for s in sqlite_project.json("sources")}
    assert status["as-html"]["status"] == "ok" and status["as-html"]["entries_seen"] == 1
    assert status["bad-bytes"]["status"] == "ok" and status["bad-bytes"]["entries_seen"] == 1
    assert status["endless"]["status"] == "failing" and "cap of 1000000 bytes" in status["endless"]["last_error"]
    assert proc.returncode == 1


def test_feed_with_summaries_follows_to_full_text(sqlite_project: Project, http: HTTPServer) -> None:
    from datetime import datetime, timezone

    item = {"title": "抖音电商规则更新", "link": http.url("/notice/102"), "body": "点击查看全文",
            "published": datetime(2023, 4, 10, 2, tzinfo=timezone.utc)}
    http.routes["/feed"] = Route(rss([item]))
    http.routes["/notice/102"] = html_route(ARTICLE)
    sqlite_project.write_config([{"name": "news", "url": http.url("/feed"), "follow": True, "platform": "douyin"}])
    text = sqlite_project.config.read_text().replace("[fetch]\n", "[fetch]\nallow_private = true\n")
    sqlite_project.config.write_text(text)
    sqlite_project.run("once", now="2023-04-10T12:00:00+08:00", check=0)
    [change] = sqlite_project.json("changes")
    assert change["effective_date"] == "2023-05-01" and change["platform"] == "douyin"


def test_requests_to_one_host_are_spaced(sqlite_project: Project, http: HTTPServer) -> None:
    stamps: list[float] = []

    def stamped(h: BaseHTTPRequestHandler) -> None:
        stamps.append(time.monotonic())
        body = rss([])
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    for i in range(4):
        http.routes[f"/f{i}"] = Route(handler=stamped)
    sqlite_project.write_config([{"name": f"s{i}", "url": http.url(f"/f{i}")} for i in range(4)])
    text = sqlite_project.config.read_text().replace('host_delay = "0s"', 'host_delay = "0.5s"')
    sqlite_project.config.write_text(text)
    sqlite_project.run("once", check=0)
    wait_for(lambda: len(stamps) == 4, timeout=10)
    gaps = [b - a for a, b in zip(sorted(stamps), sorted(stamps)[1:])]
    assert all(g >= 0.45 for g in gaps), gaps
