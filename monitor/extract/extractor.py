"""The extractor: the lexicon and rules propose, a trained model decides.

For one article: the rules and the cue index annotate it (``annotate``); every candidate sentence is
scored (does it state a change?); the article is scored from its sentences, its title and its genre
(does it report a change?); when it does, the platform candidates are ranked (which one acts?), the
action is chosen, and every date expression is ranked (which one is the change's?), with no date
when none scores enough: a wrong date is worse than none. ``confidence`` is the article's
probability, so a notifier's ``min_confidence`` filters on it. ``explain`` returns why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from monitor.extract import features as F
from monitor.extract.annotate import Annotated, Annotator
from monitor.extract.detector import RuleExtractor
from monitor.extract.lexicon import Lexicon
from monitor.extract.learned import Models, load as load_models
from monitor.extract.model import Article, PolicyChange

#: A second platform's change in the same article is reported only when the platform model is this
#: sure of it and the rules found a statement of its own.
SECOND_PLATFORM = 0.6


@dataclass
class Explanation:
    """What ``extract --explain`` prints for one article."""

    probability: float = 0.0
    threshold: float = 0.5
    article_features: list[tuple[str, float]] = field(default_factory=list)
    sentences: list[dict[str, Any]] = field(default_factory=list)
    platforms: list[dict[str, Any]] = field(default_factory=list)
    actions: dict[str, float] = field(default_factory=dict)
    action_features: list[tuple[str, float]] = field(default_factory=list)
    dates: list[dict[str, Any]] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"probability": round(self.probability, 4), "threshold": self.threshold,
                "article_features": [[k, round(v, 3)] for k, v in self.article_features],
                "sentences": self.sentences, "platforms": self.platforms,
                "actions": {k: round(v, 3) for k, v in self.actions.items()},
                "action_features": [[k, round(v, 3)] for k, v in self.action_features],
                "dates": self.dates, "rules": self.rules}


class Extractor:
    """Reads an Article, returns the PolicyChanges it reports (empty when none)."""

    def __init__(self, lexicon: Lexicon | None = None, models: Models | None = None,
                 model_path: str | None = None, use_rules: bool = True) -> None:
        self.rules = RuleExtractor(lexicon)
        self.lexicon = self.rules.lexicon
        self.annotator = Annotator(self.rules, use_rules)
        self._models = models
        self._model_path = model_path

    @property
    def models(self) -> Models:
        if self._models is None:
            self._models = load_models(self._model_path)
        return self._models

    def extract(self, article: Article) -> list[PolicyChange]:
        return self.decide(self.annotator.annotate(article))

    def explain(self, article: Article) -> tuple[list[PolicyChange], Explanation]:
        why = Explanation()
        return self.decide(self.annotator.annotate(article), why=why), why

    # -- the decision --------------------------------------------------------------------------------
    def sentence_scores(self, a: Annotated, models: Models | None = None) -> F.SentenceScores:
        m = (models or self.models).sentence
        return F.SentenceScores({i: m.proba(F.sentence_features(a, a.sentences[i])) for i in a.candidates})

    def decide(self, a: Annotated, models: Models | None = None, why: Explanation | None = None,
               scores: F.SentenceScores | None = None) -> list[PolicyChange]:
        m = models or self.models
        sc = scores or self.sentence_scores(a, m)
        af = F.article_features(a, sc)
        p = m.article.proba(af)
        if why is not None:
            why.probability, why.threshold = p, m.threshold
            why.article_features = m.article.explain(af, 10)
            why.sentences = [{"index": i, "score": round(v, 3), "text": a.sentences[i].raw[:200],
                              "rule": a.sentences[i].rule is not None}
                             for i, v in sorted(sc.scores.items(), key=lambda kv: -kv[1])[:6]]
            why.rules = [c.to_dict() for c in a.rules]
        if a.article.watched and sc.scores:
            # New text on a platform's own rules page needs no news report around it: a sentence
            # that states a link rule there is the change itself.
            p = max(p, max(sc.scores.values()))
        if p < m.threshold:
            return []
        ranked = self.rank_platforms(a, sc, m, why)
        if not ranked:
            return []
        out = []
        best_platform, _ = ranked[0]
        for k, (platform, pp) in enumerate(ranked):
            if k > 0 and (pp < SECOND_PLATFORM or not any(c.platform == platform for c in a.rules)):
                continue
            out.append(self._change(a, sc, m, platform, p if k == 0 else p * pp, why if k == 0 else None))
        return out

    def rank_platforms(self, a: Annotated, sc: F.SentenceScores, m: Models,
                       why: Explanation | None = None) -> list[tuple[str, float]]:
        cands = F.platform_candidates(a, sc)
        ranked = sorted(((pid, m.platform.proba(f)) for pid, f in cands.items()), key=lambda kv: -kv[1])
        if why is not None:
            why.platforms = [{"platform": pid, "score": round(v, 3),
                              "features": [[k, round(c, 3)] for k, c in m.platform.explain(cands[pid], 5)]}
                             for pid, v in ranked[:5]]
        return ranked

    def evidence(self, a: Annotated, sc: F.SentenceScores, platform: str) -> int | None:
        naming = [i for i in sc.scores if platform in {p for p, _x, _y in a.sentences[i].platforms}
                  or (a.sentences[i].rule is not None and a.sentences[i].rule.platform == platform)]  # type: ignore[union-attr]
        body = [i for i in naming if not a.sentences[i].is_title]
        return sc.best(body) if body else sc.best(naming) if naming else sc.best()

    def choose_date(self, a: Annotated, sc: F.SentenceScores, m: Models, platform: str, evidence: int | None,
                    why: Explanation | None = None) -> tuple[date | None, float]:
        cands = F.date_candidates(a, platform, evidence, sc)
        by_value: dict[date, tuple[float, F.DateCandidate]] = {}
        for c in cands:
            s = m.date.proba(c.features)
            if c.value not in by_value or s > by_value[c.value][0]:
                by_value[c.value] = (s, c)
        ranked = sorted(by_value.items(), key=lambda kv: (-kv[1][0], kv[0]))
        if why is not None:
            why.dates = [{"date": d.isoformat(), "score": round(s, 3), "sentence": c.sentence,
                          "features": [[k, round(x, 3)] for k, x in m.date.explain(c.features, 5)]}
                         for d, (s, c) in ranked[:5]]
        if not ranked or ranked[0][1][0] < m.date_threshold:
            return None, ranked[0][1][0] if ranked else 0.0
        return ranked[0][0], ranked[0][1][0]

    def _change(self, a: Annotated, sc: F.SentenceScores, m: Models, platform: str, confidence: float,
                why: Explanation | None) -> PolicyChange:
        ev = self.evidence(a, sc, platform)
        cands = F.action_candidates(a, platform, ev)
        scores = {name: m.action.score(f) for name, f in cands.items()}
        top = max(scores.values())
        total = sum(math.exp(v - top) for v in scores.values())
        probs = {name: math.exp(v - top) / total for name, v in scores.items()}
        action = max(probs, key=lambda k: probs[k])
        info = self.lexicon.platforms.get(platform)
        if info is not None and info.regulator:
            action = "require"  # a regulator's rule obliges platforms, whatever verb it uses
        if why is not None:
            why.actions = probs
            why.action_features = m.action.explain(cands[action], 8)
        when, _ = self.choose_date(a, sc, m, platform, ev, why)
        rule = next((c for c in a.rules if c.platform == platform), None)
        sentence_rule = a.sentences[ev].rule if ev is not None else None
        targets = rule.targets if rule else sentence_rule.targets if sentence_rule else ()
        targets = tuple(t for t in targets if t != platform)
        link_type = rule.link_type if rule else sentence_rule.link_type if sentence_rule else self._link_type(a, ev)
        evidence = a.sentences[ev].raw.strip() if ev is not None else (rule.evidence if rule else "")
        return PolicyChange(platform=platform, action=action, link_type=link_type, targets=targets,
                            effective_date=when, evidence=evidence, confidence=round(confidence, 3))

    def _link_type(self, a: Annotated, ev: int | None) -> str:
        for i in ([ev] if ev is not None else []) + ([a.title.index] if a.title is not None else []):
            s = a.sentences[i]
            for t in ("affiliate", "third_party_product", "mini_program", "payment", "news", "social_profile",
                      "external_url"):
                if s.cues.get(f"type:{t}"):
                    return t
        return "external_url"
