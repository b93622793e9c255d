"""The change log over HTTP: a real `policy-monitor serve` on a loopback port, against a database
filled by a real `once` over a local feed, read as people, scripts, feed readers and calendar apps
read it (pages, JSON API, Atom through feedparser, iCalendar through icalendar), corrected through
its forms and API, and driven by a real headless browser. One server per database for the module."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
from dataclasses import dataclass
from datetime import date, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from conftest import DOUYIN_ITEM, HTTPServer, Project, Route, free_port, fresh_database, rss, wait_for
from test_alerts import KS_ITEM

NOW = "2023-04-11T10:00:00+08:00"   # Douyin's rule takes effect 2023-04-15, Kuaishou's 04-20, Weibo's 05-01
LATER = "2023-04-12T09:00:00+08:00"  # the server's clock: a day after the poll, so corrections are later
TOKEN = "test-token-0123456789abcdef"
SECRET = "S3CRETPASS"                # in the notifier URL: must never reach a page
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"
HOSTILE_ITEM = {
    "title": HOSTILE,
    "link": "javascript:alert(4)",
    "guid": "http://news.example.org/hostile",
    "published": datetime.fromisoformat("2023-04-10T04:00:00+00:00"),
    "body": "<p>微博宣布，5月1日起禁止在微博发布京东商品链接 &lt;script&gt;alert(3)&lt;/script&gt;。</p>"
            "<p>平台表示此举是为了保护用户。</p>",
}
EN = {"Accept-Language": "en-US,en;q=0.9"}


@dataclass
class Site:
    project: Project
    base: str
    client: httpx.Client
    feed: HTTPServer
    proc: subprocess.Popen[str]

    def get(self, path: str, **kw: Any) -> httpx.Response:
        """A request without cookies (the client's jar would carry a language choice to later tests)."""
        headers = {**EN, **kw.pop("headers", {})}
        return httpx.get(self.base + path, headers=headers, timeout=30, **kw)

    def ids(self) -> dict[str, int]:
        return {c["platform"]: c["id"] for c in self.get("/api/changes", params={"status": "all"}).json()["changes"]}


def start_server(project: Project, *args: str, now: str = LATER) -> tuple[subprocess.Popen[str], str, httpx.Client]:
    port = free_port()
    proc = project.popen(*args, "--listen", f"127.0.0.1:{port}", now=now) if args[0] == "serve" \
        else project.popen(*args, now=now)
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, timeout=30, follow_redirects=False)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            return client.get("/api/sources").status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, timeout=60)
    return proc, base, client


def stop_server(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp(f"web-{request.param}")
    feed = HTTPServer()
    gen = fresh_database(request.param, tmp)
    url = next(gen)
    try:
        feed.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM, KS_ITEM, HOSTILE_ITEM]))
        project = Project(tmp, url)
        hook = f"json://user:{SECRET}@127.0.0.1:{feed.server.server_address[1]}/hook"
        project.write_config([{"name": "news", "url": feed.url("/feed.xml"), "lang": "zh"}],
                             [{"name": "team", "url": hook, "lang": "en"}],
                             extra=f'[http]\ntoken = "{TOKEN}"\n')
        project.run("once", now=NOW, check=0)
        proc, base, client = start_server(project, "serve")
        site = Site(project, base, client, feed, proc)
        yield site
        client.close()
        status, err = stop_server(proc)
        assert status == 0, err
        assert "server stopped" in err
    finally:
        feed.close()
        for _ in gen:
            pass


# -- pages -----------------------------------------------------------------------------------------
class _Forms(HTMLParser):
    """The hidden fields and hrefs of a page, read as a browser would."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden: dict[str, str] = {}
        self.hrefs: list[str] = []
        self.forms = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form" and a.get("method") == "post":
            self.forms += 1
        if tag == "input" and a.get("type") == "hidden" and a.get("name"):
            self.hidden[str(a["name"])] = a.get("value") or ""
        if tag == "a" and a.get("href"):
            self.hrefs.append(str(a["href"]))


def platforms_listed(html: str) -> list[str]:
    """The platform cells of a page's change table, in order."""
    return re.findall(r'<td class="platform">([^<]*)</td>', html)


def parse(html: str) -> _Forms:
    p = _Forms()
    p.feed(html)
    return p


