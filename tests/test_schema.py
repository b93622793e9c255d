"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL, and
upgrade a database of the previous revision in place."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from monitor.store import db
from monitor.store.models import Base


def test_migrated_schema_equals_the_models(database_url: str) -> None:
    engine = db.make_engine(database_url)
    try:
        db.upgrade(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        columns = {c["name"] for c in inspect(engine).get_columns("sources")}
        assert {"lease_owner", "lease_until", "last_warning"} <= columns
    finally:
        engine.dispose()


def test_the_fast_path_knows_the_head_revision() -> None:
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(db.alembic_config(db.make_engine("sqlite://"))).get_current_head() == db.HEAD


def test_upgrade_from_0004_keeps_the_rows(database_url: str) -> None:
    from alembic import command
    from sqlalchemy import text

    engine = db.make_engine(database_url)
    try:
        command.upgrade(db.alembic_config(engine), "0004")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO sources (name, kind, url, status, failures, entries_seen, ops_alerted) "
                              "VALUES ('old', 'feed', 'http://x/', 'ok', 0, 3, false)"))
        db.upgrade(engine)
        with engine.connect() as conn:
            row = conn.execute(text("SELECT name, entries_seen, lease_owner, last_warning FROM sources")).one()
        assert tuple(row) == ("old", 3, None, None)
    finally:
        engine.dispose()


def test_upgrade_to_0007_copies_each_mentions_article_and_keeps_it_past_the_entry(database_url: str) -> None:
    """A change keeps its sources' titles, links and dates once retention removes the entries."""
    from alembic import command
    from sqlalchemy import text

    engine = db.make_engine(database_url)
    try:
        command.upgrade(db.alembic_config(engine), "0006")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO sources (id, name, kind, url, status, failures, entries_seen, ops_alerted) "
                              "VALUES (1, 'news', 'feed', 'http://x/', 'ok', 0, 1, false)"))
            conn.execute(text("INSERT INTO entries (id, source_id, guid, url, content_hash, title, published, body, "
                              "discovered_at, changes_found) VALUES (7, 1, 'g1', 'http://x/a', 'h1', 'A title', "
                              "'2023-04-10 02:00:00+00:00', 'text', '2023-04-10 03:00:00+00:00', 1)"))
            conn.execute(text("INSERT INTO changes (id, platform, targets, action, link_type, evidence, confidence, "
                              "first_seen, updated_at, status, found_by) VALUES (3, 'douyin', '[]', 'ban', 'other', "
                              "'ev', 0.9, '2023-04-10 03:00:00+00:00', '2023-04-10 03:00:00+00:00', 'active', 'poll')"))
            conn.execute(text("INSERT INTO mentions (change_id, entry_id, evidence, confidence, created_at) "
                              "VALUES (3, 7, 'ev', 0.9, '2023-04-10 03:00:00+00:00')"))
        db.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM entries WHERE id = 7"))
        with engine.connect() as conn:
            row = conn.execute(text("SELECT entry_id, source_name, title, url, published FROM mentions")).one()
        assert tuple(row[:4]) == (None, "news", "A title", "http://x/a")
        assert str(row[4]).startswith("2023-04-10 02:00:00")
    finally:
        engine.dispose()


def test_processes_opening_a_new_database_together_all_start(database_url: str) -> None:
    """Two daemons, or a daemon and the CLI, started together on a new database: the second to
    write the configured sources finds them made, instead of dying on a duplicate key (seen on
    PostgreSQL as a daemon that never started)."""
    import threading

    from sqlalchemy import func, select

    from monitor.config import SourceConfig
    from monitor.store import repo
    from monitor.store.models import Source

    configured = [SourceConfig(name=f"news-{i}", url=f"http://127.0.0.1:9/{i}.xml") for i in range(3)]
    engine = db.make_engine(database_url)
    try:
        db.upgrade(engine)
        sessions = db.session_factory(engine)
        first = sessions()
        first.begin()
        repo.sync_sources(first, configured)
        first.flush()                          # the rows are written, not yet committed
        errors: list[BaseException] = []

        def second() -> None:                  # reads no rows yet; its insert waits on the first's
            try:
                with sessions.begin() as s:
                    repo.sync_sources(s, configured)
            except BaseException as exc:       # noqa: BLE001 - handed to the test thread
                errors.append(exc)

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.5)
        first.commit()
        first.close()
        thread.join(30)
        assert not thread.is_alive()
        assert errors == []
        with sessions() as s:
            assert s.scalar(select(func.count()).select_from(Source)) == 3
    finally:
        engine.dispose()
