"""web: indexes for the change log's pages, feeds and calendar, and a change's deliveries

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-01 12:00:00

"""
from typing import Sequence, Union

from alembic import op


revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index('ix_changes_seen', 'changes', ['first_seen', 'id'], unique=False)
    op.create_index('ix_changes_platform_seen', 'changes', ['platform', 'first_seen', 'id'], unique=False)
    op.create_index('ix_changes_updated', 'changes', ['updated_at'], unique=False)
    op.create_index('ix_changes_effective', 'changes', ['effective_date'], unique=False)
    op.create_index('ix_outbox_change', 'outbox', ['change_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_outbox_change', table_name='outbox')
    op.drop_index('ix_changes_effective', table_name='changes')
    op.drop_index('ix_changes_updated', table_name='changes')
    op.drop_index('ix_changes_platform_seen', table_name='changes')
    op.drop_index('ix_changes_seen', table_name='changes')
