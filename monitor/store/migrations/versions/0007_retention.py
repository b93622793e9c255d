"""retention: mentions keep their article's source, title, link and date; pruned entries' keys

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 12:30:00

- ``mentions.source_name``, ``title``, ``url``, ``published``: a copy of what the change log shows of
  the reporting article, backfilled here from the entries, so a change keeps its sources after
  retention (``policy-monitor db prune``, the daemon's daily pass) removes the entries behind it.
- ``mentions.entry_id`` becomes nullable, and deleting an entry sets it to NULL instead of deleting
  the mention (the report and its evidence stay in the log).
- indexes on ``change_events.entry_id`` and ``page_versions.entry_id``: removing an entry sets
  those to NULL, which without an index scans each table once per removed entry.
- ``pruned_entries``: the dedup keys (GUID, canonical URL, content hash) of removed entries, so an
  item its feed still lists is never stored, detected or alerted again.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_COPY = ("source_name", "title", "url", "published")


def upgrade() -> None:
    op.create_table(
        'pruned_entries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('source_id', sa.Integer(), nullable=False),
        sa.Column('guid', sa.String(length=512), nullable=False),
        sa.Column('canonical_url', sa.String(length=1024), nullable=True),
        sa.Column('content_hash', sa.String(length=64), nullable=False),
        sa.Column('pruned_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['source_id'], ['sources.id'], name=op.f('fk_pruned_entries_source_id_sources'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_pruned_entries')),
    )
    op.create_index('ix_pruned_entries_source_guid', 'pruned_entries', ['source_id', 'guid'], unique=False)
    op.create_index('ix_pruned_entries_source_canonical', 'pruned_entries', ['source_id', 'canonical_url'],
                    unique=False)
    op.create_index('ix_pruned_entries_source_hash', 'pruned_entries', ['source_id', 'content_hash'], unique=False)
    op.create_index('ix_change_events_entry_id', 'change_events', ['entry_id'], unique=False)
    op.create_index('ix_page_versions_entry_id', 'page_versions', ['entry_id'], unique=False)

    with op.batch_alter_table('mentions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_name', sa.String(length=100), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('title', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('url', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('published', sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint('fk_mentions_entry_id_entries', type_='foreignkey')
        batch_op.alter_column('entry_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_foreign_key('fk_mentions_entry_id_entries', 'entries', ['entry_id'], ['id'],
                                    ondelete='SET NULL')

    # One statement per column, correlated on the entry: the same SQL on SQLite and PostgreSQL.
    op.execute("UPDATE mentions SET source_name = COALESCE((SELECT s.name FROM entries e JOIN sources s "
               "ON s.id = e.source_id WHERE e.id = mentions.entry_id), '')")
    op.execute("UPDATE mentions SET title = COALESCE((SELECT e.title FROM entries e "
               "WHERE e.id = mentions.entry_id), '')")
    for column in ("url", "published"):
        op.execute(f"UPDATE mentions SET {column} = (SELECT e.{column} FROM entries e "
                   "WHERE e.id = mentions.entry_id)")


def downgrade() -> None:
    # Mentions whose entry is gone cannot point at one again: they go, as CASCADE would have done.
    op.execute("DELETE FROM mentions WHERE entry_id IS NULL")
    with op.batch_alter_table('mentions', schema=None) as batch_op:
        batch_op.drop_constraint('fk_mentions_entry_id_entries', type_='foreignkey')
        batch_op.alter_column('entry_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key('fk_mentions_entry_id_entries', 'entries', ['entry_id'], ['id'],
                                    ondelete='CASCADE')
        for column in reversed(_COPY):
            batch_op.drop_column(column)
    op.drop_index('ix_page_versions_entry_id', table_name='page_versions')
    op.drop_index('ix_change_events_entry_id', table_name='change_events')
    op.drop_index('ix_pruned_entries_source_hash', table_name='pruned_entries')
    op.drop_index('ix_pruned_entries_source_canonical', table_name='pruned_entries')
    op.drop_index('ix_pruned_entries_source_guid', table_name='pruned_entries')
    op.drop_table('pruned_entries')
