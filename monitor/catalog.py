"""The catalog: known sources for every platform, so a user turns a platform on with one line
(``catalog = ["kuaishou", "douyin"]``) instead of finding and copying URLs.

Each entry is a ``[[sources]]`` table in ``config/catalog/<platform>.toml`` plus what a user needs to
trust it: ``status`` is ``verified`` only when a saved copy of what the URL served is in
``tests/data/catalog/`` (named by ``copy``) and a test reads it through the real parser; anything
else is ``unverified``, carries the ``reason``, and stays disabled unless the user names the entry
itself in ``catalog`` (then they vouch for it: check it with ``policy-monitor once --source NAME``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from monitor.config import SourceConfig

#: The catalog shipped in this repository (found from the package, so any config file can use it).
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "config" / "catalog"
_META = ("status", "reason", "about", "copy")


class CatalogError(Exception):
    """A problem of the catalog, or of the names a config picks from it; one line per problem."""

    def __init__(self, path: Path | None, problems: list[tuple[str, str]]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{path or ''}: {k}: {m}" for k, m in problems))


@dataclass(frozen=True)
class Entry:
    source: SourceConfig          # as the catalog writes it (enabled as written)
    status: Literal["verified", "unverified"]
    reason: str | None            # why an entry is unverified
    about: str                    # what the source is, in a line
    copy: str | None              # the saved copy a test reads (path from the repository root)
    file: Path

    @property
    def platform(self) -> str:
        return self.source.platform or ""

    def as_source(self, vouched: bool = False) -> SourceConfig:
        """The entry as a source to poll: an unverified entry stays disabled unless vouched for."""
        if self.status == "verified" or vouched:
            return self.source
        return self.source.model_copy(update={"enabled": False})

    def record(self) -> dict[str, Any]:
        s = self.source
        return {"name": s.name, "platform": self.platform, "kind": s.kind, "url": s.url, "status": self.status,
                "lang": s.lang, "about": self.about, "reason": self.reason, "copy": self.copy,
                "include": list(s.include), "exclude": list(s.exclude)}


def _entry(raw: Any, file: Path, i: int) -> Entry:
    key = f"sources[{i}]"
    if not isinstance(raw, dict):
        raise CatalogError(file, [(key, "must be a table")])
    meta = {k: raw.pop(k) for k in _META if k in raw}
    problems: list[tuple[str, str]] = []
    status = meta.get("status")
    if status not in ("verified", "unverified"):
        problems.append((f"{key}.status", "must be \"verified\" or \"unverified\""))
    if status == "verified" and not meta.get("copy"):
        problems.append((f"{key}.copy", "a verified entry names its saved copy (tests/data/catalog/...)"))
    if status == "unverified" and not meta.get("reason"):
        problems.append((f"{key}.reason", "an unverified entry says why"))
    for required in ("platform", "lang", "kind"):
        if required not in raw:
            problems.append((f"{key}.{required}", "every catalog entry states it"))
    try:
        source = SourceConfig.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            if msg.startswith("@") and ": " in msg:
                sub, msg = msg[1:].split(": ", 1)
                loc = f"{loc}.{sub}" if loc else sub
            problems.append((f"{key}.{loc}" if loc else key, msg))
    if problems:
        raise CatalogError(file, problems)
    return Entry(source=source, status="verified" if status == "verified" else "unverified", reason=meta.get("reason"), about=str(meta.get("about") or ""),
                 copy=meta.get("copy"), file=file)


def load(directory: Path | None = None) -> list[Entry]:
    """Every entry of the catalog folder (``*.toml``, in name order); names are unique."""
    folder = directory or DEFAULT_DIR
    if not folder.is_dir():
        raise CatalogError(folder, [("", "no catalog folder here (set catalog_dir to one)")])
    entries: list[Entry] = []
    seen: dict[str, Path] = {}
    for file in sorted(folder.glob("*.toml")):
        try:
            doc = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise CatalogError(file, [("", f"cannot read: {exc}")]) from None
        for i, raw in enumerate(doc.get("sources") or []):
            entry = _entry(raw, file, i)
            if entry.source.name in seen:
                raise CatalogError(file, [(f"sources[{i}].name", f"{entry.source.name!r} is already an entry "
                                                                 f"of {seen[entry.source.name].name}")])
            seen[entry.source.name] = file
            entries.append(entry)
    return entries


def platforms(entries: list[Entry]) -> list[str]:
    return sorted({e.platform for e in entries})


def select(entries: list[Entry], wanted: list[str]) -> list[SourceConfig]:
    """The sources that ``catalog = [...]`` asks for: a platform id brings all its entries
    (unverified ones disabled), an entry's name brings that entry turned on."""
    by_name = {e.source.name: e for e in entries}
    ids = set(platforms(entries))
    out: dict[str, SourceConfig] = {}
    problems = []
    for i, w in enumerate(wanted):
        if w in ids:
            for e in entries:
                if e.platform == w and e.source.name not in out:
                    out[e.source.name] = e.as_source()
        elif w in by_name:
            out[w] = by_name[w].as_source(vouched=True)
        else:
            problems.append((f"catalog[{i}]", f"{w!r} is neither a platform of the catalog nor an entry's name "
                                              f"(platforms: {', '.join(sorted(ids))}; "
                                              "`policy-monitor sources --catalog` lists the entries)"))
    if problems:
        raise CatalogError(None, problems)
    return list(out.values())
