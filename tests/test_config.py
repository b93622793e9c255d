"""Configuration errors are reported before anything runs: file, key path, what is wrong, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Project
from monitor.config import ConfigError, load, parse_duration

GOOD_SOURCE = '[[sources]]\nname = "news"\nurl = "http://127.0.0.1:9/feed.xml"\n'


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "monitor.toml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("text, key, words", [
    (GOOD_SOURCE + 'intervall = "15m"\n', "sources[0].intervall", "unknown key"),
    (GOOD_SOURCE + 'interval = "15x"\n', "sources[0].interval", "not a duration"),
    (GOOD_SOURCE + 'interval = "0s"\n', "sources[0].interval", "longer than zero"),
    (GOOD_SOURCE + GOOD_SOURCE, "sources[1].name", "already the name of sources[0]"),
    ('[[sources]]\nname = "News Feed"\nurl = "http://x.org/"\n', "sources[0].name", "a-z, 0-9"),
    ('[[sources]]\nname = "a"\nurl = "ftp://x.org/"\n', "sources[0].url", "not an http(s) URL"),
    ('[[sources]]\nname = "a"\nurl = "http://x.org/"\nkind = "rss"\n', "sources[0].kind", "feed"),
    ('[[sources]]\nname = "a"\n', "sources[0].url", "Field required"),
    (GOOD_SOURCE + '[[notify]]\nname = "m"\nurl = "nosuchscheme://abc"\n', "notify[0].url", "apprise"),
    (GOOD_SOURCE + '[[notify]]\nname = "m"\nurl = "${PM_TEST_UNSET_VAR}"\n', "notify[0].url",
     "PM_TEST_UNSET_VAR is not set"),
    (GOOD_SOURCE + '[[notify]]\nname = "m"\nurl = "json://127.0.0.1:9/"\nmin_confidence = 2\n',
     "notify[0].min_confidence", "less than or equal to 1"),
    ("[storage]\nurl = 5\n", "storage.url", "valid string"),
    ("[fetch]\nmax_bytes = -1\n", "fetch.max_bytes", "greater than 0"),
    ('[fetch]\nproxy = "127.0.0.1:3128"\n', "fetch.proxy", "not a proxy URL"),
    ('[reminders]\nat = "9am"\n', "reminders.at", "not a time of day"),
    ('[reminders]\noffsets = ["1d", "soon"]\n', "reminders.offsets[1]", "not a duration"),
    (GOOD_SOURCE + 'kind = "page"\nselector = "div[["\n', "sources[0].selector", "not a CSS selector"),
    (GOOD_SOURCE + 'ignore = [".ad", "##"]\n', "sources[0].ignore[1]", "not a CSS selector"),
    (GOOD_SOURCE + '[[notify]]\nname = "m"\nurl = "json://127.0.0.1:9/"\nactions = ["block"]\n',
     "notify[0].actions[0]", "'ban'"),
    (GOOD_SOURCE + '[[notify]]\nname = "m"\nurl = "json://127.0.0.1:9/"\nlang = "fr"\n', "notify[0].lang", "'zh'"),
    (GOOD_SOURCE + '[[notify]]\nname = "m"\nurl = "json://127.0.0.1:9/"\ndigest = "daily"\n', "notify[0].digest",
     "not a duration"),
])
def test_each_mistake_names_its_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load(path)
    line = str(err.value).splitlines()[0]
    assert line.startswith(f"{path}: {key}: "), line
    assert words in line


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[[sources]]\nname = "a\n')
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line 2"):
        load(path)


def test_env_reference_is_expanded_and_database_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PM_TEST_URL", "json://127.0.0.1:9/hook")
    monkeypatch.setenv("MONITOR_DATABASE_URL", "sqlite:///elsewhere.db")
    cfg = load(write(tmp_path, GOOD_SOURCE + '[[notify]]\nname = "m"\nurl = "${PM_TEST_URL}"\n'))
    assert cfg.settings.notify[0].url == "json://127.0.0.1:9/hook"
    assert cfg.database_url == "sqlite:///elsewhere.db"
    assert cfg.settings.sources[0].interval.total_seconds() == 900  # the default, 15m


def test_config_found_through_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, GOOD_SOURCE)
    monkeypatch.setenv("MONITOR_CONFIG", str(path))
    assert load(None).path == path


def test_durations() -> None:
    assert [parse_duration(v).total_seconds() for v in ("30s", "15m", "2h", "1d", "1.5h", 90)] == \
        [30, 900, 7200, 86400, 5400, 90]


def test_cli_exits_2_with_one_line_naming_the_key(sqlite_project: Project) -> None:
    sqlite_project.config.write_text(GOOD_SOURCE + 'interval = "soon"\n', encoding="utf-8")
    for command in (["once"], ["run"], ["changes"], ["sources"], ["db", "upgrade"]):
        proc = sqlite_project.run(*command)
        assert proc.returncode == 2, command
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "sources[0].interval" in lines[0] and "monitor.toml" in lines[0], proc.stderr
    assert not (sqlite_project.dir / "monitor.db").exists()  # nothing ran


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    proc = Project(tmp_path, "sqlite://").run("once", "--config", str(tmp_path / "nope.toml"))
    assert proc.returncode == 2 and "nope.toml: no such file" in proc.stderr


def test_shipped_default_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONITOR_DATABASE_URL", raising=False)
    root = Path(__file__).resolve().parent.parent
    cfg = load(root / "config" / "monitor.toml")
    # data/monitor.db at the repository's root, from whatever folder the command runs
    assert cfg.database_url == f"sqlite:///{root / 'data' / 'monitor.db'}"
    assert len(cfg.settings.sources) >= 3
