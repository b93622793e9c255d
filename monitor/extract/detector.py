"""The rule-based extractor: candidate sentences by cue words, then each field of the change.

Kept deliberately explainable: every decision (which sentence, which actor, which action) follows
from the lexicon and a handful of rules documented inline, so a wrong answer can be traced to a cue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

from monitor.extract import dates, text
from monitor.extract.lexicon import Cues, Lexicon, load
from monitor.extract.model import Article, PolicyChange

_HAN = re.compile(r"[\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]{2,}")
_ENUM_GAP = re.compile(r"^[\s、，,/和与及跟或以及]*$|^\s*(?:,|and|or|&)\s*$", re.I)
_ACTOR_BEFORE_ZH = re.compile(r"(?:在|于|对|登录|进入)\s*$")
_ACTOR_BEFORE_EN = re.compile(r"(?:\bon|\bin|\bacross)\s+$", re.I)
_TARGET_BEFORE_EN = re.compile(r"(?:links?|urls?|linking|redirects?)\s+(?:to|from|for)\b[^.;:]*$", re.I)
_TARGET_GAP_ZH = re.compile(r"^[^，。；在将发宣称布]{0,8}$")
_FORWARD_ZH = re.compile(r"将|即将|起|开始")
_BACKWARD_ZH = re.compile(r"已经|已|曾")
_FORWARD_EN = re.compile(r"\bwill\b|\bstarting\b|\bbegin", re.I)
_BACKWARD_EN = re.compile(r"\bhas\b|\bhave\b|\bhad\b|\bwas\b|\bwere\b", re.I)
_QUESTION = re.compile(r"[？?]\s*$")
_YEAR = re.compile(r"(?<!\d)(19|20)\d{2}(?=\s*年|\b)")
_DEFAULT_TYPE_BY_TARGET = {
    "taobao": "affiliate", "jd": "affiliate", "pinduoduo": "affiliate", "tmall": "third_party_product",
}
_TYPE_ORDER = ("affiliate", "third_party_product", "mini_program", "payment", "news", "social_profile",
               "external_url")


@dataclass(frozen=True)
class _Hit:
    """A cue match in a sentence."""

    cls: str
    start: int
    end: int


def _local_date(published: datetime | None, tz: str | None) -> date | None:
    """The publication date in the platform's own calendar, since effective dates are local."""
    if published is None:
        return None
    if published.tzinfo is None:
        published = published.replace(tzinfo=timezone.utc)
    return published.astimezone(ZoneInfo(tz)).date() if tz else published.date()


