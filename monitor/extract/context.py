"""What the sentences of one article share: when it was written (publication date, dateline, or the
latest year it names), which platform it is about, and the platforms named in each sentence, worked
out once and only when a sentence needs them (most articles have no candidate sentence at all)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, datetime, timezone
from typing import Protocol
from zoneinfo import ZoneInfo

from monitor import clock
from monitor.extract import dates
from monitor.extract.model import Article

HAN = re.compile(r"[\u4e00-\u9fff]")
YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})(?=\s*年|\b)")

PlatformHit = tuple[str, int, int]


class SentenceReader(Protocol):
    """What the context asks of the extractor (kept as a protocol so the two stay separate)."""

    def platform_hits(self, sentence: str) -> tuple[PlatformHit, ...]: ...

    def announces(self, sentence: str) -> bool: ...

    def main_platform(self, sentences: list[str], has_title: bool,
                      platforms: Callable[[str], Sequence[PlatformHit]]) -> str | None: ...


def local_date(published: datetime | None, tz: str | None) -> date | None:
    """The publication date in the platform's own calendar, since effective dates are local."""
    if published is None:
        return None
    if published.tzinfo is None:
        published = published.replace(tzinfo=timezone.utc)
    return published.astimezone(ZoneInfo(tz)).date() if tz else published.date()


class ArticleContext:
    """What the sentences of one article share; its dominant platform is worked out only when a
    sentence needs it (most articles have no candidate sentence at all)."""

    def __init__(self, article: Article, sentences: list[str], has_title: bool, reader: SentenceReader) -> None:
        self.article = article
        self._sentences = sentences
        self.has_title = has_title
        self._reader = reader
        self._main: str | None = None
        self._main_done = False
        self._dateline: date | None = None
        self._dateline_done = False
        self._hits: dict[str, tuple[PlatformHit, ...]] = {}
        self._latest_year: int | None = None
        self._announced: dict[str, bool] = {}

    def platforms(self, sentence: str) -> tuple[PlatformHit, ...]:
        """The platforms named in a sentence of this article; several passes ask for the same
        sentences and the alias pattern is the costliest match, so answers are kept per article."""
        hits = self._hits.get(sentence)
        if hits is None:
            hits = self._hits[sentence] = self._reader.platform_hits(sentence)
        return hits

    def prime(self, sentence: str, hits: tuple[PlatformHit, ...]) -> None:
        """Platform hits already found by a pass over the whole article (annotate), kept so the
        rules do not search each sentence again."""
        self._hits.setdefault(sentence, hits)

    def announces(self, sentence: str) -> bool:
        said = self._announced.get(sentence)
        if said is None:
            said = self._announced[sentence] = self._reader.announces(sentence)
        return said

    def latest_year(self) -> int | None:
        """The latest year the article names (not after this year): the best guess of when an
        undated article was written, so that "2014年…" in it still reads as history."""
        if self._latest_year is None:
            this_year = clock.utcnow().year
            years = [int(m.group(1)) for s in self._sentences for m in YEAR.finditer(s)]
            self._latest_year = max((y for y in years if y <= this_year), default=0)
        return self._latest_year or None

    def ref(self, tz: str | None) -> date | None:
        """The day the text was written: its dateline ("6月6日消息", "June 29 (Reuters)") when that is
        a few days before the publication date (a repost), else the publication date. "今日" and
        "on Tuesday" count from it."""
        published = local_date(self.article.published, tz)
        if published is None:
            return None
        if not self._dateline_done:
            self._dateline_done = True
            for sentence in self._sentences[:6]:
                found = dates.dateline(sentence, published)
                if found is not None:
                    self._dateline = found
                    break
        if self._dateline is not None and 0 < (published - self._dateline).days <= 7:
            return self._dateline
        return published

    @property
    def main_platform(self) -> str | None:
        if not self._main_done:
            self._main = self._reader.main_platform(self._sentences, self.has_title, self.platforms)
            self._main_done = True
        return self._main
