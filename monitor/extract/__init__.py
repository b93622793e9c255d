"""Extraction: from an article's text to the link-policy changes it reports.

Deterministic and offline: the lexicon (data, ``config/lexicon.toml``) and rules propose candidates
and compute features (``annotate``, ``features``); a small trained model decides (``learned``,
weights shipped as data, rebuilt by ``policy-monitor train``). ``Extractor`` is the one interface the
pipeline and the CLI use. It is imported on first use: commands that only read the change log (and
the configuration, which names ``model.ACTIONS``) need none of the text machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from monitor.extract.model import Article, PolicyChange

if TYPE_CHECKING:
    from monitor.extract.extractor import Extractor

__all__ = ["Article", "PolicyChange", "Extractor"]


def __getattr__(name: str) -> Any:
    if name == "Extractor":
        from monitor.extract.extractor import Extractor

        return Extractor
    raise AttributeError(f"module 'monitor.extract' has no attribute {name!r}")
