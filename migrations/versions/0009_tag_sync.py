"""supporter_tags triggers: leave rows whose tag_ids are already right; follow UPDATE and TRUNCATE

Revision ID: 0009_tag_sync
Revises: 0008_ledger_brin
Create Date: 2026-11-24 14:10:00

The statement trigger on supporter_tags (migration 0003) rewrote every affected supporter row,
even when `tag_ids` already held the right value. An import now writes `tag_ids` with the row
itself, so its tags no longer cost a second version of each new supporter (with all its index
entries). The triggers also covered only INSERT and DELETE: an UPDATE of a link or a TRUNCATE of
the table left `tag_ids` stale. PostgreSQL only; SQLite answers tag filters from the join table.
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0009_tag_sync'
down_revision = '0008_ledger_brin'
branch_labels = None
depends_on = None

# Recompute the tag ids of the supporters a statement touched, from the join table (the source
# of truth), and write only the rows whose value changes. {ids} selects the touched supporters.
_SYNC = """
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE supporters AS s
       SET tag_ids = v.tag_ids
      FROM (SELECT c.supporter_id,
                   COALESCE((SELECT array_agg(st.tag_id ORDER BY st.tag_id)
                               FROM supporter_tags AS st WHERE st.supporter_id = c.supporter_id), '{{}}') AS tag_ids
              FROM ({ids}) AS c) AS v
     WHERE s.id = v.supporter_id AND s.tag_ids IS DISTINCT FROM v.tag_ids;
    RETURN NULL;
END
$$
"""
# INSERT and DELETE (the triggers of migration 0003 call this one).
SKIPPING = _SYNC.format(name="supporter_tags_sync", ids="SELECT DISTINCT supporter_id FROM changed")
# UPDATE: a link may have moved to another supporter, so both the old and the new one follow.
MOVED = _SYNC.format(name="supporter_tags_sync_moved",
                     ids="SELECT supporter_id FROM changed_old UNION SELECT supporter_id FROM changed_new")

CLEARED = """
CREATE OR REPLACE FUNCTION supporter_tags_cleared() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE supporters SET tag_ids = '{}' WHERE tag_ids <> '{}';
    RETURN NULL;
END
$$
"""

REWRITING = """
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
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(SKIPPING)
    op.execute(MOVED)
    op.execute(CLEARED)
    op.execute("CREATE TRIGGER supporter_tags_sync_update AFTER UPDATE ON supporter_tags "
               "REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new FOR EACH STATEMENT "
               "EXECUTE FUNCTION supporter_tags_sync_moved()")
    op.execute("CREATE TRIGGER supporter_tags_sync_truncate AFTER TRUNCATE ON supporter_tags "
               "FOR EACH STATEMENT EXECUTE FUNCTION supporter_tags_cleared()")


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("DROP TRIGGER IF EXISTS supporter_tags_sync_truncate ON supporter_tags")
    op.execute("DROP TRIGGER IF EXISTS supporter_tags_sync_update ON supporter_tags")
    op.execute("DROP FUNCTION IF EXISTS supporter_tags_cleared()")
    op.execute("DROP FUNCTION IF EXISTS supporter_tags_sync_moved()")
    op.execute(REWRITING)
