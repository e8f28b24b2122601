"""indexes for the operator's dashboard and charts

The console's dashboard counts the last hour's attempts per channel and its charts the last
day's, by when each attempt ended; the time from publishing to live reads the deliveries that
went live in the last day. Both tables grow with every item: index `attempts.finished_at` and
`deliveries.live_at` so those reads take a range, not the whole table.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 10:00:00
"""

from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attempts_finished_at'), ['finished_at'], unique=False)
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deliveries_live_at'), ['live_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deliveries_live_at'))
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attempts_finished_at'))
