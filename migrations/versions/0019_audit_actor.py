"""audit_events: actor ids as wide as supporter ids, and an index to find a person's own rows

Revision ID: 0019_audit_actor
Revises: 0018_surveys
Create Date: 2026-12-02 06:15:00

Supporters' own changes on the dialog pages are audited with the supporter as actor (issue 14);
supporter ids are BIGINT on PostgreSQL, so `actor_id` becomes BIGINT there too (SQLite's INTEGER
is 64-bit already), and erasure, which clears the person's id from those rows, finds them by the
new (actor_type, actor_id) index instead of scanning the audit trail.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0019_audit_actor'
down_revision = '0018_surveys'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('audit_events', 'actor_id', existing_type=sa.Integer(), type_=sa.BigInteger(),
                        existing_nullable=True)
    op.create_index('ix_audit_events_actor', 'audit_events', ['actor_type', 'actor_id'], unique=False)


def downgrade():
    op.drop_index('ix_audit_events_actor', table_name='audit_events')
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('audit_events', 'actor_id', existing_type=sa.BigInteger(), type_=sa.Integer(),
                        existing_nullable=True)
