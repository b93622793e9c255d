"""Extraction: from an article's text to the link-policy changes it reports.

Deterministic and offline: the lexicon (data, ``config/lexicon.toml``) and rules propose candidates
and compute features (``annotate``, ``features``); a small trained model decides (``learned``,
weights shipped as data, rebuilt by ``policy-monitor train``). ``Extractor`` is the one interface the
pipeline and the CLI use.
"""

from monitor.extract.model import Article, PolicyChange
from monitor.extract.extractor import Extractor

__all__ = ["Article", "PolicyChange", "Extractor"]
