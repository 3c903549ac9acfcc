"""org_settings: the organisation's identity in every mail (issue 18, layout and footer)

Revision ID: 0014_org_settings
Revises: 0013_confirmation_error
Create Date: 2026-11-25 09:00:00

One row (id 1), written by `PUT /api/v1/settings`; NULL columns mean "use the default"
(core.org_settings). No row at all is a valid state: a fresh install mails with the defaults.
"""
import sqlalchemy as sa
from alembic import op

import core.db

# revision identifiers, used by Alembic.
revision = '0014_org_settings'
down_revision = '0013_confirmation_error'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'org_settings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_name', sa.String(length=200), nullable=True),
        sa.Column('postal_address', sa.String(length=500), nullable=True),
        sa.Column('privacy_url', sa.String(length=2000), nullable=True),
        sa.Column('logo_url', sa.String(length=2000), nullable=True),
        sa.Column('accent_color', sa.String(length=7), nullable=True),
        sa.Column('reply_to', sa.String(length=320), nullable=True),
        sa.Column('campaign_sender', sa.String(length=320), nullable=True),
        sa.Column('transactional_sender', sa.String(length=320), nullable=True),
        sa.Column('updated_at', core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_org_settings')),
    )


def downgrade():
    op.drop_table('org_settings')
