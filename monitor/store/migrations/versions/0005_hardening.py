"""hardening: poll leases and poll warnings on sources

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 12:00:00

- ``sources.lease_owner`` / ``sources.lease_until``: a poll is claimed by a lease (the worker's id and
  an expiry) instead of a time window, so two daemons never poll one source at once however short
  its interval; a lease left by a killed worker simply expires.
- ``sources.last_warning``: what the last successful poll wants the user to see in `sources` (text
  that still looks like mojibake after charset detection, items over the per-poll cap).

Outbox keys need no wider column: operator-message keys are now a fixed-length hash of their
content (see notify/planner.py), so a long source name can no longer overflow ``outbox.key``.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_owner', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_warning', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.drop_column('last_warning')
        batch_op.drop_column('lease_until')
        batch_op.drop_column('lease_owner')
