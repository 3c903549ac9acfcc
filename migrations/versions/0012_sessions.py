"""Session versions for admin users; idempotent replays that withhold a secret; job owners

Revision ID: 0012_sessions
Revises: 0011_engine_promises
Create Date: 2026-11-30 10:00:00

`admin_users.session_version` is part of every session id: sign-out and a password change raise
it, which ends the user's existing session cookies server-side. `idempotency_keys.secret_withheld`
marks a stored response whose secret (a new API token) was left out, so a replay cannot show it.
`transfer_jobs.requested_by_user_id`: a job is visible to the user who started it and to admins.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0012_sessions'
down_revision = '0011_engine_promises'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('admin_users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), server_default='1', nullable=False))
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('secret_withheld', sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table('transfer_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requested_by_user_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_transfer_jobs_requested_by_user_id_admin_users'), 'admin_users',
                                    ['requested_by_user_id'], ['id'], ondelete='SET NULL')


def downgrade():
    with op.batch_alter_table('transfer_jobs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_transfer_jobs_requested_by_user_id_admin_users'), type_='foreignkey')
        batch_op.drop_column('requested_by_user_id')
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.drop_column('secret_withheld')
    with op.batch_alter_table('admin_users', schema=None) as batch_op:
        batch_op.drop_column('session_version')
