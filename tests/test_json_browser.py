"""Script-rendered announcement pages: a local page whose notices JavaScript inserts from a local JSON
endpoint, read through kind = "json" (the endpoint, with JMESPath selectors) and kind = "browser"
(the page, rendered by Debian's chromium through playwright); filters; what fails, and how it says so."""

from __future__ import annotations

import json
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import HTTPServer, Project, Route, wait_for
from monitor.config import BrowserConfig, ConfigError, SourceConfig, load
from monitor.sources import filters, json_api
from monitor.sources.feeds import FeedItem
from monitor.sources.fetch import Fetcher, FetchLimits

NOTICES = {"code": 0, "data": {"total": 3, "list": [
    {"id": 102, "title": "关于禁止在直播间发布第三方平台商品链接的公告", "publishTime": 1681092000000,
     "content": "<p>为保障消费者权益，平台调整直播间商品链接管理规范。</p><p>自2023年5月1日起，商家不得在直播间购物车"
                "发布淘宝、京东等第三方平台的商品链接，已发布的链接将被下架。</p>"},
    {"id": 101, "title": "关于调整直播间商品展示规范的公告", "publishTime": 1680312600000,
     "content": "<p>商品主图应当真实反映商品。</p>"},
    {"id": 100, "title": "关于优化商家客服考核的通知", "publishTime": 1679281200000,
     "content": "<p>客服响应时长考核调整。</p>"},
]}}

# The page is a shell: its script asks the API for the notices and writes the list. It also asks
# another host (localhost, not the page's 127.0.0.1) for more, and shows a logo: neither may load.
SHELL = """<!doctype html><html><head><meta charset="utf-8"><title>规则中心</title></head><body>
<div id="app">加载中…</div><img src="/logo.png">
<script>
const app = document.getElementById('app');
function show(list) {
  const ul = document.getElementById('notices') || document.createElement('ul');
  ul.id = 'notices';
  for (const n of list) {
    const li = document.createElement('li');
    const a = document.createElement('a');
    a.href = '/notice/' + n.id; a.textContent = n.title;
    const d = document.createElement('span');
    d.className = 'date'; d.textContent = new Date(n.publishTime + 8 * 3600e3).toISOString().slice(0, 10);
    li.append(a, d); ul.append(li);
  }
  app.replaceChildren(ul);
}
fetch('http://localhost:PORT/api/other').then(r => r.json()).then(d => show(d.data.list)).catch(() => {});
setTimeout(() => fetch('/api/notices').then(r => r.json()).then(d => show(d.data.list)), 50);
</script></body></html>"""


def _chromium_reason() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install 'policy-monitor[browser]')"
    if not shutil.which("chromium"):
        return "chromium is not installed (make test installs Debian's chromium where apt-get can)"
    return None


needs_chromium = pytest.mark.skipif(_chromium_reason() is not None, reason=_chromium_reason() or "")


def serve_rules(http: HTTPServer) -> None:
    port = http.server.server_address[1]
    http.routes["/rules"] = Route(SHELL.replace("PORT", str(port)).encode(), content_type="text/html; charset=utf-8")
    http.routes["/api/notices"] = Route(json.dumps(NOTICES, ensure_ascii=False).encode(),
                                        content_type="application/json", etag='"v1"')
    other = {"data": {"list": [{"id": 999, "title": "不该出现的公告：来自别的主机", "publishTime": 1681092000000}]}}
    http.routes["/api/other"] = Route(json.dumps(other, ensure_ascii=False).encode(), content_type="application/json",
                                      headers={"Access-Control-Allow-Origin": "*"})
    http.routes["/logo.png"] = Route(b"\x89PNG", content_type="image/png")


JSON_SOURCE = {"kind": "json", "platform": "douyin", "lang": "zh", "exclude": ["客服"],
               "selectors": {"items": "data.list", "title": "title",
                             "link": "join('', ['/notice/', to_string(id)])", "date": "publishTime",
                             "body": "content"}}


