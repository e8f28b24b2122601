"""the engine's bookkeeping of its calls moves out of the adapter's remote_state

`in_flight`, `uncertain`, `incomplete`, `attempted_revision_id` and `attempted_website_url`
were keys in `deliveries.remote_state`, beside the adapter's own state; they become columns,
and `remote_state` keeps only what the adapter put there. The downgrade puts them back.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 22:10:00
"""

from typing import Any

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

FLAGS = ("uncertain", "incomplete")
VALUES = ("in_flight", "attempted_revision_id", "attempted_website_url")
KEYS = FLAGS + VALUES

deliveries = sa.table(
    "deliveries",
    sa.column("id", sa.Integer),
    sa.column("remote_state", sa.JSON),
    sa.column("in_flight", sa.String),
    sa.column("uncertain", sa.Boolean),
    sa.column("incomplete", sa.Boolean),
    sa.column("attempted_revision_id", sa.Integer),
    sa.column("attempted_website_url", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('in_flight', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('uncertain', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('incomplete', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('attempted_revision_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('attempted_website_url', sa.String(length=1000), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.select(deliveries.c.id, deliveries.c.remote_state)).all()
    for delivery_id, state in rows:
        state = dict(state or {})
        if not any(key in state for key in KEYS):
            continue
        values: dict[str, Any] = {flag: bool(state.pop(flag, False)) for flag in FLAGS}
        values.update({key: state.pop(key, None) for key in VALUES})
        if values["attempted_revision_id"] is not None:
            values["attempted_revision_id"] = int(values["attempted_revision_id"])
        conn.execute(
            deliveries.update().where(deliveries.c.id == delivery_id).values(remote_state=state, **values)
        )


def downgrade() -> None:
    conn = op.get_bind()
    marked = sa.or_(
        deliveries.c.in_flight.is_not(None),
        deliveries.c.uncertain.is_(True),
        deliveries.c.incomplete.is_(True),
        deliveries.c.attempted_revision_id.is_not(None),
        deliveries.c.attempted_website_url.is_not(None),
    )
    rows = conn.execute(
        sa.select(
            deliveries.c.id,
            deliveries.c.remote_state,
            *(deliveries.c[key] for key in KEYS),
        ).where(marked)
    ).all()
    for row in rows:
        state = dict(row.remote_state or {})
        for flag in FLAGS:
            if row._mapping[flag]:
                state[flag] = True
        for key in VALUES:
            if row._mapping[key] is not None:
                state[key] = row._mapping[key]
        conn.execute(deliveries.update().where(deliveries.c.id == row.id).values(remote_state=state))
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('attempted_website_url')
        batch_op.drop_column('attempted_revision_id')
        batch_op.drop_column('incomplete')
        batch_op.drop_column('uncertain')
        batch_op.drop_column('in_flight')
