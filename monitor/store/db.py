"""Engine creation and migrations.

The same code runs on SQLite (the default, a file under ``data/``) and PostgreSQL; Alembic owns the
schema so that a daemon started on an old database upgrades it before touching it.
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


class DatabaseError(Exception):
    """The database URL is unusable or the server cannot be reached."""


def make_engine(url: str, readonly: bool = False) -> Engine:
    """An engine for ``url``; SQLite gets its folder created, WAL mode and foreign keys on.

    ``readonly`` (SQLite): transactions start deferred and the connection refuses writes, so the web
    pages read a snapshot beside a polling daemon instead of queueing for its write lock."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"storage.url {url!r} is not a database URL: {exc}") from exc
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # durable across crashes of the process in WAL mode
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            if readonly:
                cur.execute("PRAGMA query_only=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):  # type: ignore[no-untyped-def]
            # Take the write lock at the start: several pollers read-then-write concurrently, and a
            # deferred transaction that read an older snapshot would fail when it tries to write.
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except Exception as exc:  # a missing driver, say
        raise DatabaseError(f"cannot use database {parsed.render_as_string(hide_password=True)}: {exc}") from exc


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


@contextmanager
def _sqlite_migration_lock(engine: Engine) -> Iterator[None]:
    """SQLite has no advisory locks: processes starting together on a new file take turns through an
    OS file lock beside the database, so only the first creates the tables."""
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:":
        yield
        return
    with open(f"{path}.migrate-lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent, safe with concurrent starters)."""
    try:
        with _sqlite_migration_lock(engine):
            command.upgrade(alembic_config(engine), "head")
    except Exception as exc:
        raise DatabaseError(
            f"cannot migrate {engine.url.render_as_string(hide_password=True)}: {exc}"
        ) from exc


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
