"""exports, imports and data-protection CLI (issue 7)

Revision ID: 0005_transfer
Revises: 0004_engine
Create Date: 2026-11-24 07:20:00

Reserved in the chain so that features built in parallel each own one migration; the feature
fills in upgrade() and downgrade() (both engines), keeping this revision id and its parent.
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import core.db  # noqa: F401

# revision identifiers, used by Alembic.
revision = '0005_transfer'
down_revision = '0004_engine'
branch_labels = None
depends_on = None


def upgrade():
    # Exports and imports started from the API: one row per RQ job, the source of truth for its state.
    op.create_table('transfer_jobs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.Enum('export_supporters', 'export_consents', 'import_supporters', name='transfer_kind', native_enum=False, create_constraint=True, length=30), nullable=False),
    sa.Column('status', sa.Enum('queued', 'running', 'done', 'failed', name='transfer_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('file_path', sa.String(length=500), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=True),
    sa.Column('summary', sa.JSON(), nullable=True),
    sa.Column('error', sa.String(length=1000), nullable=True),
    sa.Column('requested_by', sa.String(length=254), nullable=True),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transfer_jobs'))
    )
    with op.batch_alter_table('transfer_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transfer_jobs_created_at'), ['created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('transfer_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transfer_jobs_created_at'))
    op.drop_table('transfer_jobs')
