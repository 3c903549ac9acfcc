"""surveys: the `survey` campaign kind, survey responses (one per delivery) and answers (issue 17)

Revision ID: 0018_surveys
Revises: 0014_org_settings
Create Date: 2026-12-02 03:00:00

The campaign and action kinds are VARCHAR columns with a CHECK constraint (core.db.str_enum): the
constraint is replaced to admit 'survey' (batch mode rebuilds the table on SQLite).
"""
import sqlalchemy as sa
from alembic import op

import core.db

# revision identifiers, used by Alembic.
revision = '0018_surveys'
down_revision = '0017_webhooks'
branch_labels = None
depends_on = None

OLD_CAMPAIGN_KINDS = ('announcement', 'share', 'review', 'vote')
OLD_ACTION_KINDS = ('share', 'review', 'vote', 'sign')


def _enum(values, name):
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=20)


def _kinds(table, column, name, old, new):
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.alter_column(column, existing_type=_enum(old, name), type_=_enum(new, name),
                              existing_nullable=False)


def upgrade():
    _kinds('campaigns', 'kind', 'campaign_kind', OLD_CAMPAIGN_KINDS, (*OLD_CAMPAIGN_KINDS, 'survey'))
    _kinds('actions', 'kind', 'action_kind', OLD_ACTION_KINDS, (*OLD_ACTION_KINDS, 'survey'))
    bigint = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
    op.create_table('survey_responses',
    sa.Column('id', bigint, nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', bigint, nullable=False),
    sa.Column('supporter_id', bigint, nullable=False),
    sa.Column('supporter_kind', sa.String(length=20), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reply_requested_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('nps', sa.SmallInteger(), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_survey_responses_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_survey_responses_delivery_id_deliveries'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'], name=op.f('fk_survey_responses_supporter_id_supporters'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_responses')),
    sa.UniqueConstraint('delivery_id', name='uq_survey_responses_delivery')
    )
    with op.batch_alter_table('survey_responses', schema=None) as batch_op:
        batch_op.create_index('ix_survey_responses_campaign_id', ['campaign_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_responses_supporter_id'), ['supporter_id'], unique=False)

    op.create_table('survey_answers',
    sa.Column('id', bigint, nullable=False),
    sa.Column('response_id', bigint, nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('question', sa.String(length=40), nullable=False),
    sa.Column('value', sa.SmallInteger(), nullable=True),
    sa.Column('text', sa.String(length=2000), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_survey_answers_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['response_id'], ['survey_responses.id'], name=op.f('fk_survey_answers_response_id_survey_responses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_answers'))
    )
    with op.batch_alter_table('survey_answers', schema=None) as batch_op:
        batch_op.create_index('ix_survey_answers_campaign_question_id', ['campaign_id', 'question', 'id'], unique=False)
        batch_op.create_index('ix_survey_answers_campaign_question_value', ['campaign_id', 'question', 'value'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_answers_response_id'), ['response_id'], unique=False)


def downgrade():
    op.drop_table('survey_answers')
    op.drop_table('survey_responses')
    # Survey campaigns (and their actions) cannot exist under the old constraint.
    op.execute("DELETE FROM actions WHERE kind = 'survey'")
    op.execute("DELETE FROM campaigns WHERE kind = 'survey'")
    _kinds('actions', 'kind', 'action_kind', (*OLD_ACTION_KINDS, 'survey'), OLD_ACTION_KINDS)
    _kinds('campaigns', 'kind', 'campaign_kind', (*OLD_CAMPAIGN_KINDS, 'survey'), OLD_CAMPAIGN_KINDS)
