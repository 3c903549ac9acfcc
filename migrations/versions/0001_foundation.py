"""foundation: supporters, consent ledger, tags, suppressions, users, tokens, audit

Revision ID: 0001_foundation
Revises: 
Create Date: 2026-11-24 07:04:36.440522

"""
import sqlalchemy as sa
from alembic import op

import core.db


# revision identifiers, used by Alembic.
revision = '0001_foundation'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('admin_users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('role', sa.Enum('viewer', 'manager', 'admin', name='admin_role', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_users')),
    sa.UniqueConstraint('email', name=op.f('uq_admin_users_email'))
    )
    op.create_table('audit_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('occurred_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_type', sa.String(length=20), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_label', sa.String(length=254), nullable=True),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('object_type', sa.String(length=40), nullable=True),
    sa.Column('object_id', sa.String(length=64), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_action'), ['action'], unique=False)
        batch_op.create_index('ix_audit_events_object', ['object_type', 'object_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_occurred_at'), ['occurred_at'], unique=False)

    op.create_table('supporters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('email_normalized', sa.String(length=254), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('kind', sa.Enum('fan', 'former_employee', 'supplier', 'partner', 'other', name='supporter_kind', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('status', sa.Enum('pending', 'active', 'unsubscribed', 'erased', name='supporter_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('referral_code', sa.String(length=16), nullable=True),
    sa.Column('referred_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('engagement_score', sa.Float(), server_default='0', nullable=False),
    sa.Column('asks_per_month', sa.SmallInteger(), nullable=True),
    sa.Column('paused_until', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('source', sa.String(length=40), nullable=True),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('unsubscribed_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('erased_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['referred_by_id'], ['supporters.id'], name=op.f('fk_supporters_referred_by_id_supporters'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_supporters')),
    sa.UniqueConstraint('email_normalized', name=op.f('uq_supporters_email_normalized')),
    sa.UniqueConstraint('referral_code', name=op.f('uq_supporters_referral_code'))
    )
    with op.batch_alter_table('supporters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_supporters_country'), ['country'], unique=False)
        batch_op.create_index(batch_op.f('ix_supporters_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_supporters_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_supporters_language'), ['language'], unique=False)
        batch_op.create_index(batch_op.f('ix_supporters_referred_by_id'), ['referred_by_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_supporters_status'), ['status'], unique=False)

    op.create_table('suppressions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('email_hash', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Enum('unsubscribed', 'hard_bounce', 'complaint', 'erased', 'manual', name='suppression_reason', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppressions')),
    sa.UniqueConstraint('email_hash', name=op.f('uq_suppressions_email_hash'))
    )
    op.create_table('tags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('public', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('label_de', sa.String(length=120), nullable=True),
    sa.Column('label_en', sa.String(length=120), nullable=True),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tags')),
    sa.UniqueConstraint('name', name=op.f('uq_tags_name'))
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('role', sa.Enum('viewer', 'manager', 'admin', name='token_role', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('expires_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['admin_users.id'], name=op.f('fk_api_tokens_user_id_admin_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('prefix', name=op.f('uq_api_tokens_prefix'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('consent_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('supporter_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('purpose', sa.String(length=40), nullable=False),
    sa.Column('action', sa.Enum('granted', 'confirmed', 'withdrawn', name='consent_action', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('text_version', sa.String(length=40), nullable=True),
    sa.Column('text_hash', sa.String(length=64), nullable=True),
    sa.Column('method', sa.String(length=40), nullable=False),
    sa.Column('occurred_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('user_agent', sa.String(length=400), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'], name=op.f('fk_consent_events_supporter_id_supporters'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_events'))
    )
    with op.batch_alter_table('consent_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_events_occurred_at'), ['occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_consent_events_supporter_id'), ['supporter_id'], unique=False)

    op.create_table('supporter_tags',
    sa.Column('tag_id', sa.Integer(), nullable=False),
    sa.Column('supporter_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'], name=op.f('fk_supporter_tags_supporter_id_supporters'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tag_id'], ['tags.id'], name=op.f('fk_supporter_tags_tag_id_tags'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tag_id', 'supporter_id', name=op.f('pk_supporter_tags')),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('supporter_tags', schema=None) as batch_op:
        batch_op.create_index('ix_supporter_tags_supporter_id', ['supporter_id'], unique=False)



def downgrade():
    with op.batch_alter_table('supporter_tags', schema=None) as batch_op:
        batch_op.drop_index('ix_supporter_tags_supporter_id')

    op.drop_table('supporter_tags')
    with op.batch_alter_table('consent_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_events_supporter_id'))
        batch_op.drop_index(batch_op.f('ix_consent_events_occurred_at'))

    op.drop_table('consent_events')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_user_id'))

    op.drop_table('api_tokens')
    op.drop_table('tags')
    op.drop_table('suppressions')
    with op.batch_alter_table('supporters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_supporters_status'))
        batch_op.drop_index(batch_op.f('ix_supporters_referred_by_id'))
        batch_op.drop_index(batch_op.f('ix_supporters_language'))
        batch_op.drop_index(batch_op.f('ix_supporters_kind'))
        batch_op.drop_index(batch_op.f('ix_supporters_created_at'))
        batch_op.drop_index(batch_op.f('ix_supporters_country'))

    op.drop_table('supporters')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_occurred_at'))
        batch_op.drop_index('ix_audit_events_object')
        batch_op.drop_index(batch_op.f('ix_audit_events_action'))

    op.drop_table('audit_events')
    op.drop_table('admin_users')
