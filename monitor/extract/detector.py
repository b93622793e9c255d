"""The rule-based extractor: candidate sentences by cue words, then each field of the change.

Kept deliberately explainable: every decision (which sentence, which actor, which action, which
date) follows from the lexicon and a handful of rules documented inline, so a wrong answer can be
traced to a cue and fixed in data rather than code.

A sentence reports a link-policy change when it names a link, an action on links (ban, restrict,
allow, require) and a sign that something changes (an announcement, a date, "no longer", "将"...);
standing rules restated in a how-to have the first two but not the third. Old changes recalled as
background (an explicit earlier year, "此前", "back in") are skipped, and so are pages whose title
says they are a how-to, a guide or a lawsuit report.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date

from monitor.extract import dates, roles, text
from monitor.extract.context import HAN, YEAR, ArticleContext, PlatformHit
from monitor.extract.lexicon import Cues, Lexicon, load
from monitor.extract.model import Article, PolicyChange

_LATIN = re.compile(r"[A-Za-z]{2,}")
_BACKWARD_ZH = re.compile(r"已经|已|曾|了")
_FORWARD_ZH = re.compile(r"将|即将|起|开始")
_FORWARD_EN = re.compile(r"\bwill\b|\bstarting\b|\bbegin|\bfrom\b", re.I)
_BACKWARD_EN = re.compile(r"\bhas\b|\bhave\b|\bhad\b|\bwas\b|\bwere\b|\b\w+ed\b", re.I)
_WILL_EN = re.compile(r"\bwill\b", re.I)
# The rule waits for an event the text does not date ("when the law comes into effect").
_CONDITIONAL = re.compile(r"\b(?:when|once|if|after)\b[^.;]{0,100}\b(?:comes? into (?:force|effect)|takes? effect|"
                          r"is passed|passes|goes into effect)\b|一旦[^。；]{0,40}(?:生效|通过|实施)", re.I)
# A modal passive ("can't be added", "must be approved") states a standing rule; "have been banned"
# reports an event and still counts.
_PASSIVE_BEFORE = re.compile(r"\b(?:can|can['’]t|cannot|could|must|should|may|might|to)\s+(?:not\s+)?be\s+$", re.I)
_CONDITION_START = re.compile(r"^\s*(?:如果|如|若|倘若|一旦)(?!今|何|下|此|上|图)|^\s*If\b")
_CORNER_QUOTED = re.compile(r"「[^」]{1,20}」|『[^』]{1,20}』")
_MONTH_ONLY = re.compile(r"(?:^|今年|[，,。]\s*)(\d{1,2})\s*月(?!\s*\d{1,2}\s*[日号])(?!份?\s*起)|"
                         r"(?:^\s*(?:In|Back in)|\b[Bb]ack in|\b[Ee]arlier this year,? in)\s+(January|February|"
                         r"March|April|May|June|July|August|September|October|November|December)\b(?!\s+\d)")
_NOUN_REQUIREMENT = re.compile(r"(的|基本|相关|有关|合规)要求")
_POSTING_AFTER = re.compile(r"\s*(?:的|时间|日期|于|[:：]|了?(?:外链|链接|商品|内容|信息|笔记|视频|文章))")
_PROGRESSIVE_BEFORE = re.compile(r"\b(?:is|are)\s+(?:now\s+)?$", re.I)
_PRODUCT_NAMES = re.compile(r"开放平台|开放接口|Open Platform|不再是", re.I)  # 不再是: "is no longer", a copula
# 腾讯科技, 新浪科技…: news outlets reporting, not platforms acting.
_OUTLETS = re.compile(r"(?:腾讯|网易|新浪|搜狐|凤凰|百度)(?:科技|新闻|财经|网|娱乐)")
# ", which lets users see headlines": a clause describing what a thing does, not what changes.
_DESCRIBING_BEFORE = re.compile(r",\s*which\s+(?:\w+\s+)?$", re.I)
# ", often allowing screenshots": a participle adding a consequence or an exception.
_PARTICIPLE_BEFORE = re.compile(r",\s*(?:(?:\w+ly|often|also|thus|still|instead)\s+)?$", re.I)
# "可以挂淘宝链接的功能没有了": an action inside a modifier of a noun describes that noun.
_MODIFIER_AFTER_ZH = re.compile(r"[^，,。；;]{0,12}的(?:功能|能力|权限|入口|渠道)")
_EMBEDDED_BEFORE = re.compile(r"\b(?:how|what|where|whether)\b[^,;:.]{0,40}$", re.I)
_ASIDE = re.compile(r"[(（][^()（）]{15,}[)）]")
_QUESTION = re.compile(r"[？?]\s*$")
_LIST_INTRO = re.compile(r"[:：]\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[•·▪●◦\-*–]|\d{1,2}[.、)]|[（(]?[一二三四五六七八九十]+[、)）])\s*")
_DEFAULT_TYPE_BY_TARGET = {
    "taobao": "affiliate", "jd": "affiliate", "pinduoduo": "affiliate", "tmall": "third_party_product",
}
_TYPE_ORDER = ("affiliate", "third_party_product", "mini_program", "payment", "news", "social_profile",
               "external_url")

def lean(sentence: str) -> int:
    """Which way a year-less date leans: back for a report of what has happened ("已", "has
    banned"), forward otherwise (announcements of what will happen)."""
    if (_BACKWARD_ZH.search(sentence) and not _FORWARD_ZH.search(sentence)) or (
            _BACKWARD_EN.search(sentence) and not _FORWARD_EN.search(sentence)):
        return -1
    return 1


@dataclass(frozen=True)
class _Hit:
    """A cue match in a sentence."""

    cls: str
    start: int
    end: int


class RuleExtractor:
    """Reads an Article, returns the PolicyChanges its rules find (empty when none).

    The learned extractor (``monitor.extract.extractor``) uses these rules as one source of
    candidates and features, not as the verdict."""

    def __init__(self, lexicon: Lexicon | None = None) -> None:
        self.lexicon = lexicon or load()

    # -- public -------------------------------------------------------------------------------------
    def extract(self, article: Article) -> list[PolicyChange]:
        title = text.to_simplified(article.title.strip())
        body = text.html_to_text(article.body or "")
        raw_sentences = [article.title.strip()] if title else []
        raw_sentences += text.sentences(body)
        simple = [text.to_simplified(s) for s in raw_sentences]
        return self.extract_sentences(article, raw_sentences, simple, bool(title))

    def extract_sentences(self, article: Article, raw_sentences: list[str], simple: list[str], has_title: bool,
                          trace: dict[int, PolicyChange] | None = None,
                          ctx: ArticleContext | None = None) -> list[PolicyChange]:
        """The rules over an article already split into sentences (``simple`` in Simplified script,
        the title first when ``has_title``); ``trace`` receives each sentence's own finding."""
        title = simple[0] if has_title else ""
        if title and self._is_howto(title):
            return []
        ctx = ctx or ArticleContext(article, simple, bool(title), self)
        by_platform: dict[str, list[PolicyChange]] = {}
        intro: str | None = None  # the sentence introducing the list the current sentence is in
        # An announcement just before ("…正式推出了红猫计划。商家可以…挂上链接") makes the rule sentence
        # that follows it the change itself. (A headline does not: "…规范的制定和实施" heads explainers.)
        changelog = bool(title) and self._is_changelog(title)
        for i, sentence in enumerate(simple):
            if i > 0 and _LIST_INTRO.search(simple[i - 1]):
                intro = simple[i - 1]
            elif not _LIST_ITEM.match(sentence):
                intro = None
            follows = simple[i - 1] if i > 1 or (i == 1 and not title) else None

            def in_context(follows: str | None = follows) -> bool:
                return changelog or (follows is not None and ctx.announces(follows))

            change = self._from_sentence(sentence, raw_sentences[i], ctx, is_title=(i == 0 and bool(title)),
                                         previous=intro, announced=in_context)
            if change is not None and trace is not None:
                trace[i] = change
            if change is not None:
                if not change.extra.get("marked") and not (i == 0 and title):
                    change = self._date_nearby(change, simple, i, ctx, announced_before=in_context())
                by_platform.setdefault(change.platform, []).append(change)
        merged = [self._merge(mentions) for mentions in by_platform.values()]
        if changelog:
            # "What's Changed (December 1, 2017)": the changelog's own date dates its rules.
            stamp = next((d for d in dates.find_dates(title, ctx.ref(None) or dates.UNKNOWN)
                          if d.explicit_year), None)
            if stamp is not None:
                merged = [c if c.effective_date else replace(c, effective_date=stamp.value) for c in merged]
        merged = [c if c.effective_date else self._article_date(c, simple, ctx) for c in merged]
        return [self._article_targets(c, simple, ctx) for c in merged]

    def _article_targets(self, change: PolicyChange, simple: list[str], ctx: ArticleContext) -> PolicyChange:
        """The full list of whose links are affected is often spelled out apart from the rule ("The
        company specifies the prohibited platforms are Facebook, Instagram, Mastodon…"): an
        enumeration of platforms in a sentence with the same action joins the targets."""
        extra: list[str] = []
        for j, sentence in enumerate(simple):
            if j == 0 and ctx.has_title:
                continue
            every = ctx.platforms(sentence)
            if len({p for p, _s, _e in every} - {change.platform}) < 3:
                continue  # too few platforms for a list
            cue_sets = self._cue_sets(sentence)
            acts = [m.end() for cues in cue_sets if change.action in cues.actions
                    for m in cues.actions[change.action].finditer(sentence)]
            if not acts or self._is_background(sentence, cue_sets, ctx.ref(None), ctx.latest_year()) or any(
                    cues.unchanged.search(sentence) for cues in cue_sets):
                continue
            has_link = any(cues.links.search(sentence) for cues in cue_sets)
            plats = [p for p in every if p[0] != change.platform]
            runs: list[list[PlatformHit]] = []
            for k, hit in enumerate(plats):
                if k and roles.ENUM_GAP_LOOSE.match(sentence[plats[k - 1][2]:hit[1]]):
                    runs[-1].append(hit)
                else:
                    runs.append([hit])
            for run in runs:
                # The list must be of links ("links to A, B, C") or of what the action names
                # ("the prohibited platforms are A, B, C"), not any list in a sentence with a verb.
                near = any(0 <= run[0][1] - end <= 40 for end in acts)
                # Another platform named before the list is its subject: the list is that one's
                # partners or targets ("淘宝天猫已与微博、微信、B站…建立合作"), not this change's.
                other_subject = any(e <= run[0][1] and p != change.platform for p, _s, e in every)
                if len({p for p, _s, _e in run}) >= 3 and (has_link or near) and not other_subject:
                    extra += [p for p, _s, _e in run]
        if not extra:
            return change
        return replace(change, targets=tuple(dict.fromkeys([*change.targets, *extra])))

    def _article_date(self, change: PolicyChange, simple: list[str], ctx: ArticleContext) -> PolicyChange:
        """Reports often state the rule in one sentence and date it in another that names the same
        platform and what it did ("昨日 Twitter 宣布禁止…", "微信从 2 月 11 日起…进行了限制",
        "X began … on Tuesday"). Such a sentence dates the change when it is not background and its
        date is marked as a start, a deadline or a day of the announcement; a date merely mentioned
        elsewhere in the article is never taken."""
        tz = self.lexicon.platforms[change.platform].tz if change.platform in self.lexicon.platforms else None
        candidates: list[tuple[dates.FoundDate, str]] = []
        for j, sentence in enumerate(simple):
            if (j == 0 and ctx.has_title) or _QUESTION.search(sentence):
                continue
            cue_sets = self._cue_sets(sentence)
            if change.platform not in {p for p, _s, _e in ctx.platforms(sentence)} and not any(
                    cues.refers.search(sentence) for cues in cue_sets):
                continue  # neither names the platform nor refers back to the change ("this change")
            ref = ctx.ref(tz or ("Asia/Shanghai" if HAN.search(sentence) else None))
            if self._is_background(sentence, cue_sets, ref, ctx.latest_year()) or _CONDITIONAL.search(sentence):
                continue
            acts = {a for cues in cue_sets for a, p in cues.actions.items() if p.search(sentence)}
            announces = any(cues.announce.search(sentence) for cues in cue_sets)
            if acts and change.action not in acts:
                continue  # about something else the platform did (the ban that a restoration undoes)
            found = list(dates.find_dates(sentence, ref or dates.UNKNOWN, lean(sentence)))
            if ref is None:
                found = [d for d in found if d.explicit_year]
            # A date marked as a start or deadline counts anywhere; a full date or a day named relative to
            # the report only where the sentence says the platform acted ("宣布", "implemented").
            candidates += [(d, sentence) for d in found if not d.said and (
                d.marked or ((acts or announces) and (d.explicit_year or d.relative)))]
        if not candidates:
            return change
        # A date marked as the start ("8月5日正式上线") beats the day the plan was announced.
        best, by = next(((d, s) for d, s in candidates if d.marked), candidates[0])
        return replace(change, effective_date=best.value, extra={**change.extra, "dated_by": by})

    def _date_nearby(self, change: PolicyChange, simple: list[str], i: int, ctx: ArticleContext,
                     announced_before: bool = False) -> PolicyChange:
        """A rule and its date are often a sentence apart ("…we will prohibit sharing links…" then
        "enforcement will be delayed until August 17"); only a date marked as the start of a rule
        ("起", "starting", "effective", "until") in the next or previous sentence is taken, or any
        date of the announcement just before that the rule belongs to ("5月7日，…正式推出了…")."""
        tz = self.lexicon.platforms[change.platform].tz if change.platform in self.lexicon.platforms else None
        ref = ctx.ref(tz or ("Asia/Shanghai" if HAN.search(simple[i]) else None))
        for j in (i + 1, i - 1, i + 2):
            if j < 0 or (j == 0 and ctx.has_title) or j >= len(simple):
                continue
            cue_sets = self._cue_sets(simple[j])
            if self._is_background(simple[j], cue_sets, ref, ctx.latest_year()):
                continue
            found = [d for d in dates.find_dates(simple[j], ref or dates.UNKNOWN, 1)
                     if (d.marked or (announced_before and j == i - 1 and not d.said and not d.relative))
                     and (ref is not None or d.explicit_year)]
            if found:
                best = next((d for d in found if d.marked), found[0])
                return replace(change, effective_date=best.value,
                               extra={**change.extra, "marked": best.marked, "deadline": best.deadline})
        return change

    @staticmethod
    def _merge(mentions: list[PolicyChange]) -> PolicyChange:
        """One platform's statements in one article describe one change: the strongest sentence of the
        body speaks for it (the headline only when the body says nothing), its date comes from the
        statement that gives one, and the targets of all statements are kept."""
        body = [m for m in mentions if not m.extra.get("title")] or mentions
        best = max(body, key=lambda m: (m.confidence, m.effective_date is not None, -body.index(m)))
        # A date marked as the start of the rule beats a date merely mentioned; among equals, the
        # latest, since an article recounting steps reports the newest one.
        dated = [m for m in body if m.effective_date is not None] or [m for m in mentions if m.effective_date]
        marked = [m for m in dated if m.extra.get("marked")]
        starts = [m for m in marked if not m.extra.get("deadline")]  # "3月25日起" before "6月30日前"
        pool = starts or marked or dated
        eff = max((m.effective_date for m in pool if m.effective_date), default=None)
        targets = tuple(dict.fromkeys(t for m in mentions for t in m.targets))
        return PolicyChange(platform=best.platform, action=best.action, link_type=best.link_type, targets=targets,
                            effective_date=eff, evidence=best.evidence,
                            confidence=max(m.confidence for m in mentions))

    # -- article level ------------------------------------------------------------------------------
    def _is_howto(self, title: str) -> bool:
        return any(cues.howto.search(title) for cues in self._cue_sets(title))

    def main_platform(self, sentences: list[str], has_title: bool,
                       platforms: Callable[[str], Sequence[PlatformHit]]) -> str | None:
        """The platform the article is about: the first named in the title, else the most named."""
        if has_title and sentences:
            hits = platforms(sentences[0])
            if hits:
                return hits[0][0]
        counts = Counter(p for s in sentences[:12] for p, _s, _e in platforms(s))
        return counts.most_common(1)[0][0] if counts else None

    # -- one sentence -------------------------------------------------------------------------------
    def _cue_sets(self, sentence: str) -> list[Cues]:
        out = []
        if HAN.search(sentence):
            out.append(self.lexicon.cues["zh"])
        if _LATIN.search(sentence):
            out.append(self.lexicon.cues["en"])
        return out

    def _action(self, sentence: str, all_hits: list[_Hit], link_at: int) -> _Hit | None:
        """The action nearest the link word; when two action words touch, the first governs
        ("不再允许" is a ban, "解除屏蔽" and "lift the ban" are an allow)."""
        # ", which lets users see headlines" describes what a thing does; ", which bans links" may
        # well be the change, so only permissions are read as description.
        hits = [h for h in all_hits
                if not (h.cls == "allow" and (_DESCRIBING_BEFORE.search(sentence[max(0, h.start - 30):h.start])
                                              or _PARTICIPLE_BEFORE.search(sentence[max(0, h.start - 20):h.start])
                                              and sentence[h.start:h.end].lower().endswith("ing")))
                and not _MODIFIER_AFTER_ZH.match(sentence[h.end:h.end + 16])]
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
        return min(governed, key=lambda h: abs(h.start - link_at))

    @staticmethod
    def _action_hits(sentence: str, cue_sets: list[Cues]) -> list[_Hit]:
        return [_Hit(action, m.start(), m.end()) for cues in cue_sets for action, pattern in cues.actions.items()
                for m in pattern.finditer(sentence)]

    def platform_hits(self, sentence: str) -> tuple[PlatformHit, ...]:
        if HAN.search(sentence):
            sentence = _OUTLETS.sub(lambda m: "_" * len(m.group(0)), sentence)
        return tuple((self.lexicon.platform_of(m.group(0)), m.start(), m.end())
                     for m in self.lexicon.alias_pattern.finditer(sentence))

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

    @staticmethod
    def _says_change(sentence: str, cue_sets: list[Cues], cls: str = "change") -> bool:
        """A change (or announcement) cue that is not part of a passive or of posting: "can't be
        added", "发布的外链" and "发布外链之前" (links that are posted) describe a standing rule."""
        # An aside in parentheses ("(the platform now exposes up to five…)") does not make the
        # sentence around it news.
        sentence = _ASIDE.sub(lambda m: "(" + "_" * (len(m.group(0)) - 2) + ")", sentence)
        for cues in cue_sets:
            for m in getattr(cues, cls).finditer(sentence):
                if _PASSIVE_BEFORE.search(sentence[max(0, m.start() - 12):m.start()]):
                    continue
                if m.group(0) == "发布" and _POSTING_AFTER.match(sentence[m.end():m.end() + 6]):
                    continue
                if m.group(0).lower() == "will" and _EMBEDDED_BEFORE.search(sentence[max(0, m.start() - 50):m.start()]):
                    continue  # "determine how link previews will be displayed": a question inside, not news
                return True
        return False

    def _is_background(self, sentence: str, cue_sets: list[Cues], ref: date | None,
                       year_now: int | None = None) -> bool:
        """An old change recalled ("2020年8月，抖音直播也宣布禁止…") is not news. Without a publication
        date, ``year_now`` (the latest year the article names) stands in for its year."""
        if any(cues.past.search(sentence) for cues in cue_sets):
            return True
        if ref is not None:
            # "今年7月，工信部启动…" in November, "In July, Twitter said…" in October: months ago.
            for m in _MONTH_ONLY.finditer(sentence):
                month = int(m.group(1)) if m.group(1) else dates.month_number(m.group(2))
                if month and month <= ref.month - 2:
                    return True
        year = ref.year if ref is not None else year_now
        if year is not None:
            for m in YEAR.finditer(sentence):
                if int(m.group(1)) < year and not re.match(r"\s*年?\s*\d{1,2}\s*月\s*\d{1,2}\s*日?\s*(?:起|开始)",
                                                               sentence[m.end():m.end() + 14]):
                    return True
        return False

    def _date(self, sentence: str, previous: str | None, ref: date | None, lean: int, is_title: bool
              ) -> dates.FoundDate | None:
        """The effective date: from the sentence itself, else from a sentence that introduces it as
        a list ("…effective March 5, 2024:"), never from elsewhere in the article."""
        if is_title:
            found = dates.find_dates(sentence, ref or dates.UNKNOWN, lean)
            explicit = [d for d in found if d.explicit_year or (d.marked and ref is not None)]
            return explicit[0] if explicit else None
        eff = dates.best_date(sentence, ref, lean)
        if eff is None and previous and _LIST_INTRO.search(previous):
            eff = dates.best_date(previous, ref, lean)
        return eff

    def _is_changelog(self, title: str) -> bool:
        """A title that heads a list of rule changes: "What's Changed", "更新公告", or a verb revising
        a policy before the policy it revises ("Google changes Chrome extension policies")."""
        for cues in self._cue_sets(title):
            if cues.changelog.search(title):
                return True
            verb = cues.revises.search(title)
            if verb and cues.policy.search(title, verb.end()):
                return True
        return False

    def announces(self, sentence: str) -> bool:
        cue_sets = self._cue_sets(sentence)
        return self._says_change(sentence, cue_sets, "announce") and not any(
            cues.past.search(sentence) for cues in cue_sets)

    def _from_sentence(self, sentence: str, raw: str, ctx: ArticleContext, is_title: bool,
                       previous: str | None, announced: Callable[[], bool] = lambda: False
                       ) -> PolicyChange | None:
        cue_sets = self._cue_sets(sentence)
        if not any(cues.links.search(sentence) for cues in cue_sets):
            return None  # most sentences name no link: the cheapest test first
        if _QUESTION.search(sentence) and not is_title:
            return None  # a question in the text ("断外链可取吗？") is opinion, not an announcement
        if _CONDITION_START.match(sentence):
            return None  # "如商家未整改，平台将下架…": the penalty clause of a rule, not a change
        # A name in corner quotes (「不再关注」 is a button) says nothing about a rule.
        sentence = _CORNER_QUOTED.sub(lambda m: "「" + "_" * (len(m.group(0)) - 2) + "」", sentence)
        # "…的基本要求" is a noun: a principle restated, not someone requiring something.
        sentence = _NOUN_REQUIREMENT.sub(lambda m: m.group(1) + "__", sentence)
        # Product names that contain an action word ("微信开放平台") name no action.
        sentence = _PRODUCT_NAMES.sub(lambda m: "_" * len(m.group(0)), sentence)
        if any(cues.unchanged.search(sentence) for cues in cue_sets):
            return None  # "users will still be able to view links": what does not change
        link_spans = [(m.start(), m.end()) for cues in cue_sets for m in cues.links.finditer(sentence)]
        if not link_spans:
            return None
        all_actions = self._action_hits(sentence, cue_sets)
        action = self._action(sentence, all_actions, link_spans[0][0])
        if action is None:
            return None
        hedged = any(cues.hedges.search(sentence) for cues in cue_sets)
        plats = ctx.platforms(sentence)
        action_spans = [(h.start, h.end) for h in all_actions]
        target_idx = roles.targets(sentence, plats, link_spans, action_spans) - roles.places(sentence, plats)
        actor, named = roles.actor(sentence, plats, target_idx, action.start, ctx)
        if actor is None:
            return None
        tz = self.lexicon.platforms[actor].tz if actor in self.lexicon.platforms else None
        if tz is None and HAN.search(sentence):
            tz = "Asia/Shanghai"
        ref = ctx.ref(tz)
        if self._is_background(sentence, cue_sets, ref, ctx.latest_year()):
            return None
        when = self._date(sentence, previous, ref, lean(sentence), is_title)
        if (when is not None and not when.marked and ref is not None and when.value < ref
                and _WILL_EN.search(sentence)):
            # "said on Monday it will restore…": when it was said, not when the rule applies. (Only in
            # English: Chinese 将 is as often "to take" — 将链接分享到… — as "will".)
            when = None
        if when is not None and not when.marked and _CONDITIONAL.search(sentence):
            when = None
        eff = when.value if when else None
        # "X is throttling traffic to…": an action in progress is a change under way.
        in_progress = bool(_PROGRESSIVE_BEFORE.search(sentence[max(0, action.start - 12):action.start])
                           and re.match(r"\w+ing\b", sentence[action.start:]))
        changing = (is_title or in_progress or eff is not None or self._says_change(sentence, cue_sets)
                    or announced())
        if not changing:
            return None  # a standing rule restated ("链接不能包含二维码") is not a change
        targets = list(dict.fromkeys(plats[i][0] for i in sorted(target_idx) if plats[i][0] != actor))
        confidence = 0.5 + (0.2 if named else 0.0) + (0.1 if eff else 0.0) + (0.1 if targets else 0.0)
        if hedged:
            confidence -= 0.2
        kind = action.cls
        if actor in self.lexicon.platforms and self.lexicon.platforms[actor].regulator:
            kind = "require"  # a regulator cracking down on link blocking obliges platforms to unblock
        return PolicyChange(
            platform=actor, action=kind, link_type=self._link_type(sentence, cue_sets, targets),
            targets=tuple(targets), effective_date=eff, evidence=_LIST_ITEM.sub("", raw.strip(), count=1),
            confidence=round(min(max(confidence, 0.05), 0.95), 3),
            extra={"title": is_title, "marked": bool(when and when.marked),
                   "deadline": bool(when and when.deadline)},
        )
