"""join flow (issue 3): supporter-facing join, confirm, preferences, unsubscribe, referrals

Revision ID: 0002_join
Revises: 0001_foundation
Create Date: 2026-11-24 07:20:00

Adds the referral code a newcomer arrived with (resolved into referred_by_id on confirmation) and
the time the double-opt-in mail for the latest grant was sent.
"""
import sqlalchemy as sa
from alembic import op

import core.db

# revision identifiers, used by Alembic.
revision = '0002_join'
down_revision = '0001_foundation'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('supporters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('joined_with_ref', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('confirmation_sent_at', core.db.UTCDateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('supporters', schema=None) as batch_op:
        batch_op.drop_column('confirmation_sent_at')
        batch_op.drop_column('joined_with_ref')