@needs_chromium
def test_script_rendered_page_through_json_and_browser(sqlite_project: Project, http: HTTPServer) -> None:
    serve_rules(http)
    sqlite_project.write_config([
        {"name": "rules-api", "url": http.url("/api/notices"), **JSON_SOURCE},
        {"name": "rules-page", "kind": "browser", "url": http.url("/rules"), "platform": "douyin", "lang": "zh",
         "selectors": {"item": "#notices li", "date": ".date", "wait_for": "#notices li"}},
    ])
    sqlite_project.run("once", now="2023-04-10T12:00:00+08:00", check=0)
    entries = sqlite_project.json("entries", "--limit", "100")
    by_source: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by_source.setdefault(e["source"], []).append(e)
    api = {e["url"]: e for e in by_source["rules-api"]}
    page = {e["url"]: e for e in by_source["rules-page"]}
    # Both kinds read the same notices, at the same links (the API's built from its ids)...
    assert set(page) == {http.url(f"/notice/{i}") for i in (100, 101, 102)}
    assert set(api) == {http.url("/notice/102"), http.url("/notice/101")}   # exclude = ["客服"]
    assert api[http.url("/notice/102")]["published"].startswith("2023-04-10T02:00")   # epoch milliseconds
    assert page[http.url("/notice/102")]["published"].startswith("2023-04-10")
    # ...nothing from the other host, and no image was fetched.
    assert not any("不该出现" in e["title"] for e in entries)
    assert http.hits.get("/api/other") is None and http.hits.get("/logo.png") is None
    changes = sqlite_project.json("changes")
    assert [(c["platform"], c["action"], c["effective_date"]) for c in changes] == [("douyin", "ban", "2023-05-01")]
    assert set(changes[0]["targets"]) == {"taobao", "jd"}



# -- kind = "json", in process ----------------------------------------------------------------------
def _cfg(**kw: Any) -> SourceConfig:
    base: dict[str, Any] = {"name": "t", "url": "http://127.0.0.1/api", **JSON_SOURCE}
    base.update(kw)
    return SourceConfig.model_validate(base)


def test_json_selectors_dates_and_shape_changes() -> None:
    cfg = _cfg()
    raw = json.dumps(NOTICES).encode()
    items = json_api.parse(raw, {"content-type": "application/json"}, "http://127.0.0.1/api/notices", cfg)
    assert [i.url for i in items] == [f"http://127.0.0.1/notice/{n}" for n in (102, 101, 100)]
    assert items[0].published == datetime(2023, 4, 10, 2, tzinfo=timezone.utc)
    assert "5月1日起" in items[0].body

    # JSONP, and a GBK body declared in the header
    jsonp = b"cb(" + json.dumps(NOTICES, ensure_ascii=False).encode("gbk") + b");"
    again = json_api.parse(jsonp, {"content-type": "application/javascript; charset=gbk"}, "http://127.0.0.1/", cfg)
    assert [i.title for i in again] == [i.title for i in items]

    for value, expected in [(1681092000, "2023-04-10T02:00:00+00:00"), ("1681092000000", "2023-04-10T02:00:00+00:00"),
                            ("2023-04-10T10:00:00+08:00", "2023-04-10T10:00:00+08:00"),
                            ("2023-04-10 10:00:00", "2023-04-10T10:00:00+00:00"), ("2023/4/1", "2023-04-01T00:00:00+00:00"),
                            ("2023年4月1日", "2023-04-01T00:00:00+00:00"), ("soon", None), (None, None)]:
        got = json_api.parse_date(value)
        assert (got.isoformat() if got else None) == expected, value

    # The API changed shape: the message names the selector that stopped matching.
    moved = json.dumps({"data": {"records": NOTICES["data"]["list"]}}).encode()   # type: ignore[index]
    with pytest.raises(json_api.JsonSourceError, match=r"selectors\.items 'data\.list' matched nothing"):
        json_api.parse(moved, {}, "http://127.0.0.1/", cfg)
    renamed = json.dumps({"data": {"list": [{"id": 1, "name": "x", "publishTime": 1}]}}).encode()
    with pytest.raises(json_api.JsonSourceError, match=r"selectors\.title 'title' matched nothing in any of the 1"):
        json_api.parse(renamed, {}, "http://127.0.0.1/", cfg)
    with pytest.raises(json_api.JsonSourceError, match="not JSON"):
        json_api.parse(b"<html>login</html>", {}, "http://127.0.0.1/", cfg)
    empty = json.dumps({"data": {"list": []}}).encode()
    assert json_api.parse(empty, {}, "http://127.0.0.1/", cfg) == []       # a real empty list is no news


