"""Features for the learned decisions, computed from an annotated article.

Four decisions, four kinds of candidate: sentences (does this one state a change?), the article (does
it report one?), platforms (which one acts?) and dates (which one is the change's, if any?), plus the
action of the chosen platform. Features are named (``c:links``, ``link&act``, ``date:marked``) so a
decision can be explained by its heaviest weights; word and character n-grams are hashed (``h:…``)
so the model file holds numbers, never text. Platform names are masked in n-grams, so "X bans links"
teaches the same thing whichever platform X is.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from monitor.extract.annotate import Annotated, Sentence
from monitor.extract.dates import FoundDate

Features = dict[str, float]

HASH_BITS = 18
_MASK = (1 << HASH_BITS) - 1
_CUES = ("links", "change", "announce", "refers", "unchanged", "past", "hedges", "howto", "changelog",
         "revises", "policy", "genre", "linkish", "accounts", "scope")
ACTIONS = ("ban", "restrict", "allow", "require")
_ACT_CLS = tuple(f"act:{a}" for a in ACTIONS)
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'’\-]*|[0-9]+|[\u4e00-\u9fff]")
_QUESTION_TITLE = re.compile(r"[?？]|吗\s*$|^\s*(?:why|how|what|does|do|can|is|are|should)\b", re.I)
_CONDITION = re.compile(r"^\s*(?:如果|如|若|倘若|一旦)(?!今|何|下|此|上|图)|^\s*If\b")
_QUOTE_START = re.compile(r"^\s*[\"“「『]")
_LEGAL = re.compile(r"^\s*(?:第[一二三四五六七八九十百零0-9]+条|[（(][一二三四五六七八九十]+[)）])|《(?:规定|办法|条例)》|本(?:规定|办法|条例)|"
                    r"^\s*(?:不得|禁止|应当)")


def _b(x: float, edges: Iterable[float]) -> str:
    """The bucket of ``x`` among ``edges``: "le3" means x <= 3, "gt10" beyond the last edge."""
    last = 0.0
    for e in edges:
        last = e
        if x <= e:
            return f"le{e:g}"
    return f"gt{last:g}"


_HASHES: dict[str, int] = {}


def hashed(prefix: str, grams: Iterable[str]) -> Features:
    """n-gram features named by a stable hash (CRC-32; Python's own hash changes between runs).
    Words recur from article to article, so their hashes are kept (up to a bound)."""
    cache = _HASHES
    if len(cache) > 500_000:
        cache.clear()
    out: Features = {}
    for g in grams:
        h = cache.get(g)
        if h is None:
            h = cache[g] = zlib.crc32(g.encode("utf-8")) & _MASK
        out[f"h:{prefix}:{h}"] = 1.0
    return out


def grams(s: Sentence) -> list[str]:
    """Word unigrams and bigrams (English), character unigrams and bigrams (Chinese), with platform
    names masked and numbers folded."""
    t = s.text
    if s.platforms:
        parts, last = [], 0
        for _p, a, b in s.platforms:
            parts.append(t[last:a])
            parts.append(" PLATFORM ")
            last = b
        parts.append(t[last:])
        t = "".join(parts)
    toks = [("0" if w.isdigit() else w.lower()) for w in _TOKEN.findall(t)]
    out = list(toks)
    out += [a + " " + b for a, b in zip(toks, toks[1:])]
    return out


# -- sentences -------------------------------------------------------------------------------------
def _min_gap(s: Sentence, a: str, b: str) -> float | None:
    """Characters between the nearest cue of class ``a`` and one of class ``b`` in the sentence."""
    spans_a = [(x, y) for c, x, y in s.hits if a in c]
    spans_b = [(x, y) for c, x, y in s.hits if b in c]
    best: float | None = None
    for x1, y1 in spans_a:
        for x2, y2 in spans_b:
            gap = max(x2 - y1, x1 - y2, 0)
            best = gap if best is None else min(best, gap)
    return best


def sentence_features(a: Annotated, s: Sentence, with_grams: bool = True) -> Features:
    f: Features = {"bias:s": 1.0}
    for c in _CUES:
        if s.cues.get(c):
            f[f"c:{c}"] = 1.0
    acts = [c for c in _ACT_CLS if s.cues.get(c)]
    for c in acts:
        f[f"c:{c}"] = 1.0
    link, act = bool(s.cues.get("links")), bool(acts)
    linkish = bool(s.cues.get("linkish"))
    change = bool(s.cues.get("change") or s.cues.get("announce"))
    # A source that speaks for a platform (its rules page) names it in every sentence implicitly.
    named = {p for p, _x, _y in s.platforms} | ({a.article.platform_hint} if a.article.platform_hint else set())
    if not named and _LEGAL.search(s.text):
        # A clause of a rule ("第九条", "（九）不得…", "《规定》明确") speaks for the regulator that issued
        # it, named elsewhere in the article.
        named = {p for p in a.platform_counts() if (info := a.lexicon.platforms.get(p)) is not None and info.regulator}
    plat = bool(named)
    if plat:
        f["plat"] = 1.0
        f[f"plats:{_b(len(named), (1, 2))}"] = 1.0
    conj = {"link&act": link and act, "link&act&change": link and act and change, "plat&act": plat and act,
            "plat&act&link": plat and act and link, "plat&act&change": plat and act and change,
            "all4": plat and act and link and change, "act&change": act and change, "link&change": link and change,
            "linkish&act": linkish and act and not link, "plat&act&linkish": plat and act and linkish and not link,
            "plat&act&plat": plat and act and len({p for p, _x, _y in s.platforms}) > 1}
    for k, v in conj.items():
        if v:
            f[k] = 1.0
            if s.is_title:
                f["title&" + k] = 1.0
    if link and act:
        gap = _min_gap(s, "links", "act:ban") if "act:ban" in acts else None
        gaps = [g for g in (_min_gap(s, "links", c) for c in acts) if g is not None]
        if gaps:
            f[f"gap:link-act:{_b(min(gaps), (2, 6, 15, 30))}"] = 1.0
        if gap is not None and gap <= 6:
            f["near:ban-link"] = 1.0
    if s.platforms and act:
        first_plat = s.platforms[0][1]
        first_act = min(x for c, x, _y in s.hits if any(k in c for k in _ACT_CLS))
        f["plat<act" if first_plat < first_act else "act<plat"] = 1.0
    if s.is_title:
        f["title"] = 1.0
    else:
        pos = s.index - (1 if a.has_title else 0)
        f[f"pos:{_b(pos, (0, 2, 5, 10))}"] = 1.0
    t = s.text
    if t.rstrip().endswith(("?", "？")):
        f["question"] = 1.0
    if _CONDITION.match(t):
        f["condition"] = 1.0
    if _QUOTE_START.match(t):
        f["quoted"] = 1.0
    f[f"len:{_b(len(t), (30, 80, 160, 300))}"] = 1.0
    f["han" if s.han else "latin"] = 1.0
    if s.rule is not None:
        f["rule"] = 1.0
        f[f"rule:{s.rule.action}"] = 1.0
        if s.rule.effective_date is not None:
            f["rule:dated"] = 1.0
    ref = a.ref_cn if s.han else a.ref
    for d in s.dates:
        f["date"] = 1.0
        for name in ("marked", "deadline", "said", "relative", "explicit_year"):
            if getattr(d, name):
                f[f"date:{name}"] = 1.0
        if ref is not None:
            f[f"date:when:{_when(d.value, ref)}"] = 1.0
    if with_grams:
        f.update(hashed("s", grams(s)))
    return f


def _when(value: date, ref: date) -> str:
    days = (value - ref).days
    if days > 60:
        return "future>60"
    if days > 0:
        return "future"
    if days == 0:
        return "same"
    if days >= -7:
        return "week"
    if days >= -60:
        return "months"
    return "old"


# -- articles --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SentenceScores:
    """The sentence model's score of each candidate, and the best one."""

    scores: dict[int, float]

    def best(self, among: Iterable[int] | None = None) -> int | None:
        pool = [(v, -i) for i, v in self.scores.items() if among is None or i in set(among)]
        return -max(pool)[1] if pool else None


def article_features(a: Annotated, sc: SentenceScores) -> Features:
    """Whether the article reports a change, from its sentences' scores, its title's cues and its
    shape. No title n-grams: the sentence model already reads the title's words, and title n-grams
    fitted again on ~500 articles learned topics rather than reports (cross-validated F1 0.8671 ->
    0.8753 without them)."""
    f: Features = {"bias:a": 1.0}
    vals = sorted(sc.scores.values(), reverse=True)
    top = vals[0] if vals else 0.0
    f["s:max"] = top
    f["s:2nd"] = vals[1] if len(vals) > 1 else 0.0
    f["s:top3"] = sum(vals[:3]) / 3
    f["s:n50"] = math.log1p(sum(v >= 0.5 for v in vals))
    f[f"s:maxb:{_b(top, (0.1, 0.3, 0.5, 0.7, 0.9))}"] = 1.0
    title = a.title
    if title is not None:
        f["s:title"] = sc.scores.get(title.index, 0.0)
        tt = title.text
        if _QUESTION_TITLE.search(tt):
            f["t:question"] = 1.0
        for c in ("howto", "genre", "hedges", "past", "changelog", "links", "change", "announce", "linkish", "accounts"):
            if title.cues.get(c):
                f[f"t:{c}"] = 1.0
        if any(title.cues.get(c) for c in _ACT_CLS):
            f["t:act"] = 1.0
        if title.platforms:
            f["t:plat"] = 1.0
    else:
        f["no_title"] = 1.0
    lead = next((s for s in a.sentences if not s.is_title), None)
    if lead is not None:
        f["s:lead"] = sc.scores.get(lead.index, 0.0)
    body = [s for s in a.sentences if not s.is_title]
    n = len(body)
    f[f"n:{_b(n, (1, 3, 8, 20, 50))}"] = 1.0
    links = sum(1 for s in body if s.cues.get("links"))
    f["links:log"] = math.log1p(links)
    f["links:frac"] = links / n if n else 0.0
    f["past:frac"] = sum(1 for s in body if s.cues.get("past")) / n if n else 0.0
    f["howto:any"] = float(any(s.cues.get("howto") or s.cues.get("genre") for s in body[:3]))
    plats = set(a.platform_counts()) | ({a.article.platform_hint} if a.article.platform_hint else set())
    f[f"platforms:{_b(len(plats), (0, 1, 2, 4))}"] = 1.0
    f["published" if a.article.published else "undated"] = 1.0
    if a.rules:
        f["r:fired"] = 1.0
        f["r:conf"] = max(c.confidence for c in a.rules)
        if any(c.effective_date for c in a.rules):
            f["r:dated"] = 1.0
        if title is not None and title.rule is not None:
            f["r:title"] = 1.0
    return f


# -- platforms -------------------------------------------------------------------------------------
def platform_candidates(a: Annotated, sc: SentenceScores) -> dict[str, Features]:
    """Every platform the article names (and the source's own), with what makes it the actor."""
    counts = a.platform_counts()
    hint = a.article.platform_hint
    rule_platforms = {c.platform for c in a.rules}
    rule_targets = {t for c in a.rules for t in c.targets}
    best = sc.best()
    ranked = sorted(sc.scores.items(), key=lambda kv: -kv[1])[:3]
    top3 = {i for i, _v in ranked}
    total = sum(counts.values()) or 1
    out: dict[str, Features] = {}
    pids = list(dict.fromkeys([*counts, *rule_platforms, *([hint] if hint else [])]))
    first_seen: dict[str, int] = {}
    for s in a.sentences:
        for p, _x, _y in s.platforms:
            first_seen.setdefault(p, s.index)
    title = a.title
    for pid in pids:
        f: Features = {"bias:p": 1.0}
        n = counts.get(pid, 0)
        f["p:share"] = n / total
        f[f"p:n:{_b(n, (0, 1, 3, 8))}"] = 1.0
        if pid in first_seen:
            f[f"p:first:{_b(first_seen[pid], (0, 1, 3, 8))}"] = 1.0
        if title is not None and title.platforms:
            tp = [p for p, _x, _y in title.platforms]
            if pid in tp:
                f["p:title"] = 1.0
                if tp[0] == pid:
                    f["p:title:first"] = 1.0
                acts = [x for c, x, _y in title.hits if any(k in c for k in _ACT_CLS)]
                pos = next(x for p, x, _y in title.platforms if p == pid)
                if acts and pos < min(acts):
                    f["p:title:subject"] = 1.0
        if pid == hint:
            f["p:hint"] = 1.0
        if pid in rule_platforms:
            f["p:rule"] = 1.0
        if pid in rule_targets:
            f["p:rule_target"] = 1.0
        for i in top3:
            s = a.sentences[i]
            if pid in {p for p, _x, _y in s.platforms}:
                f["p:in_top3"] = 1.0
                if i == best:
                    f["p:in_best"] = 1.0
            if s.rule is not None and s.rule.platform == pid:
                f["p:actor_top3"] = 1.0
                if i == best:
                    f["p:actor_best"] = 1.0
            if s.rule is not None and pid in s.rule.targets:
                f["p:target_top3"] = 1.0
        for tag, idxs in (("t", [title.index] if title is not None else []), ("s", sorted(top3))):
            for i in idxs:
                for role in _roles(a.sentences[i], pid):
                    f[f"p:{tag}:{role}"] = 1.0
        info = a.lexicon.platforms.get(pid)
        if info is not None and info.regulator:
            f["p:regulator"] = 1.0
        out[pid] = f
    return out


_AGENT_BEFORE = re.compile(r"(?:被|遭|由|受到)\s*$|\bby\s+(?:the\s+)?$", re.I)
_PATIENT_AFTER = re.compile(r"^\s*(?:被|遭到?|遭受)")


def _roles(s: Sentence, pid: str) -> set[str]:
    """Where ``pid`` stands to the actions of a sentence: the subject before them, the object right
    after one, the agent of a passive ("被微信屏蔽", "blocked by X") or its patient ("快的被…封杀")."""
    out: set[str] = set()
    acts = [(x, y) for c, x, y in s.hits if any(k in c for k in _ACT_CLS)]
    if not acts:
        return out
    first = min(x for x, _y in acts)
    for p, x, y in s.platforms:
        if p != pid:
            continue
        if _AGENT_BEFORE.search(s.text[max(0, x - 6):x]):
            out.add("agent")
        if _PATIENT_AFTER.match(s.text[y:y + 4]):
            out.add("patient")
        if y <= first and not any(q != pid and y <= qx <= first for q, qx, _qy in s.platforms):
            out.add("subject")
        if any(0 <= x - ay <= 12 for _ax, ay in acts):
            out.add("object")
    return out


# -- action ----------------------------------------------------------------------------------------
def _action_hits(s: Sentence) -> list[tuple[int, str]]:
    """(position, action class) of every action word in the sentence."""
    return [(x, c) for classes, x, _y in s.hits for c in classes if c in _ACT_CLS]


def _nearest_action(s: Sentence) -> str | None:
    """The action class named nearest a link word in the sentence, if it names both."""
    acts = _action_hits(s)
    links = [x for c, x, _y in s.hits if "links" in c or "linkish" in c]
    if not acts or not links:
        return None
    return min(acts, key=lambda xc: min(abs(xc[0] - lx) for lx in links))[1]


def _nearest_votes(a: Annotated) -> dict[str, int]:
    """For each candidate sentence that names a link and an action: the action class named nearest
    the link word, counted over the article."""
    votes = {c: 0 for c in _ACT_CLS}
    for i in a.candidates:
        nearest = _nearest_action(a.sentences[i])
        if nearest is not None:
            votes[nearest] += 1
    return votes


def action_candidates(a: Annotated, platform: str, evidence: int | None) -> dict[str, Features]:
    """Each action as a candidate with what speaks for it: the same few facts for every action (it is
    named in the title, in the evidence sentence, nearest the link word, by the rules), so the model
    learns how much each fact counts rather than a weight per word per action."""
    rule = next((c for c in a.rules if c.platform == platform), None)
    where = [("t", a.title)] if a.title is not None else []
    if evidence is not None:
        where.append(("e", a.sentences[evidence]))
    regulator = bool((p := a.lexicon.platforms.get(platform)) and p.regulator)
    # Across the article: how many candidate sentences name each action, which action is named
    # nearest the link word in each, and how many sentences qualify the change (some users, a test).
    named_in = {action: sum(1 for i in a.candidates if a.sentences[i].cues.get(f"act:{action}")) for action in ACTIONS}
    nearest = _nearest_votes(a)
    nearest_total = sum(nearest.values())
    scoped = sum(1 for i in a.candidates if a.sentences[i].cues.get("scope"))
    out: dict[str, Features] = {}
    for action in ACTIONS:
        cls = f"act:{action}"
        f: Features = {f"x:class:{action}": 1.0}
        for tag, s in where:
            acts = _action_hits(s)
            named = [x for x, c in acts if c == cls]
            if named:
                f[f"x:{tag}:named"] = 1.0
                f[f"x:{tag}:count"] = math.log1p(len(named))
                if min(acts)[1] == cls:
                    f[f"x:{tag}:first"] = 1.0
                if _nearest_action(s) == cls:
                    f[f"x:{tag}:nearest"] = 1.0
                if len({c for _x, c in acts}) == 1:
                    f[f"x:{tag}:only"] = 1.0
            if s.rule is not None and s.rule.action == action:
                f[f"x:{tag}:rule"] = 1.0
        if rule is not None and rule.action == action:
            f["x:rule"] = 1.0
        if action == "restrict":
            if any(s.cues.get("scope") for _tag, s in where):
                f["x:scope"] = 1.0  # some links, some users, a test: a restriction
            for tag, s in where:
                if s.cues.get("scope"):
                    f[f"x:scope:{tag}"] = 1.0
                    if s.cues.get("act:ban"):
                        f[f"x:partial:{tag}"] = 1.0  # "removes links for some users"
            if scoped:
                f[f"x:scope:all:{_b(scoped, (1, 2, 4))}"] = 1.0
                if any(s.cues.get("act:ban") for _tag, s in where):
                    f[f"x:partial:all:{_b(scoped, (1, 2, 4))}"] = 1.0
        n = named_in[action]
        if n:
            f["x:all"] = math.log1p(n)
            f["x:all:share"] = n / sum(named_in.values())
            if n == max(named_in.values()):
                f["x:all:top"] = 1.0
        if nearest_total:
            f["x:near:share"] = nearest[cls] / nearest_total
        if regulator and action == "require":
            f["x:regulator"] = 1.0
        out[action] = f
    return out


# -- dates -----------------------------------------------------------------------------------------
_TENSE = {
    "now": re.compile(r"\bnow\b|\btoday\b|\bthis week\b|现在|目前|今天|今日|即日|正式|当天|日前|近日", re.I),
    "progressive": re.compile(r"\b(?:is|are)\s+(?:now\s+)?\w+ing\b|正在", re.I),
    "perfect": re.compile(r"\b(?:has|have)\s+(?:now\s+)?(?:\w+ed|begun|started)\b|已经|已", re.I),
    "will": re.compile(r"\bwill\b|\bplans?\b|\bgoing to\b|将|即将|计划", re.I),
}

@dataclass(frozen=True)
class DateCandidate:
    value: date
    sentence: int
    found: FoundDate
    features: Features


def date_candidates(a: Annotated, platform: str, evidence: int | None, sc: SentenceScores) -> list[DateCandidate]:
    """Every date expression read in the article, with what ties it to the change of ``platform``."""
    out: list[DateCandidate] = []
    rule = next((c for c in a.rules if c.platform == platform), None)
    values: dict[date, int] = {}
    for s in a.sentences:
        for d in s.dates:
            values[d.value] = values.get(d.value, 0) + 1
    for s in a.sentences:
        if not s.dates:
            continue
        ref = a.ref_cn if s.han else a.ref
        names_platform = platform in {p for p, _x, _y in s.platforms}
        for d in s.dates:
            f: Features = {"bias:d": 1.0}
            for name in ("marked", "deadline", "said", "relative", "explicit_year"):
                if getattr(d, name):
                    f[f"d:{name}"] = 1.0
            f[f"d:when:{_when(d.value, ref) if ref is not None else 'unknown'}"] = 1.0
            if s.is_title:
                f["d:title"] = 1.0
            if evidence is not None:
                dist = abs(s.index - evidence)
                f[f"d:dist:{_b(dist, (0, 1, 2, 4))}"] = 1.0
            score = sc.scores.get(s.index)
            if score is not None:
                f["d:sscore"] = score
            else:
                f["d:not_candidate"] = 1.0
            if names_platform:
                f["d:platform"] = 1.0
            for c in ("links", "change", "announce", "refers", "past", "hedges", "unchanged"):
                if s.cues.get(c):
                    f[f"d:s:{c}"] = 1.0
            if any(s.cues.get(c) for c in _ACT_CLS):
                f["d:s:act"] = 1.0
            if s.rule is not None and s.rule.effective_date == d.value:
                f["d:rule_sentence"] = 1.0
            if rule is not None and rule.effective_date == d.value:
                f["d:rule_article"] = 1.0
            if values.get(d.value, 0) > 1:
                f["d:repeated"] = 1.0
            if d.marked and names_platform:
                f["d:marked&platform"] = 1.0
            if d.relative and not d.marked:
                f["d:relative_unmarked"] = 1.0
            out.append(DateCandidate(d.value, s.index, d, f))
    ev_sent = a.sentences[evidence] if evidence is not None else None
    ref = (a.ref_cn if ev_sent is not None and ev_sent.han else a.ref)
    if ref is not None and ref not in values:
        # Reports of a change happening as they are written ("Twitter is adding labels", "即日起",
        # "now lets") take effect on the day of writing, though no date is written.
        f = {"bias:d": 1.0, "d:implicit": 1.0}
        for tag, sent in (("e", ev_sent), ("t", a.title)):
            if sent is None:
                continue
            for name, pattern in _TENSE.items():
                if pattern.search(sent.text):
                    f[f"d:implicit:{tag}:{name}"] = 1.0
            if sent.cues.get("past"):
                f[f"d:implicit:{tag}:past"] = 1.0
        if evidence is not None and evidence in sc.scores:
            f["d:sscore"] = sc.scores[evidence]
        out.append(DateCandidate(ref, evidence if evidence is not None else 0, FoundDate(ref, 0, False, False, True), f))
    if rule is not None and rule.effective_date is not None and rule.effective_date not in values:
        # The rules dated the change from something no sentence reading gives (a changelog's title, a
        # list's introduction): their date stands as a candidate of its own.
        d = FoundDate(rule.effective_date, 0, True, True)
        out.append(DateCandidate(rule.effective_date, evidence if evidence is not None else 0, d,
                                 {"bias:d": 1.0, "d:rule_only": 1.0, "d:rule_article": 1.0}))
    return out
