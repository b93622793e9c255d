"""The lexicon: platform ids with aliases, and cue words by language and class.

Loaded from TOML and validated once, then compiled to regular expressions, so users extend the
extractor by editing data (a missing class or a wrong type is reported with its key path).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from monitor.extract.model import ACTIONS, LINK_TYPES

BUILTIN = Path(__file__).resolve().parent.parent / "data" / "lexicon.toml"
LANGS = ("zh", "en")
_CLASSES = ("links", "change", "past", "hedges", "howto", "announce", "refers", "unchanged", "changelog", "revises",
            "policy", "genre", "linkish", "accounts", "scope")


class LexiconError(ValueError):
    """The lexicon file is unreadable or malformed; the message names file and key."""


@dataclass(frozen=True)
class Platform:
    id: str
    name: str
    name_zh: str | None
    tz: str | None
    aliases: tuple[str, ...]
    # A regulator sets rules for platforms rather than for its own links: what it does is "require".
    regulator: bool = False

    def display(self, lang: str = "zh") -> str:
        """``快手 (Kuaishou)``: both names, so a reader of either language recognises it."""
        if self.name_zh and self.name_zh != self.name:
            return f"{self.name_zh} ({self.name})" if lang == "zh" else f"{self.name} ({self.name_zh})"
        return self.name


def _alternation(words: list[str] | tuple[str, ...], lang: str) -> re.Pattern[str]:
    """One pattern for a word list: Latin words match on word boundaries (case-insensitively for
    English cues), Chinese anywhere; shaped as a trie behind a first-character look-ahead."""
    ignore_case = lang == "en"
    return re.compile(_word_pattern(sorted({w for w in words if w}), ignore_case), re.IGNORECASE if ignore_case else 0)


def trie_pattern(words: list[str] | tuple[str, ...] | set[str]) -> str:
    """A regular expression for a word list shaped as a trie: words that share a beginning share its
    test, so one pass over an article costs little more for 600 words than for 6. Longer words are
    tried first (an optional tail is greedy), so "no longer allow" wins over "no longer"."""
    trie: dict[str, Any] = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        alts = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        if "" in node:
            return (body if len(alts) == 1 and len(alts[0]) == 1 else f"(?:{body})") + "?"
        return body

    return build(trie)


@dataclass(frozen=True)
class CueIndex:
    """Every cue word of both languages in one pattern, and the classes each word belongs to, so an
    article's cues are found in one pass ("links", "change", "act:ban", "type:news", …)."""

    pattern: re.Pattern[str]
    classes: dict[str, frozenset[str]]

    def find(self, text: str) -> list[tuple[frozenset[str], int, int]]:
        get = self.classes.get
        return [(get(m.group(0).lower(), frozenset()), m.start(), m.end()) for m in self.pattern.finditer(text)]


def _cue_index(by_class: dict[str, list[str]]) -> CueIndex:
    classes: dict[str, set[str]] = {}
    for cls, words in by_class.items():
        for w in words:
            if w:
                classes.setdefault(w.lower(), set()).add(cls)
    # The index finds the longest word at each place ("商品链接", not "链接" inside it): a word also
    # carries the classes of the cue words it contains, except their actions ("no longer allow" is
    # a ban, not an allow).
    # (Each word's own substrings are looked up, rather than every pair of words compared: the same
    # result in a fraction of the start-up time.)
    inner: dict[str, set[str]] = {}
    longest = max((len(u) for u in classes), default=0)
    for w in classes:
        inside = {w[i:j] for i in range(len(w)) for j in range(i + 1, min(len(w), i + longest) + 1)} - {w}
        for u in inside & classes.keys():
            if not re.match(r"[a-z0-9]", u) or re.search(r"(?<![a-z0-9])" + re.escape(u) + r"(?![a-z0-9])", w):
                inner.setdefault(w, set()).update(c for c in classes[u] if not c.startswith("act:"))
    for w, extra in inner.items():
        classes[w] |= extra
    pattern = re.compile(_word_pattern(list(classes), ignore_case=True), re.IGNORECASE)
    return CueIndex(pattern, {w: frozenset(c) for w, c in classes.items()})


