"""attempt counters for /metrics

`/metrics` counted every attempt row at every scrape. Attempts are now counted as they end, in
`attempt_counters` (per channel, outcome and duration bucket); this fills the table from the
attempts already ended, so that `publisher_attempts_total` goes on from where it stood.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 00:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# The buckets of publisher.delivery.attempts as this migration was written, in milliseconds,
# with the `le` label each is stored under.
BUCKETS_MS = (
    (50, '0.05'), (100, '0.1'), (250, '0.25'), (500, '0.5'), (1000, '1.0'), (2500, '2.5'),
    (5000, '5.0'), (10000, '10.0'), (30000, '30.0'), (60000, '60.0'),
)
BUCKET = (
    "CASE WHEN a.duration_ms IS NULL THEN '' "
    + " ".join(f"WHEN a.duration_ms <= {ms} THEN '{le}'" for ms, le in BUCKETS_MS)
    + " ELSE '+Inf' END"
)
BACKFILL = f"""
INSERT INTO attempt_counters (channel_kind, outcome, le, attempts, duration_ms)
SELECT d.channel_kind, a.outcome, {BUCKET}, count(*), coalesce(sum(a.duration_ms), 0)
FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
WHERE a.outcome <> 'started'
GROUP BY d.channel_kind, a.outcome, {BUCKET}
"""


def upgrade() -> None:
    op.create_table(
        'attempt_counters',
        sa.Column('channel_kind', sa.String(length=32), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('le', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.BigInteger(), nullable=False),
        sa.Column('duration_ms', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('channel_kind', 'outcome', 'le'),
    )
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_table('attempt_counters')
