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
