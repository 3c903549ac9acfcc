"""REST API (issue 4): segments, idempotency keys and API-side tables

Revision ID: 0003_api
Revises: 0002_join
Create Date: 2026-11-24 07:20:00

Also the PostgreSQL tag index: `supporters.tag_ids` (integer[] + GIN), kept exact by a
statement-level trigger on `supporter_tags`. SQLite gets the column (always NULL) and a plain index
so that models and migrations agree on both engines.
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import core.db  # noqa: F401

# revision identifiers, used by Alembic.
revision = '0003_api'
down_revision = '0002_join'
branch_labels = None
depends_on = None

SYNC_FUNCTION = """
CREATE OR REPLACE FUNCTION supporter_tags_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Recompute the affected supporters' tag ids from the join table (the source of truth).
    UPDATE supporters AS s
       SET tag_ids = COALESCE((SELECT array_agg(st.tag_id ORDER BY st.tag_id)
                                 FROM supporter_tags AS st WHERE st.supporter_id = s.id), '{}')
     WHERE s.id IN (SELECT DISTINCT supporter_id FROM changed);
    RETURN NULL;
END
$$
"""


def upgrade():
    op.create_table(
        'idempotency_keys',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('scope', sa.String(length=40), nullable=False),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('request_hash', sa.String(length=64), nullable=False),
        sa.Column('status_code', sa.SmallInteger(), nullable=True),
        sa.Column('response_body', sa.Text(), nullable=True),
        sa.Column('location', sa.String(length=300), nullable=True),
        sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_keys')),
        sa.UniqueConstraint('scope', 'key', name='uq_idempotency_keys_scope_key'),
    )
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idempotency_keys_created_at'), ['created_at'], unique=False)

    op.create_table(
        'segments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('description', sa.String(length=500), nullable=True),
        sa.Column('definition', sa.JSON(), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['created_by_id'], ['admin_users.id'],
                                name=op.f('fk_segments_created_by_id_admin_users'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_segments')),
        sa.UniqueConstraint('name', name=op.f('uq_segments_name')),
    )

    with op.batch_alter_table('supporters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tag_ids', sa.JSON().with_variant(sa.ARRAY(sa.Integer()), 'postgresql'),
                                      nullable=True))
        batch_op.create_index('ix_supporters_tag_ids', ['tag_ids'], unique=False, postgresql_using='gin')

    if op.get_bind().dialect.name == 'postgresql':
        # Never NULL in practice (a NULL would make "not tagged" unknown instead of true).
        op.execute("ALTER TABLE supporters ALTER COLUMN tag_ids SET DEFAULT '{}'")
        op.execute(SYNC_FUNCTION)
        op.execute("CREATE TRIGGER supporter_tags_sync_insert AFTER INSERT ON supporter_tags "
                   "REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION supporter_tags_sync()")
        op.execute("CREATE TRIGGER supporter_tags_sync_delete AFTER DELETE ON supporter_tags "
                   "REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION supporter_tags_sync()")
        # Rows tagged before this migration.
        op.execute("UPDATE supporters AS s SET tag_ids = COALESCE((SELECT array_agg(st.tag_id ORDER BY st.tag_id) "
                   "FROM supporter_tags AS st WHERE st.supporter_id = s.id), '{}')")


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS supporter_tags_sync_delete ON supporter_tags")
        op.execute("DROP TRIGGER IF EXISTS supporter_tags_sync_insert ON supporter_tags")
        op.execute("DROP FUNCTION IF EXISTS supporter_tags_sync()")
    with op.batch_alter_table('supporters', schema=None) as batch_op:
        batch_op.drop_index('ix_supporters_tag_ids')
        batch_op.drop_column('tag_ids')
    op.drop_table('segments')
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idempotency_keys_created_at'))
    op.drop_table('idempotency_keys')
