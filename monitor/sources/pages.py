"""HTML sources: announcement list pages, article pages followed from them, and watched pages.

A list page yields one item per announcement (CSS selectors from the config, with defaults that fit
common list markup). A followed article page is reduced to its main text by trafilatura (measured
against readability-lxml: same speed, ~2 ms a page, and it kept the article text on more pages; see
README). A watched page is reduced to stable text, so a new version differs from the last only where
the words changed, not where a timestamp, counter or ad did.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urljoin

from bs4 import BeautifulSoup, Tag

from monitor.extract import dates
from monitor.extract.text import strip_boilerplate
from monitor.sources.feeds import FeedItem, canonical_url

DEFAULT_ITEM = "article, li, tr, .item, .list-item, .news-item, dd"
_CHROME = ("nav", "header", "footer", "aside", "script", "style", "noscript", "form", "iframe", "svg")
_VOLATILE = re.compile(
    r"\d{4}[-/.年]\d{1,2}[-/.月]\d{1,2}日?(?:\s*\d{1,2}:\d{2}(?::\d{2})?)?"   # date stamps
    r"|\d{1,2}:\d{2}(?::\d{2})?"                                            # clock times
    r"|\d+(?:[.,]\d+)*\s*(?:次|人|条|阅读|浏览|评论|点赞|views?|comments?|likes?|shares?)"  # counters
    r"|(?:阅读|浏览|评论|点赞|views?|comments?)\s*[:：]?\s*\d+(?:[.,]\d+)*", re.I)


class PageError(Exception):
    """The page could not be read as configured (e.g. a selector matches nothing)."""


@dataclass(frozen=True)
class ListSelectors:
    item: str | None = None
    title: str | None = None
    link: str | None = None
    date: str | None = None


def _soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "lxml")


def _item_date(text: str) -> datetime | None:
    """A list item's date, only when written in full (a year-less date in a list is ambiguous)."""
    for d in dates.find_dates(text, datetime.now(timezone.utc).date()):
        if d.explicit_year:
            return datetime(d.value.year, d.value.month, d.value.day, tzinfo=timezone.utc)
    return None


def parse_list(html: str, base_url: str, sel: ListSelectors) -> list[FeedItem]:
    """The announcements on a list page, in page order, one per item with a link."""
    soup = _soup(html)
    for tag in soup(_CHROME):
        tag.decompose()
    nodes = soup.select(sel.item or DEFAULT_ITEM)
    if sel.item and not nodes:
        raise PageError(f"the item selector {sel.item!r} matches nothing on the page")
    items: list[FeedItem] = []
    seen: set[str] = set()
    for node in nodes:
        if not sel.item and node.find(DEFAULT_ITEM.split(", ")[0:2]):
            continue  # a container of items, not an item
        anchor = node.select_one(sel.link) if sel.link else _best_anchor(node)
        if anchor is None or not anchor.get("href"):
            continue
        href = str(anchor.get("href")).strip()
        if href.startswith(("javascript:", "mailto:", "#")):
            continue
        url = urljoin(base_url, href)
        title_node = node.select_one(sel.title) if sel.title else anchor
        title = " ".join((title_node.get_text(" ") if title_node else anchor.get_text(" ")).split())
        if len(title) < 4 or url in seen:
            continue
        seen.add(url)
        date_node = node.select_one(sel.date) if sel.date else (node.select_one("time, .date, .time") or node)
        when = None
        if date_node is not None:
            when = _item_date(str(date_node.get("datetime") or "") + " " + date_node.get_text(" "))
        items.append(FeedItem(guid=canonical_url(url) or url, title=title, url=url, published=when,
                              body=title))
    return items


def _best_anchor(node: Tag) -> Tag | None:
    anchors = [a for a in node.find_all("a", href=True)]
    if node.name == "a" and node.get("href"):
        anchors.insert(0, node)  # the item is the link itself (a card wrapped in <a>)
    if not anchors:
        return None
    return max(anchors, key=lambda a: len(a.get_text(strip=True)))


def main_text(html: str, url: str | None = None) -> str:
    """The article's own text, without navigation, related links or footers."""
    import trafilatura  # imported on first use: only followed pages need it

    text = trafilatura.extract(html, url=url, include_comments=False, include_tables=True, favor_recall=True)
    if text:
        return text
    soup = _soup(html)
    for tag in soup(_CHROME):
        tag.decompose()
    return "\n".join(line.strip() for line in soup.get_text("\n").splitlines() if line.strip())


def page_title(html: str) -> str:
    soup = _soup(html[:200_000])
    if soup.title and soup.title.string:
        return " ".join(soup.title.string.split())
    h1 = soup.find("h1")
    return " ".join(h1.get_text(" ").split()) if h1 else ""


def watched_text(html: str, selector: str | None, ignore: list[str]) -> str:
    """The text of a watched page that matters: inside ``selector``, without ``ignore`` parts, ads,
    scripts and page chrome; one line per block, whitespace normalised."""
    soup = _soup(html)
    root: Tag | BeautifulSoup = soup
    if selector:
        found = soup.select_one(selector)
        if found is None:
            raise PageError(f"the selector {selector!r} matches nothing on the page")
        root = found
    for tag in root(_CHROME):
        tag.decompose()
    for css in ignore:
        for tag in root.select(css):
            tag.decompose()
    strip_boilerplate(root)
    for tag in root.find_all(["p", "div", "li", "br", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section",
                              "article", "dd", "dt", "blockquote", "pre"]):
        tag.insert_before("\n")
        tag.insert_after("\n")
    lines = [" ".join(line.split()) for line in root.get_text().splitlines()]
    return "\n".join(line for line in lines if line)


def stable(line: str) -> str:
    """A line with its volatile parts (timestamps, counters) blanked, for comparing versions."""
    return " ".join(_VOLATILE.sub("#", line).split())


def added_passages(old: str | None, new: str) -> list[str]:
    """Lines of ``new`` whose stable form is not in ``old``: what the new version says that the old
    did not. A page whose only change is a timestamp or a counter yields nothing."""
    before = {stable(line) for line in (old or "").splitlines()}
    out = []
    for line in new.splitlines():
        s = stable(line)
        if s and s != "#" and s not in before:
            out.append(line)
    return out


def version_hash(text: str) -> str:
    return hashlib.sha256("\n".join(stable(line) for line in text.splitlines()).encode("utf-8")).hexdigest()


_DATE_META = ("article:published_time", "og:published_time", "pubdate", "publishdate", "publish-date", "date",
              "datepublished", "dc.date", "dc.date.issued", "sailthru.date")


def page_date(html: str) -> datetime | None:
    """An article page's publication time from its metadata (meta tags, <time datetime>)."""
    soup = _soup(html[:300_000])
    candidates: list[str] = []
    for meta in soup.find_all("meta"):
        key = str(meta.get("property") or meta.get("name") or meta.get("itemprop") or "").lower()
        if key in _DATE_META and meta.get("content"):
            candidates.append(str(meta.get("content")))
    candidates += [str(t.get("datetime")) for t in soup.find_all("time") if t.get("datetime")]
    for value in candidates:
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            continue
        return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return None
