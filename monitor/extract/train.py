"""Training the decision layer on labeled corpora (``policy-monitor train``), and the folds of
leave-events-out cross-validation (``policy-monitor eval --folds K``).

scikit-learn fits the logistic regressions; only their weights are kept (``learned.Models``), so
inference needs neither scikit-learn nor numpy. Everything is seeded and ordered, so the same corpus
gives the same model file. The sentence model's scores feed the other decisions; on training
articles they come from inner folds (stacking), so the article model learns from scores as noisy as
the ones it will meet on unseen text.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

from monitor.extract import features as F
from monitor.extract.annotate import Annotated, Annotator
from monitor.extract.extractor import Extractor
from monitor.extract.learned import Linear, Models
from monitor.extract.model import ACTIONS
from monitor.extract import text
from monitor.extract.records import RecordError, read_articles

SAME = {"x": "twitter", "meta": "facebook"}
SEED = 20221201
#: Regularisation (inverse strength) of each decision; chosen once by cross-validation, not per run.
C_SENTENCE, C_ARTICLE, C_PLATFORM, C_ACTION, C_DATE = 0.5, 0.5, 1.0, 0.5, 0.2
INNER_FOLDS = 4
#: Below this, the best date candidate is not trusted (no date rather than a wrong one); chosen by
#: cross-validation as the point where more dates right stop paying for more dates invented.
DATE_THRESHOLD = 0.35


def canon(platform: str | None) -> str:
    p = (platform or "").strip().lower()
    return SAME.get(p, p)


def want_action(label: dict[str, Any]) -> str | None:
    """The labelled action as the spec's record reads it: a reversal is what it does (allow)."""
    a = label.get("action")
    return {"reverse": "allow"}.get(a or "", a)


@dataclass
class Item:
    """One labeled article, annotated once."""

    id: str
    group: str                      # the real-world event (a negative is its own group)
    lang: str
    source: str                     # the corpus file it came from
    label: dict[str, Any]
    annotated: Annotated
    row: dict[str, Any]
    sentence_features: dict[int, F.Features] = field(default_factory=dict)
    evidence: set[int] = field(default_factory=set)

    @property
    def positive(self) -> bool:
        return bool(self.label.get("is_link_policy_change"))


class CorpusError(ValueError):
    """A corpus file that cannot be used for training or evaluation; the message names file and line."""


