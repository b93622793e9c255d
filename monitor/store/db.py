"""Engine creation and migrations.

The same code runs on SQLite (the default, a file under ``data/``) and PostgreSQL; Alembic owns the
schema so that a daemon started on an old database upgrades it before touching it.
"""

from __future__ import annotations

import fcntl
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from monitor.sanitize import mask_url, mask_urls_in

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

#: The newest migration (tests/test_schema.py checks it is Alembic's head): a database already there
#: is not handed to Alembic at all, which saves every command a third of a second.
HEAD = "0007"

MIGRATIONS = Path(__file__).with_name("migrations")
log = logging.getLogger("monitor.store")


class DatabaseError(Exception):
    """The database URL is unusable or the server cannot be reached. ``usage`` marks a mistake in the
    configuration (a URL that cannot be parsed, a missing driver, no database file where a command
    that only reads expects one): the CLI exits 2 for those, 1 for an outage."""

    def __init__(self, message: str, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


def shown(url: str) -> str:
    """A database URL as it may be printed: no password, no query values."""
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":  # a file's path holds no secret; say which file
            return f"{parsed.drivername}:///{parsed.database or ''}"
        return mask_url(parsed.render_as_string(hide_password=True).replace(":***@", "@"))
    except (ArgumentError, ValueError, TypeError):
        return mask_url(url)


def make_engine(url: str, create: bool = True, readonly: bool = False) -> Engine:
    """An engine for ``url``; SQLite gets its folder created, WAL mode and foreign keys on. With
    ``create=False`` a SQLite file that does not exist is an error rather than a new empty database.

    ``readonly`` (SQLite): transactions start deferred and the connection refuses writes, so the web
    pages read a snapshot beside a polling daemon instead of queueing for its write lock."""
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - a non-numeric port raises here, not later with a traceback
    except (ArgumentError, ValueError, TypeError) as exc:
        reason = "the port is not a number" if isinstance(exc, ValueError) else "it cannot be parsed"
        raise DatabaseError(f"storage.url {shown(url)} is not a database URL: {reason}", usage=True) from None
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database)
            if not path.exists():
                if not create:
                    raise DatabaseError(f"no database at {path} yet (storage.url {shown(url)}): nothing has been "
                                        "polled with this configuration; run `policy-monitor once` first, or "
                                        "check storage.url (a relative path is read against the config file's "
                                        "folder)", usage=True)
                path.parent.mkdir(parents=True, exist_ok=True)
                log.info("creating a new database at %s", path)
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
        raise DatabaseError(f"cannot use database {shown(url)}: {mask_urls_in(str(exc))}", usage=True) from None


def alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

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


def at_head(engine: Engine) -> bool:
    """Whether the database is already at the newest revision."""
    try:
        with engine.connect() as conn:
            return bool(conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD)
    except Exception:  # no such table yet, or the server is down: let upgrade() find out and say so
        return False


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent, safe with concurrent starters)."""
    if at_head(engine):
        return
    from alembic import command

    try:
        with _sqlite_migration_lock(engine):
            command.upgrade(alembic_config(engine), "head")
    except Exception as exc:
        raise DatabaseError(f"cannot migrate {shown(engine.url.render_as_string(hide_password=False))}: "
                            f"{mask_urls_in(str(exc))}") from exc


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
