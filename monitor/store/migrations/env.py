"""Alembic environment: runs against the engine policy-monitor hands over (no alembic.ini).

On PostgreSQL several processes (daemons, CLI commands) may start at once against a new database;
a transaction-scoped advisory lock makes them migrate one after another instead of racing to
create the same tables.
"""

from alembic import context
from sqlalchemy import text

from monitor.store.models import Base

MIGRATION_LOCK = 0x706F6C6D  # "polm": any constant shared by every policy-monitor process

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