def test_pages_list_filter_and_show_a_change_in_both_languages(site: Site) -> None:
    ids = site.ids()
    home = site.get("/")
    assert home.status_code == 200 and home.headers["content-type"].startswith("text/html")
    csp = home.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    assert home.headers["x-content-type-options"] == "nosniff"
    text = home.text
    for words in ("Douyin (抖音)", "Kuaishou (快手)", "Weibo (微博)", "in 3 days", "2023-04-15", "Change log"):
        assert words in text, words
    assert f'href="/changes/{ids["douyin"]}"' in text

    zh = site.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}).text
    assert "变更记录" in zh and "还有 3 天" in zh and "抖音 (Douyin)" in zh
    switched = site.get("/?lang=zh")
    assert "变更记录" in switched.text and switched.cookies.get("lang") == "zh"

    assert sorted(platforms_listed(text)) == ["Douyin (抖音)", "Kuaishou (快手)", "Weibo (微博)"]
    only = site.get("/", params={"platform": "douyin", "action": "ban", "q": "拼多多"}).text
    assert platforms_listed(only) == ["Douyin (抖音)"]
    assert "/feeds/changes.atom?platform=douyin" in only   # subscribe to what you filtered
    assert "No change matches" in site.get("/", params={"platform": "douyin", "effective_from": "2023-05-01"}).text
    bad = site.get("/", params={"effective_from": "soon"})
    assert bad.status_code == 400 and "effective_from: &#39;soon&#39; is not a date" in bad.text

    page = site.get(f"/changes/{ids['douyin']}").text
    assert "<mark>4月15日起，拼多多商品链接将无法在抖音直播间购物车中发布，已发布的链接将被下架。</mark>" in page
    assert DOUYIN_ITEM["title"] in page and 'href="http://news.example.org/2023/04/douyin-links.html"' in page
    assert "Deliveries and reminders" in page and "team" in page and "sent" in page
    assert parse(page).forms == 2 and "csrf" in parse(page).hidden        # a token is configured

    upcoming = site.get("/upcoming").text
    assert platforms_listed(upcoming) == ["Douyin (抖音)", "Kuaishou (快手)", "Weibo (微博)"]
    assert upcoming.index("Week of 2023-04-10") < upcoming.index('<td class="platform">Douyin') < \
        upcoming.index("Week of 2023-04-17") < upcoming.index('<td class="platform">Kuaishou') < \
        upcoming.index("Week of 2023-05-01")
    sources = site.get("/sources").text
    assert "news" in sources and ">ok<" in sources and ">3<" in sources   # 3 entries, 3 changes
    missing = site.get("/changes/99999")
    assert missing.status_code == 404 and "There is no change #99999" in missing.text
    assert site.get("/static/style.css").status_code == 200


