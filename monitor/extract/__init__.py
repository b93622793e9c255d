"""Extraction: from an article's text to the link-policy changes it reports.

Deterministic and offline: a lexicon (data, ``config/lexicon.toml``), rules, and date resolution
against the publication date. ``Extractor`` is the one interface the pipeline and the CLI use, so a
better extractor can replace this one without touching them.
"""

from monitor.extract.model import Article, PolicyChange
from monitor.extract.detector import Extractor

__all__ = ["Article", "PolicyChange", "Extractor"]
