"""wechat mass results and positions

A mass send WeChat accepted is a job whose result comes later (MASSSENDJOBFINISH or
message/mass/get), and retracting an item must delete its pushed copy, which
message/mass/delete names by msg_id and article_idx. Digests keep msg_data_id, WeChat's
result and when it came (`sending` and `rejected` join the states, stored as strings);
entries keep article_idx.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 01:10:00
"""

from alembic import op
import sqlalchemy as sa

import publisher.models


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('wechat_digests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('msg_data_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('result', sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column('finished_at', publisher.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(batch_op.f('ix_wechat_digests_msg_id'), ['msg_id'], unique=False)
    with op.batch_alter_table('wechat_digest_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('article_idx', sa.Integer(), nullable=True))
    # Digests sent before: their articles went out in position order, from 1.
    op.execute("UPDATE wechat_digest_entries SET article_idx = position + 1")


def downgrade() -> None:
    with op.batch_alter_table('wechat_digest_entries', schema=None) as batch_op:
        batch_op.drop_column('article_idx')
    with op.batch_alter_table('wechat_digests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wechat_digests_msg_id'))
        batch_op.drop_column('finished_at')
        batch_op.drop_column('result')
        batch_op.drop_column('msg_data_id')
