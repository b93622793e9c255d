"""TOML configuration: read, expand ``${ENV}`` secrets, validate, and report errors by key path.

Every mistake is found before anything runs, and each is reported as
``FILE: key.path: what is wrong`` so a user can fix the file without reading code.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

DEFAULT_CONFIG = Path("config/monitor.toml")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")


class ConfigError(Exception):
    """A configuration problem; ``str()`` gives one line per problem, each naming file and key."""

    def __init__(self, path: Path | str, problems: list[tuple[str, str]]):
        self.path = str(path)
        self.problems = problems
        super().__init__("\n".join(f"{self.path}: {key}: {msg}" if key else f"{self.path}: {msg}"
                                   for key, msg in problems))


def parse_duration(value: Any) -> timedelta:
    """Durations are written as in most daemons' configs: ``30s``, ``15m``, ``2h``, ``1d``."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration (write it as 30s, 15m, 2h or 1d)")
    if seconds <= 0:
        raise ValueError(f"{value!r} must be longer than zero")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def parse_offset(value: Any) -> timedelta:
    """Durations that may be zero: reminder offsets ("0d": on the day), delays."""
    if value in ("0", "0d", "0h", "0m", "0s", 0):
        return timedelta(0)
    return parse_duration(value)


Offset = Annotated[timedelta, BeforeValidator(parse_offset)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageConfig(_Strict):
    url: str = "sqlite:///data/monitor.db"


class FetchConfig(_Strict):
    timeout: Duration = timedelta(seconds=20)
    connect_timeout: Duration = timedelta(seconds=10)
    max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_redirects: int = Field(default=5, ge=0)
    user_agent: str = "policy-monitor/0.1 (+https://github.com/policy-monitor/policy-monitor)"
    proxy: str | None = None
    workers: int = Field(default=8, ge=1, le=64)
    host_concurrency: int = Field(default=2, ge=1)
    host_delay: Offset = timedelta(seconds=1)
    max_retry_after: Duration = timedelta(hours=6)
    allow_private: bool = False
    max_items: int = Field(default=500, ge=1)   # items kept per poll: the newest

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, v: str | None) -> str | None:
        if v and not re.match(r"^(https?|socks5h?)://[^/\s]+", v):
            raise ValueError(f"{v!r} is not a proxy URL (http://host:port or socks5://host:port)")
        return v


class DaemonConfig(_Strict):
    deliver_every: Duration = timedelta(seconds=30)
    jitter: Duration = timedelta(seconds=30)
    max_backoff: Duration = timedelta(hours=6)
    shutdown_grace: Offset = timedelta(seconds=10)   # how long a stop waits for in-flight polls