def test_json_conditional_get_and_post_with_body(http: HTTPServer) -> None:
    serve_rules(http)
    http.routes["POST /api/query"] = Route(json.dumps(NOTICES).encode(), content_type="application/json")
    cfg = _cfg(url=http.url("/api/query"), method="POST", body={"page": 1, "size": 20},
               headers={"X-Client": "policy-monitor"})
    fetcher = Fetcher(FetchLimits(host_delay=0))
    try:
        first = json_api.fetch(fetcher, _cfg(url=http.url("/api/notices")), None, None, 5)
        again = json_api.fetch(fetcher, _cfg(url=http.url("/api/notices")), first.etag, None, 5)
        result = json_api.fetch(fetcher, cfg, '"v1"', None, 5)     # no validators on a POST
    finally:
        fetcher.close()
    assert first.status == 200 and again.not_modified and not result.not_modified
    [sent] = http.posts["/api/query"]
    assert json.loads(sent["raw"]) == {"page": 1, "size": 20} and sent["content_type"] == "application/json"
    assert len(json_api.parse(result.content, result.headers, result.url, cfg)) == 3


def test_include_and_exclude() -> None:
    items = [FeedItem("1", "Twitter bans links to Mastodon", None, None, "<p>From today</p>"),
             FeedItem("2", "Weekly round-up", None, None, '<a href="https://twitter.com/x">more</a> news'),
             FeedItem("3", "快手电商新规", None, None, "<p>快手直播间禁止外链</p>")]
    assert [i.guid for i in filters.apply(items, ["twitter", "快手"], [])] == ["1", "3"]   # not inside an attribute
    assert [i.guid for i in filters.apply(items, [], ["round-up"])] == ["1", "3"]
    assert [i.guid for i in filters.apply(items, [r"(?i)\btwitter\b|快手"], ["新规"])] == ["1"]
    assert filters.apply(items, [], []) == items


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    def errors(source: str, top: str = "") -> str:
        path = tmp_path / "m.toml"
        path.write_text(f"{top}\n[[sources]]\nname = \"s\"\nurl = \"http://127.0.0.1/x\"\n{source}\n", encoding="utf-8")
        with pytest.raises(ConfigError) as exc:
            load(path)
        return str(exc.value)

    assert "sources[0].selectors.items: kind = \"json\" needs it" in errors('kind = "json"\nselectors = { title = "t" }')
    assert "sources[0].selectors.title" in errors('kind = "json"\nselectors = { items = "a.b", title = "join(" }')
    assert "JMESPath" in errors('kind = "json"\nselectors = { items = "a.b", title = "join(" }')
    assert "sources[0].selectors.item" in errors('kind = "page-list"\nselectors = { item = "li[[" }')
    assert "sources[0].selectors.wait_for: only kind = \"browser\"" in errors('kind = "page-list"\n'
                                                                               'selectors = { wait_for = "li" }')
    assert "sources[0].include[1]" in errors('include = ["ok", "(unclosed"]')
    assert "sources[0].body: a body is sent only with method = \"POST\"" in errors(
        'kind = "json"\nbody = "a=1"\nselectors = { items = "a", title = "t" }')
    assert "sources[0].allow_hosts" in errors('allow_hosts = ["cdn.example.org"]')
    assert "sources[0].headers.X-Token: environment variable PM_NO_SUCH_TOKEN is not set" in errors(
        'kind = "json"\nheaders = { X-Token = "${PM_NO_SUCH_TOKEN}" }\nselectors = { items = "a", title = "t" }')


