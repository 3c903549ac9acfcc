"""transfer_storage: export, upload and reject files in the database, for several hosts (issue 13)

Revision ID: 0015_transfer_storage
Revises: 0014_org_settings
Create Date: 2026-12-02 09:00:00

`transfer_files` lists the stored files (key, size, number of chunks); `transfer_chunks` holds
their bytes in chunks of 1 MiB (core.blobs). On PostgreSQL the chunks are compressed with lz4: as
fast as storing them uncompressed and a quarter of the bytes (and WAL), where PostgreSQL's default
pglz took ~1.5x the time of the export itself (bench/transfer_store.py --storage-variants). A
server built without lz4 stores them uncompressed (STORAGE EXTERNAL) instead.
"""
import sqlalchemy as sa
from alembic import op

import core.db

# revision identifiers, used by Alembic.
revision = '0015_transfer_storage'
down_revision = '0014_org_settings'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'transfer_files',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('chunks', sa.Integer(), nullable=False),
        sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_transfer_files')),
    )
    op.create_table(
        'transfer_chunks',
        sa.Column('file_key', sa.String(length=200), nullable=False),
        sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['file_key'], ['transfer_files.key'],
                                name=op.f('fk_transfer_chunks_file_key_transfer_files'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('file_key', 'seq', name=op.f('pk_transfer_chunks')),
    )
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        savepoint = bind.begin_nested()
        try:
            bind.exec_driver_sql('ALTER TABLE transfer_chunks ALTER COLUMN data SET COMPRESSION lz4')
            savepoint.commit()
        except sa.exc.DBAPIError:  # built without lz4 (or older than 14): no compression rather than pglz
            savepoint.rollback()
            bind.exec_driver_sql('ALTER TABLE transfer_chunks ALTER COLUMN data SET STORAGE EXTERNAL')


def downgrade():
    op.drop_table('transfer_chunks')
    op.drop_table('transfer_files')