class Extractor:
    """Reads an Article, returns the PolicyChanges it reports (empty when none)."""

    def __init__(self, lexicon: Lexicon | None = None) -> None:
        self.lexicon = lexicon or load()

    # -- public -------------------------------------------------------------------------------------
    def extract(self, article: Article) -> list[PolicyChange]:
        body = text.html_to_text(article.body or "")
        raw_sentences = [article.title.strip()] if article.title.strip() else []
        raw_sentences += text.sentences(body)
        found: dict[tuple[str, str], PolicyChange] = {}
        for i, raw in enumerate(raw_sentences):
            sentence = text.to_simplified(raw)
            change = self._from_sentence(sentence, raw, article, is_title=(i == 0 and bool(article.title)))
            if change is None:
                continue
            key = (change.platform, change.action)
            prev = found.get(key)
            if prev is None:
                found[key] = change
            else:
                # Same change said twice in one article: keep the first statement, add what it lacks.
                found[key] = PolicyChange(
                    platform=prev.platform, action=prev.action, link_type=prev.link_type,
                    targets=tuple(dict.fromkeys(prev.targets + change.targets)),
                    effective_date=prev.effective_date or change.effective_date,
                    evidence=prev.evidence, confidence=max(prev.confidence, change.confidence),
                )
        return list(found.values())

    # -- one sentence -------------------------------------------------------------------------------
    def _cue_sets(self, sentence: str) -> list[Cues]:
        out = []
        if _HAN.search(sentence):
            out.append(self.lexicon.cues["zh"])
        if _LATIN.search(sentence):
            out.append(self.lexicon.cues["en"])
        return out

    def _action(self, sentence: str, cue_sets: list[Cues], link_at: int) -> str | None:
        """The action nearest the link word; when two action words touch, the first governs
        ("不再允许" is a ban, "解除屏蔽" and "lift the ban" are an allow)."""
        hits: list[_Hit] = []
        for cues in cue_sets:
            for action, pattern in cues.actions.items():
                hits += [_Hit(action, m.start(), m.end()) for m in pattern.finditer(sentence)]
        if not hits:
            return None
        # A match inside a longer match of another class is part of it ("no longer allow").
        hits = [h for h in hits if not any(o is not h and o.start <= h.start and h.end <= o.end
                                           and (o.end - o.start) > (h.end - h.start) for o in hits)]
        hits.sort(key=lambda h: h.start)
        governed: list[_Hit] = []
        for h in hits:
            if governed and h.start - governed[-1].end <= 4 and h.cls != governed[-1].cls:
                continue  # modified by the word just before it
            governed.append(h)
        return min(governed, key=lambda h: abs(h.start - link_at)).cls

    def _platform_hits(self, sentence: str) -> list[tuple[str, int, int]]:
        return [(self.lexicon.platform_of(m.group(0)), m.start(), m.end())
                for m in self.lexicon.alias_pattern.finditer(sentence)]

    def _targets(self, sentence: str, plats: list[tuple[str, int, int]], link_spans: list[tuple[int, int]]
                 ) -> set[int]:
        """Indexes of platform mentions whose links are affected: the ones directly before a link word
        (with an enumeration "淘宝、京东联盟商品链接"), or after "links to" in English."""
        targets: set[int] = set()
        for i, (_, s, e) in enumerate(plats):
            for ls, _le in link_spans:
                if ls >= e and _TARGET_GAP_ZH.match(sentence[e:ls]) and not re.search(r"[A-Za-z]{3,}", sentence[e:ls]):
                    targets.add(i)
            if _TARGET_BEFORE_EN.search(sentence[max(0, s - 80):s]):
                targets.add(i)
        # Extend backwards over an enumeration: "淘宝、京东联盟" makes 淘宝 a target too.
        changed = True
        while changed:
            changed = False
            for i in range(len(plats) - 1):
                if i + 1 in targets and i not in targets and _ENUM_GAP.match(sentence[plats[i][2]:plats[i + 1][1]]):
                    targets.add(i)
                    changed = True
        return targets

    def _places(self, sentence: str, plats: list[tuple[str, int, int]]) -> set[int]:
        """Mentions marked as the place where links are published ("在快手直播间", "on Twitter")."""
        return {i for i, (_pid, s, _e) in enumerate(plats)
                if _ACTOR_BEFORE_ZH.search(sentence[max(0, s - 6):s])
                or _ACTOR_BEFORE_EN.search(sentence[max(0, s - 6):s])}

    def _actor(self, sentence: str, plats: list[tuple[str, int, int]], targets: set[int],
               article: Article) -> tuple[str | None, bool]:
        """The platform whose rule changes: one marked as the place ("在快手", "on Twitter"), else the
        first platform that is not a target, else the source's platform hint."""
        others = [(i, p) for i, p in enumerate(plats) if i not in targets]
        target_ids = {plats[i][0] for i in targets}
        places = self._places(sentence, plats)
        for i, (pid, _s, _e) in others:
            if i in places and pid not in target_ids:
                return pid, True
        for _i, (pid, _s, _e) in others:
            if pid not in target_ids:
                return pid, True
        if article.platform_hint:
            return article.platform_hint, False
        return None, False

    def _link_type(self, sentence: str, cue_sets: list[Cues], targets: list[str]) -> str:
        for t in _TYPE_ORDER:
            for cues in cue_sets:
                pattern = cues.link_types.get(t)
                if pattern is not None and pattern.search(sentence):
                    return t
        for t in targets:
            if t in _DEFAULT_TYPE_BY_TARGET:
                return _DEFAULT_TYPE_BY_TARGET[t]
        return "external_url"

    def _is_background(self, sentence: str, cue_sets: list[Cues], ref: date | None) -> bool:
        """An old change recalled ("2020年8月，抖音直播也宣布禁止…") is not news."""
        for cues in cue_sets:
            if cues.past.search(sentence):
                return True
        if ref is not None:
            for m in _YEAR.finditer(sentence):
                year = int(sentence[m.start():m.start() + 4])
                if year < ref.year - 0 and not re.search(r"(?:起|开始|生效)", sentence[m.end():m.end() + 12]) \
                        and year <= ref.year - 1:
                    return True
        return False

    def _from_sentence(self, sentence: str, raw: str, article: Article, is_title: bool) -> PolicyChange | None:
        if _QUESTION.search(sentence):
            return None  # a question ("断外链可取吗？") is opinion, not an announcement
        cue_sets = self._cue_sets(sentence)
        link_spans = [(m.start(), m.end()) for cues in cue_sets for m in cues.links.finditer(sentence)]
        if not link_spans:
            return None
        action = self._action(sentence, cue_sets, link_spans[0][0])
        if action is None:
            return None
        if any(cues.hedges.search(sentence) for cues in cue_sets):
            return None
        plats = self._platform_hits(sentence)
        target_idx = self._targets(sentence, plats, link_spans) - self._places(sentence, plats)
        actor, named = self._actor(sentence, plats, target_idx, article)
        if actor is None:
            return None
        tz = self.lexicon.platforms[actor].tz if actor in self.lexicon.platforms else None
        if tz is None and _HAN.search(sentence):
            tz = "Asia/Shanghai"
        ref = _local_date(article.published, tz)
        if self._is_background(sentence, cue_sets, ref):
            return None
        targets = list(dict.fromkeys(plats[i][0] for i in sorted(target_idx) if plats[i][0] != actor))
        lean = 1
        if _BACKWARD_ZH.search(sentence) and not _FORWARD_ZH.search(sentence) or (
                _BACKWARD_EN.search(sentence) and not _FORWARD_EN.search(sentence)):
            lean = -1
        eff = None if is_title else dates.effective_date(sentence, ref, lean)
        confidence = 0.45 + (0.2 if named else 0.0) + (0.1 if eff else 0.0) + (0.1 if targets else 0.0)
        if any(cues.announce.search(sentence) for cues in cue_sets):
            confidence += 0.1
        return PolicyChange(
            platform=actor, action=action, link_type=self._link_type(sentence, cue_sets, targets),
            targets=tuple(targets), effective_date=eff, evidence=raw.strip(),
            confidence=min(confidence, 0.95),
        )