# -- kind = "browser", in process -------------------------------------------------------------------
@pytest.fixture
def browser() -> Iterator[Any]:
    from monitor.sources.browser import Browser

    b = Browser(BrowserConfig(keep_alive="1s"), "policy-monitor/test", 1_000_000)   # chromium on PATH
    yield b
    b.close()


@needs_chromium
def test_browser_failures_say_what_happened(http: HTTPServer, browser: Any) -> None:
    from monitor.sources.browser import BrowserError

    serve_rules(http)

    def cfg(path: str, **kw: Any) -> SourceConfig:
        return SourceConfig.model_validate({"name": "b", "kind": "browser", "url": http.url(path), **kw})

    page = browser.render(cfg("/rules", selectors={"wait_for": "#notices li"}))
    assert "关于禁止在直播间发布第三方平台商品链接的公告" in page.content.decode()
    with pytest.raises(BrowserError, match=r"selectors\.wait_for '\.gone' did not appear within 2s"):
        browser.render(cfg("/rules", selectors={"wait_for": ".gone"}), timeout=2)
    with pytest.raises(BrowserError, match="HTTP 404"):
        browser.render(cfg("/missing"))
    # allow_hosts lets the page reach the other host: its notice now shows up too
    allowed = browser.render(cfg("/rules", allow_hosts=["localhost"], selectors={"wait_for": 'a[href="/notice/999"]'}))
    assert "不该出现的公告" in allowed.content.decode() and browser.renders == 2
    wait_for(lambda: not browser.running, timeout=30)          # idle past keep_alive: closed, memory back
    assert browser.render(cfg("/rules", selectors={"wait_for": "#notices li"})).status == 200   # started again


def test_browser_without_playwright_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.sources.browser import Browser, BrowserError

    monkeypatch.setitem(sys.modules, "playwright.async_api", None)   # import fails as if not installed
    b = Browser(BrowserConfig(), "ua", 1000)
    cfg = SourceConfig.model_validate({"name": "b", "kind": "browser", "url": "http://127.0.0.1:9/"})
    with pytest.raises(BrowserError, match=r"pip install 'policy-monitor\[browser\]'"):
        b.render(cfg)
    b.close()


@needs_chromium
def test_check_fetch_renders_browser_sources_and_names_the_one_whose_selector_matches_nothing(
        sqlite_project: Project, http: HTTPServer) -> None:
    """`check --fetch` reads a browser source as `once` would (rendered, scripts run), and a selector
    that matches nothing on the rendered page is that source's one problem line."""
    serve_rules(http)
    sqlite_project.write_config([
        {"name": "rules-api", "url": http.url("/api/notices"), **JSON_SOURCE},
        {"name": "rules-page", "kind": "browser", "url": http.url("/rules"), "platform": "douyin", "lang": "zh",
         "selectors": {"item": "#notices li", "date": ".date", "wait_for": "#notices li"}},
        {"name": "wrong-page", "kind": "browser", "url": http.url("/rules"), "platform": "douyin", "lang": "zh",
         "selectors": {"item": "#no-such-list li"}},
    ])
    proc = sqlite_project.run("check", "--fetch")
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == ["source wrong-page: the item selector '#no-such-list li' matches nothing "
                                        "on the page"]
    assert "1 problem found" in proc.stderr

    text = sqlite_project.config.read_text()
    sqlite_project.config.write_text(text.replace('name = "wrong-page"', 'name = "wrong-page"\nenabled = false'))
    proc = sqlite_project.run("check", "--fetch", check=0)
    # 3 notices rendered onto the page by its script, and the API's 3
    assert "fetched 2 of 2 enabled sources (6 items)" in proc.stdout, proc.stdout
    assert not (sqlite_project.dir / "monitor.db").exists()       # check stores nothing