def _word_pattern(words: list[str], ignore_case: bool) -> str:
    """Latin words on word boundaries, others anywhere; each part behind a look-ahead on the first
    characters its words can start with, so most places of a text are passed over at once (five
    times faster than the bare trie)."""
    latin = [w for w in words if re.match(r"[A-Za-z0-9]", w)]
    other = [w for w in words if w and w not in latin]
    parts = []
    for group, tail in (([w for w in latin if re.search(r"[A-Za-z0-9]$", w)], r"(?![A-Za-z0-9])"),
                        ([w for w in latin if not re.search(r"[A-Za-z0-9]$", w)], "")):  # "B站"
        if not group:
            continue
        first = {c for w in group for c in ((w[0].lower(), w[0].upper()) if ignore_case else (w[0],))}
        parts.append(r"(?=[" + re.escape("".join(sorted(first))) + r"])(?<![A-Za-z0-9])" + trie_pattern(group)
                     + tail)
    if other:
        parts.append(r"(?=[" + re.escape("".join(sorted({w[0] for w in other}))) + r"])" + trie_pattern(other))
    return "|".join(parts) or r"(?!x)x"


@dataclass(frozen=True)
class Cues:
    """Compiled cue patterns of one language."""

    links: re.Pattern[str]
    change: re.Pattern[str]
    past: re.Pattern[str]
    hedges: re.Pattern[str]
    howto: re.Pattern[str]
    announce: re.Pattern[str]
    refers: re.Pattern[str]
    unchanged: re.Pattern[str]
    changelog: re.Pattern[str]
    revises: re.Pattern[str]
    policy: re.Pattern[str]
    genre: re.Pattern[str]
    linkish: re.Pattern[str]
    accounts: re.Pattern[str]
    scope: re.Pattern[str]
    actions: dict[str, re.Pattern[str]]
    link_types: dict[str, re.Pattern[str]]


@dataclass(frozen=True)
class Lexicon:
    path: Path
    platforms: dict[str, Platform]
    cues: dict[str, Cues]
    _alias_index: dict[str, str] = field(default_factory=dict)
    alias_pattern: re.Pattern[str] = field(default=re.compile(r"(?!x)x"))
    cue_index: CueIndex = field(default=CueIndex(re.compile(r"(?!x)x"), {}))

    def platform_of(self, alias: str) -> str:
        """The canonical id behind an alias as matched in text."""
        return self._alias_index.get(alias.lower(), alias.lower())

    def display(self, platform_id: str, lang: str = "zh") -> str:
        p = self.platforms.get(platform_id)
        return p.display(lang) if p else platform_id


def _need(obj: Any, kind: type, key: str, path: Path) -> Any:
    if not isinstance(obj, kind):
        raise LexiconError(f"{path}: {key}: expected {kind.__name__}, got {type(obj).__name__}")
    return obj


def _words(obj: Any, key: str, path: Path) -> list[str]:
    _need(obj, list, key, path)
    for i, w in enumerate(obj):
        _need(w, str, f"{key}[{i}]", path)
    return list(obj)


