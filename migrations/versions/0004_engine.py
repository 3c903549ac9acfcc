"""sending engine (issue 5): campaigns, contents, deliveries

Revision ID: 0004_engine
Revises: 0003_api
Create Date: 2026-11-24 07:20:00

Reserved in the chain so that features built in parallel each own one migration; the feature
fills in upgrade() and downgrade() (both engines), keeping this revision id and its parent.
"""
import sqlalchemy as sa
from alembic import op

import core.db

# revision identifiers, used by Alembic.
revision = '0004_engine'
down_revision = '0003_api'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.Enum('announcement', 'share', 'review', 'vote', name='campaign_kind', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('status', sa.Enum('draft', 'scheduled', 'sending', 'paused', 'sent', 'cancelled', name='campaign_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('audience_filter', sa.JSON(), nullable=True),
    sa.Column('exclude_filter', sa.JSON(), nullable=True),
    sa.Column('segment_id', sa.Integer(), nullable=True),
    sa.Column('sender', sa.String(length=254), nullable=True),
    sa.Column('send_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('rate_per_minute', sa.Integer(), nullable=True),
    sa.Column('respect_quiet_hours', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('status_reason', sa.String(length=500), nullable=True),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('launched_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns'))
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaigns_status'), ['status'], unique=False)

    op.create_table('campaign_contents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_contents_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_contents')),
    sa.UniqueConstraint('campaign_id', 'language', name='uq_campaign_contents_campaign_language')
    )
    op.create_table('deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('supporter_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.Enum('queued', 'sending', 'sent', 'failed', 'bounced', 'skipped', name='delivery_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('skip_reason', sa.Enum('excluded', 'no_consent', 'unsubscribed', 'suppressed', 'paused', 'frequency_limit', 'no_content', 'cancelled', name='skip_reason', native_enum=False, create_constraint=True, length=20), nullable=True),
    sa.Column('attempts', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('enqueued_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('next_attempt_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lease_until', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reclaimed', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('sent_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_deliveries_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'], name=op.f('fk_deliveries_supporter_id_supporters'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sa.UniqueConstraint('campaign_id', 'supporter_id', name='uq_deliveries_campaign_supporter')
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_campaign_status', ['campaign_id', 'status', 'id'], unique=False)
        batch_op.create_index('ix_deliveries_supporter_sent', ['supporter_id', 'sent_at'], unique=False)



def downgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_supporter_sent')
        batch_op.drop_index('ix_deliveries_campaign_status')

    op.drop_table('deliveries')
    op.drop_table('campaign_contents')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaigns_status'))

    op.drop_table('campaigns')
