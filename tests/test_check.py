"""`policy-monitor check`: a broken notifier URL, a dead source, a database of another revision, and a
good setup, each as a user runs it (real feeds on loopback, SQLite)."""

from __future__ import annotations

from pathlib import Path

from conftest import DOUYIN_ITEM, HTTPServer, Project, Route, rss

SECRET = "s3cret-token"


def test_a_broken_notifier_and_a_dead_source_are_one_line_each_and_nothing_is_stored(
        sqlite_project: Project, http: HTTPServer) -> None:
    project = sqlite_project
    http.routes["/feed.xml"] = Route(rss([DOUYIN_ITEM]))
    project.write_config([{"name": "good", "url": http.url("/feed.xml")},
                          {"name": "dead", "url": http.url("/gone.xml")}],
                         [{"name": "team", "url": f"nope://user:{SECRET}@example.org/x"},
                          {"name": "mail", "url": "${MAIL_URL_NOT_SET}"}],
                         extra='[templates]\ndir = "tpl"\n')
    (project.dir / "tpl").mkdir()
    (project.dir / "tpl" / "message.zh.j2").write_text("{{ c.platform }\n", encoding="utf-8")
    proc = project.run("check", "--fetch")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert len(lines) == 4, proc.stdout
    assert lines[0].startswith("notifier team: url: ") and "not a notification URL" in lines[0]
    assert lines[1] == "notifier mail: url: environment variable MAIL_URL_NOT_SET is not set"
    assert lines[2].startswith("templates: ") and "message.zh.j2, line 1" in lines[2]
    assert lines[3].startswith("source dead: ") and "404" in lines[3]
    assert SECRET not in proc.stdout + proc.stderr
    assert "4 problems found" in proc.stderr
    assert http.hits["/feed.xml"] == 1                        # the good source was fetched, once
    assert not (project.dir / "monitor.db").exists()          # and nothing was stored


def test_a_good_setup_says_ok_and_a_database_of_another_revision_is_named(
        sqlite_project: Project, http: HTTPServer) -> None:
    from alembic import command
    from sqlalchemy import text

    from monitor.store import db

    project = sqlite_project
    names = [f"feed-{i}" for i in range(6)]
    for name in names:
        http.routes[f"/{name}.xml"] = Route(rss([DOUYIN_ITEM]))
    project.write_config([{"name": n, "url": http.url(f"/{n}.xml")} for n in names],
                         [{"name": "team", "url": f"json://user:{SECRET}@127.0.0.1:9/hook"}])
    proc = project.run("check", "--fetch", check=0)
    assert proc.stdout.startswith("OK: ") and "6 sources (6 enabled), 1 notifiers" in proc.stdout
    assert "fetched 6 of 6 enabled sources (6 items)" in proc.stdout
    assert "not created yet" in proc.stdout
    assert "fetched 6/6 sources" in proc.stderr               # progress, for many sources
    assert SECRET not in proc.stdout + proc.stderr

    engine = db.make_engine(project.database_url)
    try:
        command.upgrade(db.alembic_config(engine), "0006")
        proc = project.run("check", check=0)
        assert f"at revision 0006: migrations to {db.HEAD} pending" in proc.stdout
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
        proc = project.run("check")
        assert proc.returncode == 1
        assert proc.stdout.startswith("database: ") and "revision 0099" in proc.stdout and "newer" in proc.stdout
    finally:
        engine.dispose()
    assert Path(project.dir / "monitor.db").exists()
