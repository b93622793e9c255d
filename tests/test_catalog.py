"""The catalog: an entry for every platform of the spec, each verified entry's saved copy read through
the parser the daemon uses for it (and its filters), one-line selection in the config, and
`sources --catalog` without a database."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import ROOT, SHARED, Project
from monitor import catalog
from monitor.config import ConfigError, load
from monitor.sources import filters, json_api, pages
from monitor.sources.charset import decode_html
from monitor.sources.feeds import FeedItem, parse_feed

#: The canonical platform ids of spec/interface.md (compared with the spec itself when ../shared is here).
SPEC_PLATFORMS = {
    "kuaishou", "douyin", "taobao", "tmall", "jd", "pinduoduo", "wechat", "weibo", "xiaohongshu", "bilibili",
    "zhihu", "baidu", "alipay", "meituan", "tiktok", "twitter", "youtube", "instagram", "facebook", "threads",
    "reddit", "linkedin", "pinterest", "amazon", "apple", "google", "telegram", "discord", "substack", "medium",
    "mastodon", "bluesky", "github", "qq", "twitch", "microsoft", "miit",
}
ENTRIES = catalog.load()


def test_every_spec_platform_has_an_entry_and_every_entry_says_what_it_is() -> None:
    spec = SHARED / "spec" / "interface.md"
    if spec.is_file():
        table = spec.read_text(encoding="utf-8").split("## Canonical platform ids", 1)[1]
        assert set(re.findall(r"^\| (\w+) \|", table, re.M)) - {"id"} == SPEC_PLATFORMS
    assert set(catalog.platforms(ENTRIES)) == SPEC_PLATFORMS
    assert len({e.source.name for e in ENTRIES}) == len(ENTRIES)
    for e in ENTRIES:
        assert e.about and e.source.lang in ("zh", "en") and e.source.platform in SPEC_PLATFORMS, e.source.name
        assert e.source.name not in SPEC_PLATFORMS                 # a name never shadows a platform id
        assert (e.status == "verified") == bool(e.copy) and (e.status == "unverified") == bool(e.reason)


def _read(entry: catalog.Entry) -> list[FeedItem]:
    """The entry's saved copy through the parser its kind uses in the pipeline, then its filters."""
    assert entry.copy is not None
    content = (ROOT / entry.copy).read_bytes()
    s = entry.source
    headers = {"content-type": "application/json" if s.kind == "json" else "text/html" if s.parses_as in (
        "page-list", "page") else "application/xml"}
    if s.kind == "json":
        items = json_api.parse(content, headers, s.url, s)
    elif s.parses_as == "page-list":
        sel = pages.ListSelectors(s.selectors.item, s.selectors.title, s.selectors.link, s.selectors.date)
        items = pages.parse_list(decode_html(content, headers["content-type"]), s.url, sel)
    elif s.parses_as == "page":
        text = pages.watched_text(decode_html(content, headers["content-type"]), s.selector, s.ignore)
        items = [FeedItem("v", "page", s.url, None, text)] if text else []
    else:
        items = parse_feed(content, headers, s.url)
    assert items, f"{entry.source.name}: its copy {entry.copy} yields nothing"
    return filters.apply(items, s.include, s.exclude)


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.status == "verified"], ids=lambda e: e.source.name)
def test_verified_entry_reads_its_saved_copy(entry: catalog.Entry) -> None:
    kept = _read(entry)
    assert all(i.title and i.url and i.url.startswith("http") for i in kept)


def test_filtered_news_keeps_what_names_the_platform() -> None:
    by_name = {e.source.name: e for e in ENTRIES}
    titles = {p: [i.title for i in _read(by_name[f"hn-{p}"])] for p in ("bluesky", "twitter", "amazon", "microsoft",
                                                                        "tiktok", "threads")}
    assert titles["bluesky"] == titles["twitter"] == ["Twitter Bluesky: A Self-Authenticating Social Protocol"]
    assert titles["amazon"] == ["AWS Lambda Function URLs: Built-In HTTPS Endpoints for Lambda"]
    assert "Tailscale’s human-scale networks are still controlled by Google and Microsoft" in titles["microsoft"]
    assert titles["tiktok"] == titles["threads"] == []        # (CPU) threads and the rest are not Threads
    google = _read(by_name["google-youtube-channel"])
    assert len(google) == 15 and all(i.published and "youtube.com/watch" in (i.url or "") for i in google)


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_catalog_line_in_the_config(tmp_path: Path) -> None:
    cfg = load(_config(tmp_path, 'catalog = ["twitter", "kuaishou-ecom-rules"]\n\n[[sources]]\nname = "hn-twitter"\n'
                                 'url = "https://news.ycombinator.com/rss"\ninclude = ["musk"]\n'))
    got = {s.name: s for s in cfg.settings.sources}
    assert got["hn-twitter"].include == ["musk"]                 # the user's own source wins
    assert got["x-link-policy"].enabled is False                 # unverified: taken in, but off
    assert got["kuaishou-ecom-rules"].enabled is True            # named itself: the user vouches for it
    assert "kuaishou-news-ithome" not in got                     # kuaishou itself was not asked for
    with pytest.raises(ConfigError, match=r"catalog\[1\]: 'kwai' is neither a platform of the catalog"):
        load(_config(tmp_path, 'catalog = ["douyin", "kwai"]\n'))
    shipped = load(ROOT / "config" / "monitor.toml")          # `make run`'s config still loads
    assert {"kuaishou-ecom-rules", "miit-policy-files"} <= {s.name for s in shipped.settings.sources if not s.enabled}


def test_sources_catalog_lists_entries_without_a_database(tmp_path: Path) -> None:
    project = Project(tmp_path, "sqlite:///" + str(tmp_path / "never.db"))
    project.config.write_text('catalog = ["github"]\n\n[storage]\nurl = "sqlite:///never.db"\n', encoding="utf-8")
    rows = project.json("sources", "--catalog")
    assert {"name", "platform", "kind", "url", "status"} <= set(rows[0])
    assert {r["platform"] for r in rows} == SPEC_PLATFORMS
    github = {r["name"]: r for r in rows if r["platform"] == "github"}
    assert github["hn-github"]["status"] == "verified" and github["hn-github"]["selected"] is True
    assert github["github-changelog"]["status"] == "unverified" and github["github-changelog"]["selected"] is False
    assert not (tmp_path / "never.db").exists()
    table = project.run("sources", "--catalog", "--platform", "kuaishou", check=0).stdout
    assert "kuaishou-ecom-rules" in table and "browser" in table and "hn-github" not in table
    miit = json.loads(project.run("sources", "--catalog", "--format", "json", "--platform", "miit", check=0).stdout)
    assert {r["kind"] for r in miit} == {"json", "feed"}
