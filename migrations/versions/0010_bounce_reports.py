"""bounce and complaint reports read from mail (issue 18): one row per processed report

Revision ID: 0010_bounce_reports
Revises: 0009_tag_sync
Create Date: 2026-12-01 22:58:24

The unique `key` makes processing a report twice a no-op; kind, campaign and supporter count
soft bounces per address and complaints per campaign (campaigns/bounces.py).
"""
import sqlalchemy as sa
from alembic import op

import core.db

# revision identifiers, used by Alembic.
revision = '0010_bounce_reports'
down_revision = '0009_tag_sync'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('bounce_reports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.Enum('hard', 'soft', 'delayed', 'complaint', 'unattributed', 'forged', 'ignored', name='bounce_report_kind', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('received_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('delivery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('supporter_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('detail', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_bounce_reports_campaign_id_campaigns'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'], name=op.f('fk_bounce_reports_supporter_id_supporters'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bounce_reports')),
    sa.UniqueConstraint('key', name=op.f('uq_bounce_reports_key'))
    )
    with op.batch_alter_table('bounce_reports', schema=None) as batch_op:
        batch_op.create_index('ix_bounce_reports_campaign_kind', ['campaign_id', 'kind'], unique=False)
        batch_op.create_index('ix_bounce_reports_supporter_kind_received', ['supporter_id', 'kind', 'received_at'], unique=False)


def downgrade():
    with op.batch_alter_table('bounce_reports', schema=None) as batch_op:
        batch_op.drop_index('ix_bounce_reports_supporter_kind_received')
        batch_op.drop_index('ix_bounce_reports_campaign_kind')

    op.drop_table('bounce_reports')
