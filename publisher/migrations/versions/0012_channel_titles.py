"""per-channel short titles and the WeChat digest

A revision keeps a short title per channel kind that takes one (`short_titles`: WeChat's
title is at most 32 characters, Weibo's title shares 140 units with the link) and the
WeChat article's digest (`wechat_digest`, None: cut from the summary when sent). Revisions
written before have neither: an empty object and NULL, which render as they did.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 09:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('revisions', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('short_titles', sa.JSON(), server_default=sa.text("'{}'"), nullable=False)
        )
        batch_op.add_column(sa.Column('wechat_digest', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('revisions', schema=None) as batch_op:
        batch_op.drop_column('wechat_digest')
        batch_op.drop_column('short_titles')
