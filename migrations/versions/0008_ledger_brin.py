"""consent_events.occurred_at: BRIN instead of B-tree on PostgreSQL

Revision ID: 0008_ledger_brin
Revises: 0007_wire
Create Date: 2026-11-24 13:55:00

The ledger is append-only and read by time only for an auditor's export (`flask export consents
--since`); the B-tree cost every consent write, which a million-row import pays a million times.
A BRIN index is a few pages, and an insert touches it only when it widens an already summarised
block range. SQLite has no BRIN: it keeps the B-tree.
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0008_ledger_brin'
down_revision = '0007_wire'
branch_labels = None
depends_on = None


def _replace(using: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index('ix_consent_events_occurred_at', table_name='consent_events')
    op.create_index('ix_consent_events_occurred_at', 'consent_events', ['occurred_at'], unique=False,
                    postgresql_using=using)


def upgrade():
    _replace("brin")


def downgrade():
    _replace("btree")