def test_hostile_feed_text_is_shown_as_text_everywhere_and_secrets_nowhere(site: Site) -> None:
    weibo = site.ids()["weibo"]
    bodies = {}
    for path in ("/", f"/changes/{weibo}", "/upcoming", "/sources", "/api", "/api/changes", f"/api/changes/{weibo}",
                 "/api/sources", "/api/entries", "/openapi.json", "/feeds/changes.atom", "/feeds/effective.ics",
                 "/changes/99999", "/api/changes/99999", "/nowhere"):
        r = site.get(path)
        bodies[path] = r.text
        assert r.headers["content-security-policy"].startswith("default-src 'none'"), path
        assert SECRET not in r.text and site.project.database_url not in r.text and "monitor.db" not in r.text, path
        assert TOKEN not in r.text, path
    page = bodies[f"/changes/{weibo}"]
    assert "<script" not in page and "<img" not in page and "onerror=alert" not in page.replace("onerror=alert(2)&gt;", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert "<mark>微博宣布，5月1日起禁止在微博发布京东商品链接 &lt;script&gt;alert(3)&lt;/script&gt;。</mark>" in page
    assert "javascript:" not in "".join(parse(page).hrefs)                # the hostile link is not a link
    assert "<script" not in bodies["/"] and "&lt;script&gt;alert(3)" in bodies["/"]
    for path in ("/api/changes", "/api/entries", f"/api/changes/{weibo}"):
        assert "<" not in bodies[path], path                               # \u003c in JSON
    entries = site.get("/api/entries").json()
    assert HOSTILE in [e["title"] for e in entries]                        # the same text once parsed


def test_api_serves_the_cli_objects_pages_with_a_cursor_and_answers_errors_in_json(site: Site) -> None:
    cli = site.project.json("changes")
    api = site.get("/api/changes").json()
    assert api["changes"] == cli and api["next_cursor"] is None
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        r = site.get("/api/changes", params=params)
        body = r.json()
        seen += [c["id"] for c in body["changes"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            assert "link" not in r.headers
            break
        assert 'rel="next"' in r.headers["link"]
    assert seen == [c["id"] for c in cli] and pages == len(cli)
    ks = site.get("/api/changes", params={"platform": "kuaishou", "action": "ban", "target": "taobao"}).json()
    assert [c["platform"] for c in ks["changes"]] == ["kuaishou"]
    assert site.get("/api/changes", params={"link_type": "affiliate", "q": "拼多多"}).json()["changes"] == []
    assert site.get("/api/changes", params={"effective_to": "2023-04-16"}).json()["changes"][0]["platform"] == "douyin"

    one = site.get(f"/api/changes/{cli[0]['id']}").json()
    assert {k: v for k, v in one.items() if k != "deliveries"} == cli[0]
    assert {d["kind"] for d in one["deliveries"]} >= {"alert"} and all(SECRET not in json.dumps(d)
                                                                         for d in one["deliveries"])
    assert site.get("/api/sources").json() == site.project.json("sources")
    assert site.get("/api/entries", params={"limit": "2"}).json() == site.project.json("entries", "--limit", "2")

    for path, params, status, words in [
        ("/api/changes", {"limit": "0"}, 400, "limit"),
        ("/api/changes", {"action": "delete"}, 400, "action"),
        ("/api/changes", {"cursor": "garbage"}, 400, "cursor"),
        ("/api/changes/99999", {}, 404, "there is no change #99999"),
        ("/api/nowhere", {}, 404, "nothing at /api/nowhere"),
    ]:
        r = site.get(path, params=params)
        assert r.status_code == status and r.headers["content-type"].startswith("application/json"), path
        assert words in r.json()["error"]["message"] and r.json()["error"]["status"] == status
    assert site.client.get("/api/changes/1/labels").status_code == 405   # no write by GET
    schema = site.get("/openapi.json").json()
    assert {"/api/changes", "/api/changes/{change_id}", "/api/sources", "/api/entries"} <= set(schema["paths"])
    assert "cursor" in site.get("/api").text


def test_atom_feed_parses_filters_and_answers_304(site: Site) -> None:
    import feedparser
    from lxml import etree

    r = site.get("/feeds/changes.atom")
    assert r.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(r.content)
    assert not feed.bozo and len(feed.entries) == 3
    assert all(e.id.startswith("urn:uuid:") for e in feed.entries)
    assert all(e.link.startswith(site.base + "/changes/") for e in feed.entries)
    sub = feedparser.parse(site.get("/feeds/changes.atom", params={"platform": "kuaishou", "action": "ban"}).content)
    assert [e.title for e in sub.entries] == ["Kuaishou (快手) bans third-party product links of Taobao (淘宝) (2023-04-20)"]
    assert sub.entries[0].id in {e.id for e in feed.entries}                 # the same id in every feed
    # Hostile text arrives HTML-escaped inside the entry's HTML: a reader shows it, runs nothing.
    atom = "{http://www.w3.org/2005/Atom}"
    root = etree.fromstring(r.content)
    contents = [el.text or "" for el in root.iter(f"{atom}content")]
    weibo = next(c for c in contents if "微博" in c)
    assert "<script" not in weibo and "&lt;script&gt;alert(3)&lt;/script&gt;" in weibo
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in weibo and "javascript:" not in weibo
    again = site.get("/feeds/changes.atom", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and not again.content
    assert site.get("/feeds/changes.atom", params={"status": "gone"}).status_code == 400


def _events(site: Site, **params: str) -> dict[str, Any]:
    from icalendar import Calendar

    r = site.get("/feeds/effective.ics", params=params)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
    cal = Calendar.from_ical(r.content)
    # keyed by platform: "[withdrawn] Kuaishou (快手) bans …" is Kuaishou's
    return {re.sub(r"^\[[^]]*\] ", "", str(ev["summary"])).split(" ")[0]: ev for ev in cal.walk("VEVENT")}


def _form_post(site: Site, change_id: int, fields: dict[str, str], origin: str | None = "self",
               cookies: dict[str, str] | None = None) -> httpx.Response:
    headers = {**EN, "Content-Type": "application/x-www-form-urlencoded"}
    if origin:
        headers["Origin"] = site.base if origin == "self" else origin
    client = httpx.Client(base_url=site.base, cookies=cookies or {}, follow_redirects=False)
    with client:
        return client.post(f"/changes/{change_id}/label", data=fields, headers=headers)


def test_corrections_from_the_page_and_the_api_move_the_calendar_event_and_the_feed(site: Site) -> None:
    import feedparser

    ids = site.ids()
    before = _events(site)
    douyin = before["Douyin"]
    assert (douyin.decoded("dtstart"), int(douyin["sequence"]), str(douyin["status"])) == \
        (date(2023, 4, 15), 0, "CONFIRMED")
    assert f"{site.base}/changes/{ids['douyin']}" in str(douyin["description"])
    assert "4月15日起" in str(douyin["description"]) and str(douyin["url"]).endswith(f"/changes/{ids['douyin']}")
    uid = str(douyin["uid"])
    updated_before = {e.id: e.updated for e in feedparser.parse(site.get("/feeds/changes.atom").content).entries}

    # The page's form: its CSRF pair, then every guard in turn.
    page = site.client.get(f"/changes/{ids['douyin']}", headers=EN)
    csrf = parse(page.text).hidden["csrf"]
    cookies = {"pm_csrf": page.cookies["pm_csrf"]}
    fields = {"csrf": csrf, "what": "correct", "date": "2023-04-18", "token": TOKEN}
    assert _form_post(site, ids["douyin"], fields, origin=None, cookies=cookies).status_code == 403
    assert _form_post(site, ids["douyin"], fields, origin="http://evil.example", cookies=cookies).status_code == 403
    assert _form_post(site, ids["douyin"], fields).status_code == 403                         # no CSRF cookie
    assert _form_post(site, ids["douyin"], {**fields, "csrf": "forged"}, cookies=cookies).status_code == 403
    assert _form_post(site, ids["douyin"], {**fields, "token": "wrong"}, cookies=cookies).status_code == 401
    assert _events(site)["Douyin"].decoded("dtstart") == date(2023, 4, 15)                 # nothing applied
    done = _form_post(site, ids["douyin"], fields, cookies=cookies)
    assert done.status_code == 303 and done.headers["location"] == f"/changes/{ids['douyin']}"
    assert "pm_auth" in done.cookies and TOKEN not in done.headers.get("set-cookie", "")
    with httpx.Client(base_url=site.base, cookies={**cookies, "pm_flash": done.cookies["pm_flash"],
                                                   "pm_auth": done.cookies["pm_auth"]}) as browser:
        shown = browser.get(f"/changes/{ids['douyin']}", headers=EN)
    assert "date: 2023-04-15 -&gt; 2023-04-18" in shown.text and 'name="token"' not in shown.text  # signed in
    # Signed in, the session cookie stands for the token; an empty correction is refused politely.
    empty = _form_post(site, ids["douyin"], {"csrf": csrf, "what": "correct"},
                       cookies={**cookies, "pm_auth": done.cookies["pm_auth"]})
    assert empty.status_code == 303
    assert "nothing to correct" in base64.urlsafe_b64decode(empty.cookies["pm_flash"] + "==").decode()

    moved = _events(site)["Douyin"]
    assert str(moved["uid"]) == uid and int(moved["sequence"]) == 1
    assert moved.decoded("dtstart") == date(2023, 4, 18) and moved.decoded("dtend") == date(2023, 4, 19)
    labels = site.project.json("labels", "list")
    assert [(lab["kind"], lab["value"], lab["by"]) for lab in labels] == [("date", "2023-04-18", "web")]

    # A script corrects through the API with the bearer token; the same guards, in JSON.
    url = f"/api/changes/{ids['kuaishou']}/labels"
    assert site.client.post(url, json={"not_a_change": True}).status_code == 401
    assert site.client.post(url, json={"not_a_change": True},
                            headers={"Authorization": "Bearer wrong-token-wrong-token"}).status_code == 401
    r = site.client.post(url, json={"not_a_change": True}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.json()["recorded"] == ["not a change"]
    assert r.json()["change"]["status"] == "withdrawn"
    assert site.client.post(f"/api/changes/99999/labels", json={"action": "ban"},
                            headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404

    after = _events(site)
    assert str(after["Kuaishou"]["status"]) == "CANCELLED" and int(after["Kuaishou"]["sequence"]) == 1
    assert str(after["Kuaishou"]["uid"]) == str(before["Kuaishou"]["uid"])
    feed = feedparser.parse(site.get("/feeds/changes.atom").content)
    titles = {e.id: e.title for e in feed.entries}
    updated = {e.id: e.updated for e in feed.entries}
    ks_id = next(i for i, t in titles.items() if "Kuaishou" in t)
    assert titles[ks_id].startswith("[withdrawn] ") and updated[ks_id] > updated_before[ks_id]
    assert "Kuaishou (快手)" not in platforms_listed(site.get("/").text)   # out of the log, as with the CLI
    assert "kuaishou" not in {c["platform"] for c in site.project.json("changes")}
    # Changes leave the page read-only once withdrawn: no correction forms.
    assert parse(site.get(f"/changes/{ids['kuaishou']}").text).forms == 0


# -- a real browser --------------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"


def test_a_browser_filters_opens_a_change_and_runs_no_hostile_script(site: Site, tmp_path: Path) -> None:
    if site.project.database_url.startswith("postgresql"):
        pytest.skip("the browser reads the same pages on either database; once is enough")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: `make test` installs Debian's chromium with apt-get where it can "
                    "(apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    shots = Path(os.environ.get("MONITOR_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 860})
            page = context.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(site.base + "/")
            rows = page.locator("table.log tbody tr")
            assert rows.count() >= 2
            page.screenshot(path=str(shots / "screenshot-changes.png"), full_page=True)
            page.select_option("select[name=platform]", "weibo")
            page.click("form.filters button[type=submit]")
            page.wait_for_url(re.compile(r".*platform=weibo.*"))
            assert rows.count() == 1 and "Weibo" in rows.first.inner_text()
            page.click("table.log a.summary")
            page.wait_for_url(re.compile(r".*/changes/\d+$"))
            assert page.get_by_text(HOSTILE).first.is_visible()               # shown as text …
            assert page.locator("mark", has_text="<script>alert(3)</script>").count() == 1
            assert page.evaluate("document.querySelectorAll('script, img').length") == 0   # … and nothing else
            page.wait_for_timeout(300)
            page.screenshot(path=str(shots / "screenshot-change.png"), full_page=True)
            page.goto(site.base + "/upcoming")
            page.screenshot(path=str(shots / "screenshot-upcoming.png"), full_page=True)
        finally:
            browser.close()
    assert dialogs == []
    assert (shots / "screenshot-change.png").stat().st_size > 10_000


# -- the daemon serving, read-only -----------------------------------------------------------------
def test_the_daemon_serves_read_only_while_it_polls_and_stops_on_sigterm(sqlite_project: Project,
                                                                         http: HTTPServer) -> None:
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))
    port = free_port()
    sqlite_project.write_config([{"name": "news", "url": http.url("/feed.xml"), "interval": "1h"}],
                                extra=f'[daemon]\njitter = "1s"\n[http]\nlisten = "127.0.0.1:{port}"\n')
    proc = sqlite_project.popen("run", now=NOW)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        def polled() -> list[Any]:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read() if proc.stderr else "daemon exited")
            try:
                return list(client.get("/api/changes").json()["changes"])
            except httpx.TransportError:
                return []

        [change] = wait_for(polled, timeout=60)
        page = client.get(f"/changes/{change['id']}").text
        assert "Read-only" in page or "只读" in page
        assert parse(page).forms == 0
        r = client.post(f"/api/changes/{change['id']}/labels", json={"not_a_change": True},
                        headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 403 and "read-only" in r.json()["error"]["message"]
    finally:
        client.close()
        status, err = stop_server(proc)
    assert status == 0, err
    assert f"serving http://127.0.0.1:{port} (read-only)" in err and "daemon stopped" in err

    # A second server cannot take the same port while something listens there: a clear error.
    with __import__("socket").socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        proc2 = sqlite_project.run("serve", "--listen", f"127.0.0.1:{port}", now=NOW)
    assert proc2.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in proc2.stderr


def test_http_settings_are_checked_like_the_rest_of_the_config(tmp_path: Path) -> None:
    from monitor.config import ConfigError, load

    path = tmp_path / "monitor.toml"
    path.write_text('[http]\nlisten = "8080"\ntoken = "short"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert "http.listen: '8080' is not HOST:PORT" in str(err.value)
    assert "http.token: must be at least 16 characters" in str(err.value) and "short" not in str(err.value)
    path.write_text('[http]\ntoken = "${PM_TEST_TOKEN}"\n', encoding="utf-8")
    os.environ["PM_TEST_TOKEN"] = TOKEN
    try:
        assert load(path).settings.http.token == TOKEN
    finally:
        del os.environ["PM_TEST_TOKEN"]


def test_migrations_and_models_agree(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from monitor.store import db
    from monitor.store.models import Base

    engine = db.make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()
