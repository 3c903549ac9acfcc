"""deliveries.in_flight_at_stop: the supporter withdrew while the delivery was claimed (issue 12)

Revision ID: 0011_engine_promises
Revises: 0010_bounce_reports
Create Date: 2026-11-25 00:00:00

Set in the withdrawing transaction (core.stopmarks, campaigns.models) on the supporter's
deliveries that a worker held at that moment: if such a delivery ends up sent, its SMTP
transaction had begun before the withdrawal was answered, and it may have arrived after it.
Campaign stats report them as `sent_after_stop`.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0011_engine_promises'
down_revision = '0010_bounce_reports'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('deliveries') as batch_op:
        batch_op.add_column(sa.Column('in_flight_at_stop', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('deliveries') as batch_op:
        batch_op.drop_column('in_flight_at_stop')