def parse_heartbeat(value: Any) -> timedelta:
    """``[log] heartbeat``: a duration, or ``"0"`` / ``"off"`` / ``false`` for none (zero)."""
    if value is False or (isinstance(value, str) and value.strip().lower() in ("off", "no", "none", "false")):
        return timedelta(0)
    try:
        return parse_offset(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a duration (write it as 30s, 15m, 2h or 1d; \"off\" for no "
                         "heartbeat)") from None


class LogConfig(_Strict):
    """How the log is written: ``text`` (one line per event) or ``json`` (one object per line), and
    how often the daemon sums up what it did (a heartbeat line; zero turns it off)."""

    format: Literal["text", "json"] = "text"
    heartbeat: Annotated[timedelta, BeforeValidator(parse_heartbeat)] = timedelta(minutes=15)


class DisplayConfig(_Strict):
    timezone: str = "local"   # an IANA zone name (Asia/Shanghai, UTC) or "local": the machine's

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        if v != "local":
            from zoneinfo import ZoneInfo

            try:
                ZoneInfo(v)
            except (ValueError, KeyError, OSError):
                raise ValueError(f"{v!r} is not a time zone (write an IANA name such as Asia/Shanghai or UTC, "
                                 "or local)") from None
        return v


class DeliveryConfig(_Strict):
    max_attempts: int = Field(default=8, ge=1)
    retry_after: Duration = timedelta(minutes=1)
    max_retry_after: Duration = timedelta(hours=6)
    timeout: Duration = timedelta(seconds=30)


class RemindersConfig(_Strict):
    offsets: list[Offset] = Field(default_factory=lambda: [timedelta(days=7), timedelta(days=1), timedelta(0)])
    at: str = "09:00"

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str:
        if not re.match(r"^([01]\d|2[0-3]):[0-5]\d$", v):
            raise ValueError(f"{v!r} is not a time of day (HH:MM, 24-hour)")
        return v


class OpsConfig(_Strict):
    failing_after: Duration = timedelta(hours=6)


class ExtractConfig(_Strict):
    lexicon: str | None = None
    model: str | None = None        # a model file built by `policy-monitor train` (default: the shipped one)
    alert_window: Duration = timedelta(days=30)


def parse_age(value: Any) -> timedelta | None:
    """A retention age: a duration (``180d``), or ``0``/``"0d"``/``"off"`` for no age limit (None)."""
    if value is None or value in ("off", "0", "0d", "0h", "0m", "0s", 0) or value is False:
        return None
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an age (write it as 90d or 12h, or \"off\")") from None


Age = Annotated[timedelta | None, BeforeValidator(parse_age)]


class RetentionConfig(_Strict):
    """What ``db prune`` and the daemon's daily pass remove. Changes, their history and labels are
    never removed (they are the log); every rule is off at 0 (or "off" for an age)."""

    entries_max_age: Age = timedelta(days=180)   # entries stored longer ago than this
    entries_max_count: int = Field(default=0, ge=0)  # per source: only the newest N (0: no limit)
    versions_keep: int = Field(default=100, ge=0)    # watched pages: the newest N versions each (0: all)
    versions_max_age: Age = None                 # watched pages: versions fetched longer ago than this
    deliveries_max_age: Age = timedelta(days=90)  # finished deliveries (sent, dead, ...) older than this


class TemplatesConfig(_Strict):
    dir: str | None = None


DEFAULT_LISTEN = "127.0.0.1:8080"


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) as the host and the port to bind."""
    m = re.match(r"^\s*(\[[0-9a-fA-F:.]+\]|[^\s:\[\]]+):(\d{1,5})\s*$", value or "")
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080)")
    return m.group(1).strip("[]"), int(m.group(2))


class HttpConfig(_Strict):
    """The web pages, JSON API and feeds (``policy-monitor serve``; the daemon too when ``listen`` is set)."""

    listen: str | None = None
    token: str | None = None   # writes (corrections) need it; without one the server is read-only

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str | None) -> str | None:
        if v is not None:
            parse_listen(v)
        return v

    @field_validator("token")
    @classmethod
    def _token(cls, v: str | None) -> str | None:
        if v is not None and len(v.strip()) < 16:
            raise ValueError("must be at least 16 characters (e.g. the output of `openssl rand -hex 16`)")
        return v.strip() if v is not None else None


class BrowserConfig(_Strict):
    """The headless Chromium that ``kind = "browser"`` sources share (one per process)."""

    executable: str | None = None   # default: chromium on PATH, else playwright's own browser
    pages: int = Field(default=2, ge=1, le=16)   # pages rendered at the same time
    timeout: Duration = timedelta(seconds=45)    # per page, unless the source sets its own timeout
    keep_alive: Duration = timedelta(minutes=5)  # an idle browser is closed after this (memory back)


def _check_name(value: str, example: str) -> str:
    """Source and notifier names appear in logs, commands and URLs: keep them plain."""
    if not _NAME.match(value):
        raise ValueError(f"{value!r} must be 1-100 characters of a-z, 0-9 and '-' (e.g. {example})")
    return value


def _css(value: str) -> str:
    import soupsieve

    try:
        soupsieve.compile(value)
    except Exception as exc:  # SelectorSyntaxError, or a type error for non-strings
        raise ValueError(f"{value!r} is not a CSS selector: {str(exc).splitlines()[0]}") from None
    return value


Css = Annotated[str, BeforeValidator(lambda v: _css(v) if isinstance(v, str) else v)]


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except (re.error, TypeError) as exc:
        raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
    return value


Regex = Annotated[str, BeforeValidator(lambda v: _regex(v) if isinstance(v, str) else v)]


def _jmespath(value: str) -> str:
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        jmespath.compile(value)
    except JMESPathError as exc:
        raise ValueError(f"{value!r} is not a JMESPath expression: {str(exc).splitlines()[0]}") from None
    return value


class SelectorsConfig(_Strict):
    """CSS selectors for HTML kinds (item, title, link, date; wait_for for a browser), JMESPath
    expressions for kind = "json" (items, title, link, date, body): which language a key speaks
    depends on the source's kind, so they are checked by SourceConfig."""

    item: str | None = None
    items: str | None = None
    title: str | None = None
    link: str | None = None
    date: str | None = None
    body: str | None = None
    wait_for: str | None = None