def validate(raw: dict[str, Any], path: Path) -> None:
    """Every check ``parse`` makes, without compiling anything: a command reports a broken lexicon
    before it runs, and compiles the patterns only when it first extracts or plans."""
    for pid, spec in _need(raw.get("platforms"), dict, "platforms", path).items():
        key = f"platforms.{pid}"
        _need(spec, dict, key, path)
        unknown = set(spec) - {"name", "name_zh", "tz", "aliases", "regulator"}
        if unknown:
            raise LexiconError(f"{path}: {key}.{sorted(unknown)[0]}: unknown key")
        _words(spec.get("aliases", []), f"{key}.aliases", path)
        _need(spec.get("regulator", False), bool, f"{key}.regulator", path)
    raw_cues = _need(raw.get("cues"), dict, "cues", path)
    for lang in LANGS:
        c = _need(raw_cues.get(lang), dict, f"cues.{lang}", path)
        unknown_cls = set(c) - set(_CLASSES) - {"actions", "link_types"}
        if unknown_cls:
            raise LexiconError(f"{path}: cues.{lang}.{sorted(unknown_cls)[0]}: unknown cue class "
                               f"(known: {', '.join(_CLASSES)}, actions, link_types)")
        for k in _CLASSES:
            _words(c.get(k, []), f"cues.{lang}.{k}", path)
        acts = _need(c.get("actions"), dict, f"cues.{lang}.actions", path)
        types = _need(c.get("link_types"), dict, f"cues.{lang}.link_types", path)
        for a, w in acts.items():
            _words(w, f"cues.{lang}.actions.{a}", path)
        for t, w in types.items():
            _words(w, f"cues.{lang}.link_types.{t}", path)
        for name in acts:
            if name not in ACTIONS:
                raise LexiconError(f"{path}: cues.{lang}.actions.{name}: not an action ({', '.join(ACTIONS)})")
        for name in types:
            if name not in LINK_TYPES:
                raise LexiconError(
                    f"{path}: cues.{lang}.link_types.{name}: not a link type ({', '.join(LINK_TYPES)})")


def parse(raw: dict[str, Any], path: Path) -> Lexicon:
    """The lexicon ``raw`` describes, compiled; ``validate`` has said what is wrong with it, if anything."""
    validate(raw, path)
    platforms: dict[str, Platform] = {}
    alias_index: dict[str, str] = {}
    for pid, spec in raw["platforms"].items():
        aliases = tuple(spec.get("aliases", []))
        platforms[pid] = Platform(pid, str(spec.get("name", pid)), spec.get("name_zh"), spec.get("tz"),
                                  aliases, bool(spec.get("regulator", False)))
        for a in aliases:
            alias_index[a.lower()] = pid
    cues: dict[str, Cues] = {}
    by_class: dict[str, list[str]] = {}
    for lang in LANGS:
        c = raw["cues"][lang]
        acts, types = c["actions"], c["link_types"]
        for k in _CLASSES:
            by_class.setdefault(k, []).extend(c.get(k, []))
        for a, w in acts.items():
            by_class.setdefault(f"act:{a}", []).extend(w)
        for t, w in types.items():
            by_class.setdefault(f"type:{t}", []).extend(w)
        cues[lang] = Cues(
            actions={a: _alternation(list(w), lang) for a, w in acts.items()},
            link_types={t: _alternation(list(w), lang) for t, w in types.items()},
            **{k: _alternation(list(c.get(k, [])), lang) for k in _CLASSES},
        )
    all_aliases = [a for p in platforms.values() for a in p.aliases]
    return Lexicon(path, platforms, cues, alias_index, re.compile(_word_pattern(sorted(set(all_aliases)), False)),
                   _cue_index(by_class))


def _read(path: str | None) -> tuple[dict[str, Any], Path]:
    p = Path(path) if path else BUILTIN
    try:
        return tomllib.loads(p.read_text(encoding="utf-8")), p
    except FileNotFoundError:
        raise LexiconError(f"{p}: no such lexicon file")
    except tomllib.TOMLDecodeError as exc:
        raise LexiconError(f"{p}: not valid TOML: {exc}")


@lru_cache(maxsize=8)
def load(path: str | None = None) -> Lexicon:
    """The lexicon at ``path`` (default: the one shipped with policy-monitor), validated."""
    raw, p = _read(path)
    return parse(raw, p)


@lru_cache(maxsize=8)
def check(path: str | None = None) -> None:
    """Raise LexiconError as ``load`` would, at a tenth of its cost (nothing is compiled)."""
    raw, p = _read(path)
    validate(raw, p)
