"""supporters.confirmation_error: why the double-opt-in mail could not be sent (issue 18)

Revision ID: 0013_confirmation_error
Revises: 0012_sessions
Create Date: 2026-12-01 23:30:00

A confirmation the mail server refused for good (an address it cannot take, a relay without
SMTPUTF8 for a UTF-8 local part) is recorded here instead of being re-queued by the sweeper every
30 seconds for a week; a new join or a new link tries again and clears it on success.
"""
import sqlalchemy as sa
from alembic import op

revision = '0013_confirmation_error'
down_revision = '0012_sessions'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("supporters") as batch:
        batch.add_column(sa.Column("confirmation_error", sa.String(300), nullable=True))


def downgrade():
    with op.batch_alter_table("supporters") as batch:
        batch.drop_column("confirmation_error")
