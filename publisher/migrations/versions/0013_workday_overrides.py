"""the working-day calendar's overrides and confirmed years

`workday_overrides`: holidays and make-up working days an admin enters for the years the
`chinese_calendar` library does not know yet; `workday_years`: the years an admin confirmed
complete. Both start empty.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 09:00:00
"""

from alembic import op
import sqlalchemy as sa
import publisher.models


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

UTC_DATETIME = publisher.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'workday_overrides',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('is_workday', sa.Boolean(), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('created_by', sa.String(length=64), nullable=True),
        sa.Column('created_at', UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint('day'),
    )
    op.create_table(
        'workday_years',
        sa.Column('year', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('confirmed_by', sa.String(length=64), nullable=True),
        sa.Column('confirmed_at', UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint('year'),
    )


def downgrade() -> None:
    op.drop_table('workday_years')
    op.drop_table('workday_overrides')