def read_corpus(path: Path) -> list[tuple[dict[str, Any], Any]]:
    """The rows of a labeled corpus file with their articles, validated line by line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CorpusError(f"cannot read {path}: {exc.strerror or exc}") from exc
    rows: list[dict[str, Any]] = []
    kept: list[str] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path}:{n}: not JSON: {exc.msg}") from exc
        if not isinstance(obj, dict) or "id" not in obj:
            raise CorpusError(f"{path}:{n}: missing field 'id' (a corpus line is an article with an id and a label)")
        label = obj.get("label")
        if not isinstance(label, dict) or "is_link_policy_change" not in label:
            raise CorpusError(f"{path}:{n}: missing field 'label' with 'is_link_policy_change' "
                              "(see ../shared/corpus/README.md)")
        rows.append(obj)
        kept.append(line)
    try:
        articles = list(read_articles(kept, str(path)))
    except RecordError as exc:
        raise CorpusError(str(exc)) from exc
    return list(zip(rows, articles))


def _norm(s: str) -> str:
    return re.sub(r"\s+", "", text.to_simplified(s or "")).lower()


def evidence_sentences(a: Annotated, evidence: str) -> set[int]:
    """The candidate sentences that state the labelled evidence (it may span several sentences, or
    be a part of one)."""
    ev = _norm(evidence)
    if not ev:
        return set()
    out = set()
    for i in a.candidates:
        s = _norm(a.sentences[i].raw)
        if not s:
            continue
        if s in ev or ev in s:
            out.add(i)
            continue
        m = SequenceMatcher(None, s, ev, autojunk=False).find_longest_match(0, len(s), 0, len(ev))
        if m.size >= 0.6 * min(len(s), len(ev)):
            out.add(i)
    return out


def load_items(paths: Sequence[Path], extractor: Extractor,
               progress: Callable[[int, int], None] | None = None) -> list[Item]:
    pairs = [(p, row, art) for p in paths for row, art in read_corpus(p)]
    seen: set[str] = set()
    items = []
    for k, (p, row, art) in enumerate(pairs):
        rid = str(row["id"])
        if rid in seen:
            raise CorpusError(f"{p}: id {rid!r} appears twice in the corpora given")
        seen.add(rid)
        label = row["label"]
        positive = bool(label.get("is_link_policy_change"))
        group = f"event:{label.get('event_key')}" if positive and label.get("event_key") else f"item:{rid}"
        a = extractor.annotator.annotate(art)
        item = Item(rid, group, row.get("lang") or ("zh" if any(s.han for s in a.sentences[:3]) else "en"),
                    p.name, label, a, row)
        item.sentence_features = {i: F.sentence_features(a, a.sentences[i]) for i in a.candidates}
        if positive:
            item.evidence = evidence_sentences(a, str(label.get("evidence") or ""))
        items.append(item)
        if progress and (k + 1) % 50 == 0:
            progress(k + 1, len(pairs))
    if progress:
        progress(len(pairs), len(pairs))
    return items


def assign_folds(groups: Sequence[str], k: int, seed: int = SEED) -> list[int]:
    """Leave-events-out folds: every item of one event in the same fold, folds of even size, the
    order fixed by a hash of the group and the seed (no randomness that varies between runs)."""
    sizes: dict[str, int] = {}
    for g in groups:
        sizes[g] = sizes.get(g, 0) + 1
    order = sorted(sizes, key=lambda g: (-sizes[g], zlib.crc32(f"{seed}:{g}".encode())))
    load = [0] * k
    fold_of: dict[str, int] = {}
    for g in order:
        i = min(range(k), key=lambda j: (load[j], j))
        fold_of[g] = i
        load[i] += sizes[g]
    return [fold_of[g] for g in groups]


# -- fitting ---------------------------------------------------------------------------------------
def _matrix(xs: list[F.Features]) -> tuple[Any, list[str]]:
    """The features as a sparse matrix (32-bit indices, as liblinear wants) and their names."""
    import numpy as np
    from sklearn.feature_extraction import DictVectorizer

    dv = DictVectorizer(sort=True)
    x = dv.fit_transform(xs).tocsr()
    x.indices = x.indices.astype(np.int32)
    x.indptr = x.indptr.astype(np.int32)
    return x, [str(n) for n in dv.get_feature_names_out()]


def _fit_linear(xs: list[F.Features], ys: list[int], c: float, seed: int) -> Linear:
    from sklearn.linear_model import LogisticRegression

    if not xs or len(set(ys)) < 2:
        prior = (sum(ys) + 1) / (len(ys) + 2)
        return Linear(math.log(prior / (1 - prior)), {})
    x, names = _matrix(xs)
    lr = LogisticRegression(C=c, solver="liblinear", random_state=seed, max_iter=2000)
    lr.fit(x, ys)
    return Linear(float(lr.intercept_[0]), {n: float(w) for n, w in zip(names, lr.coef_[0]) if w})


class SentenceTable:
    """The candidate sentences of a set of items as one sparse matrix, built once: cross-validation
    fits the sentence model 25 times on slices of it instead of re-encoding the features each time."""

    def __init__(self, items: Sequence[Item]) -> None:
        rows: list[F.Features] = []
        self.owner: list[str] = []
        self.sentence: list[int] = []
        self.label: list[int] = []      # 1 evidence of a positive, 0 candidate of a negative, -1 left out
        for it in items:
            for i, f in it.sentence_features.items():
                rows.append(f)
                self.owner.append(it.id)
                self.sentence.append(i)
                self.label.append((1 if i in it.evidence else -1) if it.positive else 0)
        self.x: Any = None
        self.names: list[str] = []
        if rows:
            self.x, self.names = _matrix(rows)

    def fit(self, ids: set[str], seed: int) -> Linear:
        """Evidence sentences of positive articles against every candidate of negative ones (the other
        sentences of a positive article are left out: they may state the change too)."""
        from sklearn.linear_model import LogisticRegression

        keep = [r for r, (o, y) in enumerate(zip(self.owner, self.label)) if o in ids and y >= 0]
        ys = [self.label[r] for r in keep]
        if self.x is None or len(set(ys)) < 2:
            return _fit_linear([], ys, C_SENTENCE, seed)
        lr = LogisticRegression(C=C_SENTENCE, solver="liblinear", random_state=seed, max_iter=2000)
        lr.fit(self.x[keep], ys)
        return Linear(float(lr.intercept_[0]), {n: float(w) for n, w in zip(self.names, lr.coef_[0]) if w})

    def scores(self, model: Linear, ids: set[str]) -> dict[str, F.SentenceScores]:
        """Each item's candidate scores under ``model`` (a matrix product, not a loop of dicts)."""
        import numpy as np

        out: dict[str, dict[int, float]] = {i: {} for i in ids}
        rows = [r for r, o in enumerate(self.owner) if o in ids]
        if not rows or self.x is None:
            return {i: F.SentenceScores(v) for i, v in out.items()}
        w = np.array([model.weights.get(n, 0.0) for n in self.names])
        z = self.x[rows] @ w + model.bias
        p = 1.0 / (1.0 + np.exp(-z))
        for r, v in zip(rows, p):
            out[self.owner[r]][self.sentence[r]] = float(v)
        return {i: F.SentenceScores(v) for i, v in out.items()}


