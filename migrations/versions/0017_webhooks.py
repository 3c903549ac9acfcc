"""webhooks: endpoints, subscriptions, the event outbox, messages and the delivery log (issue 16)

Revision ID: 0017_webhooks
Revises: 0014_org_settings
Create Date: 2026-12-02 03:00:00

The lead re-chains `down_revision` at merge (0015/0016 are other issues' migrations).
"""
import sqlalchemy as sa
from alembic import op

import core.db

revision = '0017_webhooks'
down_revision = '0016_dialog'
branch_labels = None
depends_on = None

BigIntPK = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table(
        'webhook_endpoints',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('url', sa.String(length=2000), nullable=False),
        sa.Column('description', sa.String(length=500), nullable=True),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('secret', sa.String(length=100), nullable=False),
        sa.Column('previous_secret', sa.String(length=100), nullable=True),
        sa.Column('previous_secret_until', core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('headers', sa.Text(), nullable=False),
        sa.Column('owner_email', sa.String(length=320), nullable=True),
        sa.Column('failing_since', core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('disabled_reason', sa.String(length=200), nullable=True),
        sa.Column('lease_until', core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('lease_owner', sa.String(length=40), nullable=True),
        sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints')),
    )
    op.create_table(
        'webhook_subscriptions',
        sa.Column('endpoint_id', sa.Integer(), nullable=False),
        sa.Column('event_type', sa.String(length=60), nullable=False),
        sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], ondelete='CASCADE',
                                name=op.f('fk_webhook_subscriptions_endpoint_id_webhook_endpoints')),
        sa.PrimaryKeyConstraint('endpoint_id', 'event_type', name=op.f('pk_webhook_subscriptions')),
    )
    op.create_table(
        'webhook_events',
        sa.Column('id', BigIntPK, nullable=False),
        sa.Column('type', sa.String(length=60), nullable=False),
        sa.Column('occurred_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('supporter_id', sa.BigInteger(), nullable=True),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('redacted', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_events')),
    )
    op.create_index(op.f('ix_webhook_events_occurred_at'), 'webhook_events', ['occurred_at'])
    op.create_index(op.f('ix_webhook_events_supporter_id'), 'webhook_events', ['supporter_id'])
    op.create_table(
        'webhook_messages',
        sa.Column('id', BigIntPK, nullable=False),
        sa.Column('endpoint_id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.BigInteger(), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('delivered_at', core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed', 'skipped')",
                           name=op.f('ck_webhook_messages_status')),
        sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], ondelete='CASCADE',
                                name=op.f('fk_webhook_messages_endpoint_id_webhook_endpoints')),
        sa.ForeignKeyConstraint(['event_id'], ['webhook_events.id'], ondelete='CASCADE',
                                name=op.f('fk_webhook_messages_event_id_webhook_events')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_messages')),
        sa.UniqueConstraint('endpoint_id', 'event_id', name='uq_webhook_messages_endpoint_event'),
    )
    op.create_index('ix_webhook_messages_due', 'webhook_messages', ['endpoint_id', 'status', 'event_id'])
    op.create_index(op.f('ix_webhook_messages_event_id'), 'webhook_messages', ['event_id'])
    op.create_table(
        'webhook_attempts',
        sa.Column('id', BigIntPK, nullable=False),
        sa.Column('message_id', sa.BigInteger(), nullable=False),
        sa.Column('endpoint_id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.BigInteger(), nullable=False),
        sa.Column('attempted_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('latency_ms', sa.Integer(), nullable=True),
        sa.Column('response_excerpt', sa.String(length=500), nullable=True),
        sa.Column('error', sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], ondelete='CASCADE',
                                name=op.f('fk_webhook_attempts_endpoint_id_webhook_endpoints')),
        sa.ForeignKeyConstraint(['message_id'], ['webhook_messages.id'], ondelete='CASCADE',
                                name=op.f('fk_webhook_attempts_message_id_webhook_messages')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_attempts')),
    )
    op.create_index('ix_webhook_attempts_endpoint', 'webhook_attempts', ['endpoint_id', 'id'])
    op.create_index(op.f('ix_webhook_attempts_message_id'), 'webhook_attempts', ['message_id'])


def downgrade():
    op.drop_table('webhook_attempts')
    op.drop_table('webhook_messages')
    op.drop_table('webhook_events')
    op.drop_table('webhook_subscriptions')
    op.drop_table('webhook_endpoints')
