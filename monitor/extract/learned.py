"""The trained weights of the decision layer, and inference with them (no scikit-learn needed).

A model file is gzipped JSON: for each decision, a bias and a weight per named feature (hashed
n-gram features are named by their hash, so no text of the corpus is inside), plus the thresholds
and a record of what it was trained on. It is written deterministically (sorted keys, rounded
weights, no timestamp in the gzip header), so `policy-monitor train` run twice gives the same file.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from monitor.extract.features import Features

BUILTIN_MODEL = Path(__file__).resolve().parent.parent / "data" / "model.json.gz"
FORMAT = 2


class ModelError(ValueError):
    """A model file that is missing, unreadable or of another format; the message names the file."""


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@dataclass
class Linear:
    """A logistic regression: P(yes | features)."""

    bias: float
    weights: dict[str, float]

    def score(self, f: Features) -> float:
        w = self.weights
        return self.bias + sum(w.get(k, 0.0) * v for k, v in f.items())

    def proba(self, f: Features) -> float:
        return sigmoid(self.score(f))

    def explain(self, f: Features, top: int = 6) -> list[tuple[str, float]]:
        """The features that moved this decision most, with their contribution to the log-odds."""
        parts = [(k, self.weights.get(k, 0.0) * v) for k, v in f.items()]
        parts = [(k, c) for k, c in parts if c]
        parts.sort(key=lambda kc: -abs(kc[1]))
        return parts[:top]

    def to_json(self) -> dict[str, Any]:
        return {"bias": _round(self.bias), "weights": {k: _round(v) for k, v in sorted(self.weights.items()) if v}}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "Linear":
        return cls(float(obj["bias"]), {str(k): float(v) for k, v in obj["weights"].items()})


@dataclass
class Models:
    """The five decisions of the extractor and their thresholds."""

    sentence: Linear
    article: Linear
    platform: Linear
    action: Linear
    date: Linear
    threshold: float = 0.5          # P(article reports a change) at or above which a change is emitted
    date_threshold: float = 0.5     # below this, the best date candidate is not trusted: no date
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "meta": self.meta, "threshold": self.threshold,
                "date_threshold": self.date_threshold, "sentence": self.sentence.to_json(),
                "article": self.article.to_json(), "platform": self.platform.to_json(),
                "action": self.action.to_json(), "date": self.date.to_json()}

    def save(self, path: Path) -> None:
        data = json.dumps(self.to_json(), sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(data)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "Models":
        if obj.get("format") != FORMAT:
            raise ModelError(f"model format {obj.get('format')!r}, this policy-monitor reads format {FORMAT}")
        return cls(Linear.from_json(obj["sentence"]), Linear.from_json(obj["article"]),
                   Linear.from_json(obj["platform"]), Linear.from_json(obj["action"]),
                   Linear.from_json(obj["date"]), float(obj["threshold"]), float(obj["date_threshold"]),
                   dict(obj.get("meta") or {}))


def _round(x: float) -> float:
    return float(f"{x:.6g}")


@lru_cache(maxsize=4)
def load(path: str | None = None) -> Models:
    """The model at ``path`` (default: the one shipped with policy-monitor)."""
    p = Path(path) if path else BUILTIN_MODEL
    try:
        with gzip.open(p, "rb") as fh:
            obj = json.loads(fh.read().decode("utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{p}: no such model file (build one with `policy-monitor train CORPUS... --out {p}`)")
    except (OSError, ValueError) as exc:
        raise ModelError(f"{p}: not a policy-monitor model: {exc}")
    try:
        return Models.from_json(obj)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{p}: not a policy-monitor model: {exc}")