def fit(items: Sequence[Item], extractor: Extractor, seed: int = SEED, meta: dict[str, Any] | None = None,
        table: SentenceTable | None = None) -> Models:
    """All five decisions, trained on ``items`` (``table``: their sentences, when already encoded)."""
    table = table or SentenceTable(items)
    # Out-of-fold sentence scores for the training articles (stacking).
    inner = assign_folds([it.group for it in items], INNER_FOLDS, seed)
    oof: dict[str, F.SentenceScores] = {}
    for k in range(INNER_FOLDS):
        model = table.fit({it.id for it, fold in zip(items, inner) if fold != k}, seed)
        oof.update(table.scores(model, {it.id for it, fold in zip(items, inner) if fold == k}))
    sentence = table.fit({it.id for it in items}, seed)
    article = _fit_linear([F.article_features(it.annotated, oof[it.id]) for it in items],
                          [int(it.positive) for it in items], C_ARTICLE, seed)
    px: list[F.Features] = []
    py: list[int] = []
    ax: list[F.Features] = []
    ay: list[int] = []
    dx: list[F.Features] = []
    dy: list[int] = []
    for it in items:
        if not it.positive:
            continue
        a, sc = it.annotated, oof[it.id]
        gold = canon(it.label.get("platform"))
        cands = F.platform_candidates(a, sc)
        if gold in cands:
            for pid, f in cands.items():
                px.append(f)
                py.append(int(pid == gold))
        ev = extractor.evidence(a, sc, gold)
        act = want_action(it.label)
        if act in ACTIONS:
            for name, f in F.action_candidates(a, gold, ev).items():
                ax.append(f)
                ay.append(int(name == act))
        wanted = it.label.get("effective_date")
        want_day = date.fromisoformat(wanted) if wanted else None
        for c in F.date_candidates(a, gold, ev, sc):
            dx.append(c.features)
            dy.append(int(c.value == want_day))
    return Models(sentence=sentence, article=article,
                  platform=_fit_linear(px, py, C_PLATFORM, seed),
                  action=_fit_linear(ax, ay, C_ACTION, seed),
                  date=_fit_linear(dx, dy, C_DATE, seed),
                  threshold=0.5, date_threshold=DATE_THRESHOLD, meta=dict(meta or {}))


def describe(items: Sequence[Item], paths: Sequence[Path]) -> dict[str, Any]:
    """What a model was trained on (counts and file names only: no text)."""
    return {"trained_on": [p.name for p in paths], "items": len(items),
            "positives": sum(it.positive for it in items),
            "events": len({it.group for it in items if it.positive}), "seed": SEED,
            "c": {"sentence": C_SENTENCE, "article": C_ARTICLE, "platform": C_PLATFORM, "action": C_ACTION,
                  "date": C_DATE}}
