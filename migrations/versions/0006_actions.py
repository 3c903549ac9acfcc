"""share, review and vote campaigns (issue 6): links, clicks, actions, votes

Revision ID: 0006_actions
Revises: 0005_transfer
Create Date: 2026-11-24 07:35:00

Reserved in the chain so that features built in parallel each own one migration; the feature
fills in upgrade() and downgrade() (both engines), keeping this revision id and its parent.
"""
import sqlalchemy as sa
from alembic import op

import core.db

# revision identifiers, used by Alembic.
revision = '0006_actions'
down_revision = '0005_transfer'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('campaign_referrals',
    sa.Column('supporter_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('referrer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_referrals_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['referrer_id'], ['supporters.id'], name=op.f('fk_campaign_referrals_referrer_id_supporters'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'], name=op.f('fk_campaign_referrals_supporter_id_supporters'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('supporter_id', name=op.f('pk_campaign_referrals'))
    )
    with op.batch_alter_table('campaign_referrals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaign_referrals_campaign_id'), ['campaign_id'], unique=False)

    op.create_table('campaign_settings',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('owner_email', sa.String(length=254), nullable=True),
    sa.Column('goal_reached_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('answer_campaign_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['answer_campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_settings_answer_campaign_id_campaigns'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_settings_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', name=op.f('pk_campaign_settings'))
    )
    op.create_table('links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.Enum('mail', 'action', 'visit', name='link_purpose', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_links_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_links')),
    sa.UniqueConstraint('campaign_id', 'purpose', 'url', name='uq_links_campaign_purpose_url')
    )
    op.create_table('votes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('supporter_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('comment', sa.String(length=1000), nullable=True),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_votes_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'], name=op.f('fk_votes_supporter_id_supporters'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_votes')),
    sa.UniqueConstraint('campaign_id', 'supporter_id', name='uq_votes_campaign_supporter')
    )
    op.create_table('actions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('supporter_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('delivery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sa.Enum('share', 'review', 'vote', 'sign', name='action_kind', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('detail', sa.String(length=80), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_actions_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_actions_delivery_id_deliveries'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'], name=op.f('fk_actions_supporter_id_supporters'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_actions'))
    )
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.create_index('ix_actions_campaign_id_id', ['campaign_id', 'id'], unique=False)
        batch_op.create_index('ix_actions_supporter_created', ['supporter_id', 'created_at'], unique=False)

    op.create_table('clicks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('link_id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('count', sa.Integer(), server_default='1', nullable=False),
    sa.Column('first_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_clicks_delivery_id_deliveries'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['link_id'], ['links.id'], name=op.f('fk_clicks_link_id_links'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clicks')),
    sa.UniqueConstraint('link_id', 'delivery_id', name='uq_clicks_link_delivery')
    )
    with op.batch_alter_table('clicks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clicks_delivery_id'), ['delivery_id'], unique=False)

    op.create_table('vote_choices',
    sa.Column('vote_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('option', sa.SmallInteger(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_vote_choices_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['vote_id'], ['votes.id'], name=op.f('fk_vote_choices_vote_id_votes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('vote_id', 'option', name=op.f('pk_vote_choices'))
    )
    with op.batch_alter_table('vote_choices', schema=None) as batch_op:
        batch_op.create_index('ix_vote_choices_campaign_option', ['campaign_id', 'option'], unique=False)



def downgrade():
    with op.batch_alter_table('vote_choices', schema=None) as batch_op:
        batch_op.drop_index('ix_vote_choices_campaign_option')

    op.drop_table('vote_choices')
    with op.batch_alter_table('clicks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clicks_delivery_id'))

    op.drop_table('clicks')
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_index('ix_actions_supporter_created')
        batch_op.drop_index('ix_actions_campaign_id_id')

    op.drop_table('actions')
    op.drop_table('votes')
    op.drop_table('links')
    op.drop_table('campaign_settings')
    with op.batch_alter_table('campaign_referrals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaign_referrals_campaign_id'))

    op.drop_table('campaign_referrals')
