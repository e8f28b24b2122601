"""people, review, pre-publish checks and the chained audit log

Users (with departments) own the API tokens: each existing token gets a user of its own with
its role and department, and an expiry 90 days from now. Domains get review stages and
required metadata; items the review fields; approvals, finding overrides and sensitive words
get tables. Audit rows get their item, revision, client address and the chain's hashes: the
rows already there are chained in id order, and on PostgreSQL a trigger refuses UPDATE and
DELETE on the table (DELETE only inside a pruning transaction that says so).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 22:00:00
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import op
import sqlalchemy as sa
import publisher.models
from publisher.audit import HASHED, digest


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

UTC_DATETIME = publisher.models.UTCDateTime(timezone=True)
DEFAULT_STAGES = '["初审", "终审"]'

PROTECT_AUDIT = """
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('publisher.audit_prune', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
"""
UNPROTECT_AUDIT = """
DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events;
DROP FUNCTION IF EXISTS audit_events_append_only();
"""


def upgrade() -> None:
    op.create_table(
        'users',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('role', sa.Enum('admin', 'editor', 'reviewer', 'operator', 'supervisor', name='role', native_enum=False, length=16), nullable=False),
        sa.Column('password_hash', sa.String(length=255), nullable=True),
        sa.Column('created_by', sa.String(length=64), nullable=True),
        sa.Column('created_at', UTC_DATETIME, nullable=False),
        sa.Column('disabled_at', UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
    )
    op.create_table(
        'user_departments',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('department_code', sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(['department_code'], ['departments.code']),
        sa.ForeignKeyConstraint(['user_id'], ['users.id']),
        sa.PrimaryKeyConstraint('user_id', 'department_code'),
    )
    op.create_table(
        'approvals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('item_id', sa.Integer(), nullable=False),
        sa.Column('revision_id', sa.Integer(), nullable=False),
        sa.Column('content_hash', sa.String(length=64), nullable=False),
        sa.Column('stage', sa.Integer(), nullable=False),
        sa.Column('stage_name', sa.String(length=32), nullable=False),
        sa.Column('reviewer', sa.String(length=64), nullable=False),
        sa.Column('comment', sa.Text(), nullable=True),
        sa.Column('post_review', sa.Boolean(), nullable=False),
        sa.Column('at', UTC_DATETIME, nullable=False),
        sa.Column('voided_at', UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(['item_id'], ['items.id']),
        sa.ForeignKeyConstraint(['revision_id'], ['revisions.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_approvals_item_id', 'approvals', ['item_id'])
    op.create_table(
        'finding_overrides',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('item_id', sa.Integer(), nullable=False),
        sa.Column('content_hash', sa.String(length=64), nullable=False),
        sa.Column('reviewer', sa.String(length=64), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('findings', sa.JSON(), nullable=False),
        sa.Column('at', UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(['item_id'], ['items.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_finding_overrides_item_id', 'finding_overrides', ['item_id'])
    op.create_table(
        'sensitive_words',
        sa.Column('word', sa.String(length=64), nullable=False),
        sa.Column('added_by', sa.String(length=64), nullable=True),
        sa.Column('added_at', UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint('word'),
    )
    # Plain ADD COLUMN: a batch would copy `domains`, which items reference.
    op.add_column('domains', sa.Column('review_stages', sa.JSON(), nullable=False, server_default=sa.text(f"'{DEFAULT_STAGES}'")))
    op.add_column('domains', sa.Column('required_metadata', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
    op.add_column('items', sa.Column('post_review_pending', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('items', sa.Column('sent_back_comment', sa.Text(), nullable=True))
    op.add_column('items', sa.Column('submitted_at', UTC_DATETIME, nullable=True))
    _tokens_to_users()
    _chain_audit_rows()
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(PROTECT_AUDIT)


def _tokens_to_users() -> None:
    """Each existing token becomes the token of a user of its own, with its role and
    department; it expires 90 days from now (tokens had no expiry before)."""
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('user_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('expires_at', UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column('last_used_at', UTC_DATETIME, nullable=True))
    conn = op.get_bind()
    tokens = sa.table(
        'api_tokens',
        sa.column('id', sa.Integer),
        sa.column('role', sa.String),
        sa.column('department_code', sa.String),
        sa.column('user_id', sa.Integer),
        sa.column('expires_at', UTC_DATETIME),
    )
    users = sa.table(
        'users',
        sa.column('id', sa.Integer),
        sa.column('name', sa.String),
        sa.column('role', sa.String),
        sa.column('created_by', sa.String),
        sa.column('created_at', UTC_DATETIME),
    )
    user_departments = sa.table(
        'user_departments', sa.column('user_id', sa.Integer), sa.column('department_code', sa.String)
    )
    now = datetime.now(UTC)
    for token_id, role, department in conn.execute(
        sa.select(tokens.c.id, tokens.c.role, tokens.c.department_code).order_by(tokens.c.id)
    ).all():
        user_id = conn.execute(
            users.insert()
            .values(name=f'token-{token_id}', role=role, created_by='migration 0008', created_at=now)
            .returning(users.c.id)
        ).scalar_one()
        if department:
            conn.execute(user_departments.insert().values(user_id=user_id, department_code=department))
        conn.execute(
            tokens.update()
            .where(tokens.c.id == token_id)
            .values(user_id=user_id, expires_at=now + timedelta(days=90))
        )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.alter_column('user_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_index('ix_api_tokens_user_id', ['user_id'])
        batch_op.create_foreign_key('fk_api_tokens_user_id_users', 'users', ['user_id'], ['id'])
        batch_op.drop_column('department_code')
        batch_op.drop_column('role')


def _chain_audit_rows() -> None:
    op.add_column('audit_events', sa.Column('item_id', sa.Integer(), nullable=True))
    op.add_column('audit_events', sa.Column('revision_id', sa.Integer(), nullable=True))
    op.add_column('audit_events', sa.Column('client_address', sa.String(length=64), nullable=True))
    op.add_column('audit_events', sa.Column('prev_hash', sa.String(length=64), nullable=True))
    op.add_column('audit_events', sa.Column('row_hash', sa.String(length=64), nullable=True))
    op.create_index('ix_audit_events_item_id', 'audit_events', ['item_id'])
    conn = op.get_bind()
    events = sa.table(
        'audit_events',
        sa.column('id', sa.Integer),
        sa.column('at', UTC_DATETIME),
        sa.column('actor', sa.String),
        sa.column('action', sa.String),
        sa.column('subject', sa.String),
        sa.column('details', sa.JSON),
        sa.column('item_id', sa.Integer),
        sa.column('revision_id', sa.Integer),
        sa.column('client_address', sa.String),
        sa.column('prev_hash', sa.String),
        sa.column('row_hash', sa.String),
    )
    tail = None
    for row in conn.execute(sa.select(events).order_by(events.c.id)).mappings().all():
        fields: dict[str, Any] = {name: row[name] for name in HASHED}
        fields['prev_hash'] = tail
        tail = digest(fields)
        conn.execute(events.update().where(events.c.id == row['id']).values(prev_hash=fields['prev_hash'], row_hash=tail))


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(UNPROTECT_AUDIT)
    op.drop_index('ix_audit_events_item_id', table_name='audit_events')
    for column in ('row_hash', 'prev_hash', 'client_address', 'revision_id', 'item_id'):
        op.drop_column('audit_events', column)
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('role', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('department_code', sa.String(length=32), nullable=True))
    conn = op.get_bind()
    # A token takes its user's role and first department back (editors and reviewers with
    # several departments lose all but the first; reviewers become editors).
    conn.execute(sa.text(
        "UPDATE api_tokens SET role = (SELECT CASE users.role WHEN 'reviewer' THEN 'editor' ELSE users.role END"
        " FROM users WHERE users.id = api_tokens.user_id),"
        " department_code = (SELECT MIN(department_code) FROM user_departments"
        " WHERE user_departments.user_id = api_tokens.user_id)"
    ))
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.alter_column('role', existing_type=sa.String(length=16), nullable=False)
        batch_op.create_foreign_key('fk_api_tokens_department_code_departments', 'departments', ['department_code'], ['code'])
        batch_op.drop_constraint('fk_api_tokens_user_id_users', type_='foreignkey')
        batch_op.drop_index('ix_api_tokens_user_id')
        batch_op.drop_column('last_used_at')
        batch_op.drop_column('expires_at')
        batch_op.drop_column('user_id')
    # Plain DROP COLUMN: a batch would copy tables that others reference.
    for table, column in (
        ('items', 'submitted_at'),
        ('items', 'sent_back_comment'),
        ('items', 'post_review_pending'),
        ('domains', 'required_metadata'),
        ('domains', 'review_stages'),
    ):
        op.drop_column(table, column)
    op.drop_table('sensitive_words')
    op.drop_index('ix_finding_overrides_item_id', table_name='finding_overrides')
    op.drop_table('finding_overrides')
    op.drop_index('ix_approvals_item_id', table_name='approvals')
    op.drop_table('approvals')
    op.drop_table('user_departments')
    op.drop_table('users')
