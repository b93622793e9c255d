"""An article read once for everything the decision layer asks of it: its sentences, the cue words
and platforms in each, the rules' finding per sentence, and every date expression near a candidate.

The learned layer (``features`` → ``learned``) never reads the text again; everything it weighs is
computed here, in one pass of the cue index and one of the platform aliases over the whole article,
so that adding features costs little and the extractor stays fast.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from monitor.extract import dates, text
from monitor.extract.context import HAN, ArticleContext, PlatformHit
from monitor.extract.detector import RuleExtractor, lean
from monitor.extract.lexicon import Lexicon
from monitor.extract.model import Article, PolicyChange

#: Candidate sentences considered per article (the title and the first ones with a cue); a feed of
#: a 200-paragraph document must not cost 200 sentences of features.
MAX_CANDIDATES = 24
MAX_SENTENCES_FOR_DATES = 30
_ACTS = ("act:ban", "act:restrict", "act:allow", "act:require")
# A cheap test before the date rules run: a digit, or a word naming a day relative to the report.
_MAY_HOLD_DATE = re.compile(r"[0-9０-９]|今|昨|明|周|星期|礼拜|即日|本月|月底|today|yesterday|tomorrow|tonight|"
                            r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|immediately|now", re.I)


@dataclass
class Sentence:
    index: int
    raw: str
    text: str                                   # Simplified script
    is_title: bool
    hits: list[tuple[frozenset[str], int, int]]  # cue classes with their span in ``text``
    platforms: tuple[PlatformHit, ...]
    cues: Counter[str] = field(default_factory=Counter)
    rule: PolicyChange | None = None             # what the rules found in this sentence alone
    dates: list[dates.FoundDate] = field(default_factory=list)
    han: bool = False

    def has(self, cls: str) -> bool:
        return self.cues.get(cls, 0) > 0

    @property
    def acts(self) -> list[str]:
        return [a for a in _ACTS if self.cues.get(a)]


@dataclass
class Annotated:
    article: Article
    sentences: list[Sentence]
    candidates: list[int]           # indices into ``sentences``
    rules: list[PolicyChange]       # the rules' merged findings for the article
    ctx: ArticleContext
    has_title: bool
    ref: date | None                # the day the text was written (publication date or dateline)
    ref_cn: date | None             # the same in China's calendar
    lexicon: Lexicon
    _platform_counts: Counter[str] | None = field(default=None, repr=False, compare=False)

    @property
    def title(self) -> Sentence | None:
        return self.sentences[0] if self.has_title and self.sentences else None

    def platform_counts(self) -> Counter[str]:
        """How often each platform is named (counted once per article: several features ask)."""
        if self._platform_counts is None:
            self._platform_counts = Counter(p for s in self.sentences for p, _s, _e in s.platforms)
        return self._platform_counts


class Annotator:
    """Turns an Article into an ``Annotated`` article; holds the lexicon and the rule extractor."""

    def __init__(self, rules: RuleExtractor, use_rules: bool = True) -> None:
        self.rules = rules
        self.lexicon = rules.lexicon
        self.use_rules = use_rules  # False: the rules' findings are left out (an ablation)

    def annotate(self, article: Article) -> Annotated:
        title = article.title.strip()
        body = text.html_to_text(article.body or "")
        raw = ([title] if title else []) + text.sentences(body)
        # One look at the whole article: only one with Traditional characters is converted, sentence by
        # sentence (the raw sentences stay for the evidence quoted).
        simple = raw if text.is_simplified("".join(raw)) else [text.to_simplified(s) for s in raw]
        has_title = bool(title)
        # One pass of the cue index and one of the platform aliases over the whole article.
        joined = "\n".join(simple)
        starts = []
        pos = 0
        for s in simple:
            starts.append(pos)
            pos += len(s) + 1
        sentences = [Sentence(i, raw[i], s, i == 0 and has_title, [], (), han=bool(HAN.search(s)))
                     for i, s in enumerate(simple)]
        for classes, a, b in self.lexicon.cue_index.find(joined):
            i = bisect.bisect_right(starts, a) - 1
            sent = sentences[i]
            sent.hits.append((classes, a - starts[i], b - starts[i]))
            for c in classes:
                sent.cues[c] += 1
        hits: list[list[PlatformHit]] = [[] for _ in sentences]
        for pid, a, b in self.rules.platform_hits(joined):
            i = bisect.bisect_right(starts, a) - 1
            hits[i].append((pid, a - starts[i], b - starts[i]))
        for sent, found_here in zip(sentences, hits):
            sent.platforms = tuple(found_here)
        ctx = ArticleContext(article, simple, has_title, self.rules)
        for sent in sentences:
            ctx.prime(sent.text, sent.platforms)
        trace: dict[int, PolicyChange] = {}
        found: list[PolicyChange] = []
        # Every rule starts from a sentence naming a link: without one (most news) they find nothing.
        if self.use_rules and any(sent.cues.get("links") for sent in sentences):
            try:
                found = self.rules.extract_sentences(article, raw, simple, has_title, trace, ctx)
            except Exception:  # a rule's bug must not lose the article: the model still reads it
                found = []
        for i, change in trace.items():
            sentences[i].rule = change
        candidates = [s.index for s in sentences if self._candidate(s)][:MAX_CANDIDATES]
        ref = ctx.ref(None)
        ref_cn = ctx.ref("Asia/Shanghai")
        # Dates are read where a rule's date can be: in a candidate, next to one, or in a sentence
        # that announces or refers back to the change ("This new change was implemented on Wednesday").
        near = set(candidates)
        near.update(j for i in candidates for j in (i - 1, i + 1) if 0 <= j < len(sentences))
        near.update(sent.index for sent in sentences[:MAX_SENTENCES_FOR_DATES]
                    if sent.cues.get("refers") or sent.cues.get("announce") or sent.platforms)
        for i in sorted(near)[:MAX_SENTENCES_FOR_DATES]:
            sent = sentences[i]
            if not _MAY_HOLD_DATE.search(sent.text):
                continue
            base = ref_cn if sent.han else ref
            sent.dates = [d for d in dates.find_dates(sent.text, base or dates.UNKNOWN, lean(sent.text))
                          if base is not None or d.explicit_year]
        return Annotated(article, sentences, candidates, found, ctx, has_title, ref, ref_cn, self.lexicon)

    @staticmethod
    def _candidate(s: Sentence) -> bool:
        """A sentence the decision looks at: the title, any sentence naming a link, and any naming a
        platform and an action on something (屏蔽/封杀 + a platform, "blocks sharing")."""
        if s.is_title or s.cues.get("links"):
            return True
        return bool(s.platforms) and any(s.cues.get(a) for a in _ACTS)