_JSON_SELECTORS = ("items", "title", "link", "date", "body")
_CSS_SELECTORS = ("item", "title", "link", "date")


class SourceConfig(_Strict):
    name: str
    kind: Literal["feed", "page-list", "page", "json", "browser"] = "feed"
    url: str
    interval: Duration = timedelta(minutes=15)
    lang: Literal["zh", "en", "auto"] = "auto"
    platform: str | None = None
    enabled: bool = True
    timeout: Duration | None = None
    follow: bool = False                       # fetch each item's own page for its full text
    selectors: SelectorsConfig = SelectorsConfig()   # page-list, browser (CSS); json (JMESPath)
    selector: Css | None = None                # page: the part of the page to watch
    ignore: list[Css] = Field(default_factory=list)  # page: parts to leave out (ads, counters)
    include: list[Regex] = Field(default_factory=list)  # keep only entries whose title or body matches one
    exclude: list[Regex] = Field(default_factory=list)  # drop entries whose title or body matches one
    parse: Literal["page-list", "page"] = "page-list"   # browser: read the rendered page as a list or watch it
    allow_hosts: list[str] = Field(default_factory=list)  # browser: other hosts the page may load from
    method: Literal["GET", "POST"] = "GET"     # json
    body: str | dict[str, Any] | None = None   # json, POST: a string sent as is, a table sent as JSON
    headers: dict[str, str] = Field(default_factory=dict)  # json, browser: extra request headers

    @property
    def parses_as(self) -> str:
        """How the fetched document is read: a browser source reads its rendered page as a list or
        a watched page; every other kind is its own reading."""
        return self.parse if self.kind == "browser" else self.kind

    _name = field_validator("name")(classmethod(lambda cls, v: _check_name(v, "kuaishou-notices")))

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v

    @model_validator(mode="after")
    def _by_kind(self) -> "SourceConfig":
        """Keys whose meaning depends on the kind. A message starting with ``@key:`` is reported
        under that key of this source (``sources[2].selectors.item``)."""
        sel = self.selectors
        if self.kind == "json":
            for key in ("item", "wait_for"):
                if getattr(sel, key):
                    raise ValueError(f"@selectors.{key}: not a selector of kind = \"json\" "
                                     "(it takes items, title, link, date, body as JMESPath)")
            for key in ("items", "title"):
                if not getattr(sel, key):
                    raise ValueError(f"@selectors.{key}: kind = \"json\" needs it (a JMESPath expression)")
            for key in _JSON_SELECTORS:
                value = getattr(sel, key)
                if value:
                    try:
                        _jmespath(value)
                    except ValueError as exc:
                        raise ValueError(f"@selectors.{key}: {exc}") from None
        else:
            for key in ("items", "body"):
                if getattr(sel, key):
                    raise ValueError(f"@selectors.{key}: only kind = \"json\" takes it")
            if sel.wait_for and self.kind != "browser":
                raise ValueError("@selectors.wait_for: only kind = \"browser\" takes it")
            for key in (*_CSS_SELECTORS, "wait_for"):
                value = getattr(sel, key)
                if value:
                    try:
                        _css(value)
                    except ValueError as exc:
                        raise ValueError(f"@selectors.{key}: {exc}") from None
        if self.kind != "json" and (self.method != "GET" or self.body is not None):
            raise ValueError(f"@{'method' if self.method != 'GET' else 'body'}: only kind = \"json\" takes it")
        if self.body is not None and self.method != "POST":
            raise ValueError("@body: a body is sent only with method = \"POST\"")
        if self.kind != "browser" and self.allow_hosts:
            raise ValueError("@allow_hosts: only kind = \"browser\" takes it")
        if self.headers and self.kind not in ("json", "browser"):
            raise ValueError("@headers: only kinds \"json\" and \"browser\" take it")
        return self



