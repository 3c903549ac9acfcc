"""campaigns.segment_id references segments (ON DELETE SET NULL)

Revision ID: 0007_wire
Revises: 0006_actions
Create Date: 2026-11-24 08:50:00

Segments are hard-deleted; a launched campaign's audience is frozen in its deliveries, so losing
the reference only clears the label. Unlaunched campaigns are protected by the API (409).
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0007_wire'
down_revision = '0006_actions'
branch_labels = None
depends_on = None


def upgrade():
    # A dangling id (impossible through the API before, which refused segment_id) would break the FK.
    op.execute("UPDATE campaigns SET segment_id = NULL WHERE segment_id IS NOT NULL "
               "AND segment_id NOT IN (SELECT id FROM segments)")
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_foreign_key(batch_op.f('fk_campaigns_segment_id_segments'), 'segments', ['segment_id'], ['id'],
                                    ondelete='SET NULL')


def downgrade():
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_campaigns_segment_id_segments'), type_='foreignkey')
