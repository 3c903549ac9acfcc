"""dialog (issue 14): topics, posts, backings, notices, digest subscriptions

Revision ID: 0016_dialog
Revises: 0014_org_settings
Create Date: 2026-11-26 09:00:00

The parent is re-pointed at merge time to whatever migration precedes this one on main.
"""
import sqlalchemy as sa
from alembic import op

import core.db

# revision identifiers, used by Alembic.
revision = '0016_dialog'
down_revision = '0015_transfer_storage'
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
LISTED_SQL = "status IN ('published', 'under_review', 'planned', 'answered', 'declined', 'done')"


def _enum(name, *values):
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=20)


def upgrade():
    op.create_table(
        'dialog_topics',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name_en', sa.String(length=120), nullable=False),
        sa.Column('name_de', sa.String(length=120), nullable=True),
        sa.Column('description_en', sa.String(length=2000), nullable=True),
        sa.Column('description_de', sa.String(length=2000), nullable=True),
        sa.Column('is_open', sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column('audience_kinds', sa.JSON(), nullable=True),
        sa.Column('visibility', _enum('dialog_visibility', 'public', 'private'), nullable=False),
        sa.Column('answer_threshold', sa.Integer(), nullable=True),
        sa.Column('answer_deadline_days', sa.SmallInteger(), nullable=True),
        sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_dialog_topics')),
    )
    op.create_table(
        'dialog_posts',
        sa.Column('id', BIGINT, nullable=False),
        sa.Column('topic_id', sa.Integer(), nullable=False),
        sa.Column('supporter_id', BIGINT, nullable=True),
        sa.Column('author_kind', sa.String(length=20), nullable=False),
        sa.Column('show_name', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('kind', _enum('dialog_post_kind', 'idea', 'concern', 'question'), nullable=False),
        sa.Column('language', sa.String(length=8), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('body_hash', sa.String(length=64), nullable=False),
        sa.Column('status', _enum('dialog_post_status', 'new', 'published', 'rejected', 'under_review', 'planned',
                                  'answered', 'declined', 'done', 'withdrawn', 'merged'), nullable=False),
        sa.Column('status_reason', sa.String(length=1000), nullable=True),
        sa.Column('answer', sa.Text(), nullable=True),
        sa.Column('tags', sa.JSON(), nullable=True),
        sa.Column('priority', sa.SmallInteger(), nullable=True),
        sa.Column('owner_id', sa.Integer(), nullable=True),
        sa.Column('merged_into_id', BIGINT, nullable=True),
        sa.Column('backers', sa.Integer(), server_default='0', nullable=False),
        sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('published_at', core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('first_response_at', core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('due_at', core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('deadline_at', core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('answered_at', core.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint('backers >= 0', name=op.f('ck_dialog_posts_backers_not_negative')),
        sa.ForeignKeyConstraint(['topic_id'], ['dialog_topics.id'], name=op.f('fk_dialog_posts_topic_id_dialog_topics'),
                                ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'], name=op.f('fk_dialog_posts_supporter_id_supporters'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['owner_id'], ['admin_users.id'], name=op.f('fk_dialog_posts_owner_id_admin_users'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['merged_into_id'], ['dialog_posts.id'],
                                name=op.f('fk_dialog_posts_merged_into_id_dialog_posts'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_dialog_posts')),
        sa.UniqueConstraint('supporter_id', 'body_hash', name='uq_dialog_posts_supporter_body'),
    )
    op.create_index('ix_dialog_posts_listed', 'dialog_posts', ['topic_id', 'backers', 'id'], unique=False,
                    postgresql_where=sa.text(LISTED_SQL), sqlite_where=sa.text(LISTED_SQL))
    op.create_index('ix_dialog_posts_status', 'dialog_posts', ['status', 'id'], unique=False)
    op.create_index('ix_dialog_posts_supporter_created', 'dialog_posts', ['supporter_id', 'created_at'], unique=False)
    op.create_index('ix_dialog_posts_due', 'dialog_posts', ['due_at'], unique=False)
    op.create_table(
        'dialog_backings',
        sa.Column('id', BIGINT, nullable=False),
        sa.Column('post_id', BIGINT, nullable=False),
        sa.Column('supporter_id', BIGINT, nullable=True),
        sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['post_id'], ['dialog_posts.id'], name=op.f('fk_dialog_backings_post_id_dialog_posts'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'],
                                name=op.f('fk_dialog_backings_supporter_id_supporters'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_dialog_backings')),
        sa.UniqueConstraint('post_id', 'supporter_id', name='uq_dialog_backings_post_supporter'),
    )
    op.create_index('ix_dialog_backings_supporter', 'dialog_backings', ['supporter_id'], unique=False)
    op.create_table(
        'dialog_notices',
        sa.Column('id', BIGINT, nullable=False),
        sa.Column('post_id', BIGINT, nullable=False),
        sa.Column('supporter_id', BIGINT, nullable=False),
        sa.Column('kind', _enum('dialog_notice_kind', 'published', 'rejected', 'answer'), nullable=False),
        sa.Column('status', _enum('dialog_notice_status', 'queued', 'sending', 'sent', 'skipped', 'failed'),
                  nullable=False),
        sa.Column('attempts', sa.SmallInteger(), server_default='0', nullable=False),
        sa.Column('lease_until', core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('sent_at', core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('error', sa.String(length=300), nullable=True),
        sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['post_id'], ['dialog_posts.id'], name=op.f('fk_dialog_notices_post_id_dialog_posts'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'],
                                name=op.f('fk_dialog_notices_supporter_id_supporters'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_dialog_notices')),
        sa.UniqueConstraint('post_id', 'supporter_id', 'kind', name='uq_dialog_notices_post_supporter_kind'),
    )
    op.create_index('ix_dialog_notices_status', 'dialog_notices', ['status', 'id'], unique=False)
    op.create_table(
        'dialog_digest_subscriptions',
        sa.Column('supporter_id', BIGINT, nullable=False),
        sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_sent_at', core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'],
                                name=op.f('fk_dialog_digest_subscriptions_supporter_id_supporters'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('supporter_id', name=op.f('pk_dialog_digest_subscriptions')),
    )


def downgrade():
    op.drop_table('dialog_digest_subscriptions')
    op.drop_index('ix_dialog_notices_status', table_name='dialog_notices')
    op.drop_table('dialog_notices')
    op.drop_index('ix_dialog_backings_supporter', table_name='dialog_backings')
    op.drop_table('dialog_backings')
    for name in ('ix_dialog_posts_due', 'ix_dialog_posts_supporter_created', 'ix_dialog_posts_status',
                 'ix_dialog_posts_listed'):
        op.drop_index(name, table_name='dialog_posts')
    op.drop_table('dialog_posts')
    op.drop_table('dialog_topics')
