"""The records that cross the extractor's boundary, shaped as in spec/interface.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

ACTIONS = ("ban", "restrict", "allow", "require")
LINK_TYPES = ("affiliate", "third_party_product", "external_url", "mini_program", "social_profile",
              "news", "payment", "other")


@dataclass(frozen=True)
class Article:
    """What the extractor reads: an entry of a source, or a line of `extract` input."""

    id: str
    title: str
    body: str
    published: datetime | None = None
    lang: str | None = None
    url: str | None = None
    platform_hint: str | None = None
    # The text a watched policy page added (kind = "page"): the platform's own rules, not a report.
    watched: bool = False


@dataclass(frozen=True)
class PolicyChange:
    """One link-policy change an article reports."""

    platform: str
    action: str
    link_type: str
    targets: tuple[str, ...] = ()
    effective_date: date | None = None
    evidence: str = ""
    confidence: float = 0.5
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "targets": list(self.targets),
            "action": self.action,
            "link_type": self.link_type,
            "effective_date": self.effective_date.isoformat() if self.effective_date else None,
            "evidence": self.evidence,
            "confidence": round(self.confidence, 3),
        }
