"""share, review and vote campaigns (issue 6): links, clicks, actions, votes

Revision ID: 0006_actions
Revises: 0005_transfer
Create Date: 2026-11-24 07:35:00

Reserved in the chain so that features built in parallel each own one migration; the feature
fills in upgrade() and downgrade() (both engines), keeping this revision id and its parent.
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import core.db  # noqa: F401

# revision identifiers, used by Alembic.
revision = '0006_actions'
down_revision = '0005_transfer'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