class NotifierConfig(_Strict):
    name: str
    url: str
    platforms: list[str] = Field(default_factory=list)
    targets: list[str] = Field(default_factory=list)
    actions: list[Literal["ban", "restrict", "allow", "require"]] = Field(default_factory=list)
    link_types: list[Literal["affiliate", "third_party_product", "external_url", "mini_program", "social_profile",
                             "news", "payment", "other"]] = Field(default_factory=list)
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    lang: Literal["zh", "en"] = "zh"
    format: Literal["auto", "text", "markdown", "html"] = "auto"
    digest: Duration | None = None
    reminders: bool = True
    ops: bool = False
    enabled: bool = True

    _name = field_validator("name")(classmethod(lambda cls, v: _check_name(v, "ops-mail")))

    @field_validator("url")
    @classmethod
    def _apprise_url(cls, v: str, info: ValidationInfo) -> str:
        if isinstance(info.context, dict) and not info.context.get("secrets", True):
            return v  # a command that sends nothing: the URL (a secret) is neither read nor checked
        from monitor.notify.channels import check_url  # apprise is slow to import; only when needed

        problem = check_url(v)
        if problem:
            raise ValueError(problem)
        return v


class Settings(_Strict):
    storage: StorageConfig = StorageConfig()
    fetch: FetchConfig = FetchConfig()
    daemon: DaemonConfig = DaemonConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    extract: ExtractConfig = ExtractConfig()
    reminders: RemindersConfig = RemindersConfig()
    ops: OpsConfig = OpsConfig()
    templates: TemplatesConfig = TemplatesConfig()
    retention: RetentionConfig = RetentionConfig()
    http: HttpConfig = HttpConfig()
    display: DisplayConfig = DisplayConfig()
    browser: BrowserConfig = BrowserConfig()
    log: LogConfig = LogConfig()
    catalog: list[str] = Field(default_factory=list)   # platform ids (or entry names) taken from the catalog
    catalog_dir: str | None = None                     # another catalog folder (default: the shipped one)
    sources: list[SourceConfig] = Field(default_factory=list)
    notify: list[NotifierConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> "Settings":
        for section, names in (("sources", [x.name for x in self.sources]),
                               ("notify", [x.name for x in self.notify])):
            seen: dict[str, int] = {}
            for i, name in enumerate(names):
                if name in seen:
                    raise ValueError(f"{section}[{i}].name: {name!r} is already the name of {section}[{seen[name]}]")
                seen[name] = i
        return self


@dataclass(frozen=True)
class Config:
    """Validated settings plus where they came from (errors and relative paths refer to it)."""

    path: Path
    settings: Settings
    database_from_env: bool = False
    secrets: bool = True     # notifier URLs were read (from the environment) and checked

    @property
    def database_url(self) -> str:
        """storage.url, with a relative SQLite path read against the config file's folder (like every
        other path in the file), so a command run from another folder finds the same database.
        A path given in $MONITOR_DATABASE_URL is relative to the working directory, as shells are."""
        url = self.settings.storage.url
        if self.database_from_env:
            return url
        return sqlite_relative_to(url, self.path.parent)

    def relative(self, path: str | None) -> str | None:
        """Paths in the config (lexicon, templates) are relative to the config file's folder."""
        if not path:
            return None
        p = Path(path)
        return str(p if p.is_absolute() else self.path.parent / p)

    def source(self, name: str) -> SourceConfig:
        for s in self.settings.sources:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.settings.sources) or "none"
        raise KeyError(f"no source named {name!r} in {self.path} (known: {known})")


