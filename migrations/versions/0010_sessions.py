"""Session versions for admin users; idempotent replays that withhold a secret

Revision ID: 0010_sessions
Revises: 0009_tag_sync
Create Date: 2026-11-30 10:00:00

`admin_users.session_version` is part of every session id: sign-out and a password change raise
it, which ends the user's existing session cookies server-side. `idempotency_keys.secret_withheld`
marks a stored response whose secret (a new API token) was left out, so a replay cannot show it.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0010_sessions'
down_revision = '0009_tag_sync'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('admin_users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), server_default='1', nullable=False))
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('secret_withheld', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.drop_column('secret_withheld')
    with op.batch_alter_table('admin_users', schema=None) as batch_op:
        batch_op.drop_column('session_version')