def sqlite_relative_to(url: str, folder: Path) -> str:
    """``sqlite:///data/m.db`` read against ``folder``; any other URL unchanged."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    path, sep, query = url[len(prefix):].partition("?")
    if not path or path == ":memory:" or path.startswith("/"):
        return url
    return prefix + str((folder / path).resolve()) + sep + query


def resolve_path(explicit: str | os.PathLike[str] | None) -> Path:
    """``--config`` wins, then ``$MONITOR_CONFIG``, then ``config/monitor.toml``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("MONITOR_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _expand_env(raw: dict[str, Any], problems: list[tuple[str, str]], secrets: bool = True) -> None:
    """Secrets stay out of the file: ``url = "${OPS_MAIL_URL}"`` is read from the environment, and
    only by commands that send (``secrets``): reading the change log needs no mail password."""

    def expand(value: str, key: str) -> str:
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                problems.append((key, f"environment variable {name} is not set"))
                return ""
            return os.environ[name]

        return _ENV_REF.sub(sub, value)

    for i, item in enumerate(raw.get("notify") or [] if secrets else []):
        if isinstance(item, dict) and isinstance(item.get("url"), str):
            item["url"] = expand(item["url"], f"notify[{i}].url")
    for i, item in enumerate(raw.get("sources") or []):
        headers = item.get("headers") if isinstance(item, dict) else None
        if isinstance(headers, dict):
            for k, v in headers.items():
                if isinstance(v, str):
                    headers[k] = expand(v, f"sources[{i}].headers.{k}")
    storage = raw.get("storage")
    if isinstance(storage, dict) and isinstance(storage.get("url"), str):
        storage["url"] = expand(storage["url"], "storage.url")
    http = raw.get("http")
    if isinstance(http, dict) and isinstance(http.get("token"), str):
        http["token"] = expand(http["token"], "http.token")


def load(path: str | os.PathLike[str] | None = None, secrets: bool = True) -> Config:
    """Read and validate the configuration; raise ConfigError listing every problem found.

    ``secrets=False`` is for commands that send nothing (queries, offline extraction): notifier URLs
    are then left as written, neither read from the environment nor checked by apprise."""
    cfg_path = resolve_path(path)
    try:
        text = cfg_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(cfg_path, [("", "no such file (give --config PATH or set MONITOR_CONFIG)")])
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(cfg_path, [("", f"cannot read: {exc}")])
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(cfg_path, [("", f"not valid TOML: {exc}")])

    problems: list[tuple[str, str]] = []
    _expand_env(raw, problems, secrets)
    from_env = bool(os.environ.get("MONITOR_DATABASE_URL"))
    if from_env:
        raw.setdefault("storage", {})
        if isinstance(raw["storage"], dict):
            raw["storage"]["url"] = os.environ["MONITOR_DATABASE_URL"]
    if os.environ.get("MONITOR_HTTP_TOKEN"):
        raw.setdefault("http", {})
        if isinstance(raw["http"], dict):
            raw["http"]["token"] = os.environ["MONITOR_HTTP_TOKEN"]
    if problems:
        raise ConfigError(cfg_path, problems)
    try:
        settings = Settings.model_validate(raw, context={"secrets": secrets})
    except ValidationError as exc:
        for err in exc.errors():
            key = _key_path(tuple(err["loc"]))
            msg = str(err["msg"])
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling; see README 'Configuration')"
            if not key and re.match(r"^\w+\[\d+\]\.\w+: ", msg):
                key, msg = msg.split(": ", 1)
            if msg.startswith("@") and ": " in msg:
                sub, msg = msg[1:].split(": ", 1)
                key = f"{key}.{sub}" if key else sub
            problems.append((key, msg))
        raise ConfigError(cfg_path, problems)
    if settings.catalog:
        settings = _with_catalog(cfg_path, settings)
    return Config(path=cfg_path, settings=settings, database_from_env=from_env, secrets=secrets)


def catalog_dir(cfg_path: Path, settings: Settings) -> Path | None:
    """``catalog_dir`` relative to the config file; None for the shipped catalog."""
    if not settings.catalog_dir:
        return None
    p = Path(settings.catalog_dir)
    return p if p.is_absolute() else cfg_path.parent / p


def _with_catalog(cfg_path: Path, settings: Settings) -> Settings:
    """The settings with the catalog entries that ``catalog = [...]`` names added as sources. A
    source of the file's own with an entry's name wins over the entry."""
    from monitor import catalog

    try:
        entries = catalog.load(catalog_dir(cfg_path, settings))
        picked = catalog.select(entries, settings.catalog)
    except catalog.CatalogError as exc:
        raise ConfigError(exc.path or cfg_path, exc.problems) from None
    own = {s.name for s in settings.sources}
    added = [s for s in picked if s.name not in own]
    return settings.model_copy(update={"sources": [*settings.sources, *added]})
