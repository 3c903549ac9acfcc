"""The import's writing side: the staging table on the import's own connection and the set-based
statements that turn one staged batch into supporters, consent events and tags.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from core.db import UTCDateTime
from supporters.import_rows import STAGE_COLUMNS
from supporters.import_source import ImportOptions

CONSENT_PURPOSE = "campaigns"


class Stage:
    """A temporary table on the import's own connection, and the per-batch statements."""

    def __init__(self, conn: sa.Connection, opts: ImportOptions, tag_names: list[str], columns: set[str],
                 per_transaction: bool = False):
        self.conn = conn
        # Behind PgBouncer in transaction pooling (DATABASE_POOL_MODE=transaction) each transaction
        # may run on another server connection, where a temporary table made earlier does not
        # exist: then every batch's transaction makes its own, dropped at its commit.
        self.per_transaction = per_transaction and conn.dialect.name == "postgresql"
        self.opts = opts
        self.pg = conn.dialect.name == "postgresql"
        self.active = not opts.send_opt_in
        self.tag_names = tag_names
        self.columns = columns  # the fields the file has: an update never blanks the others

    def _create_sql(self) -> str:
        id_type = "BIGINT" if self.pg else "INTEGER"
        # The reader has already removed in-file duplicates. SQLite needs the key to note new ids
        # row by row; PostgreSQL joins the stage set-based and would only pay for the index.
        key = "NOT NULL" if self.pg else "PRIMARY KEY"
        return ("CREATE TEMPORARY TABLE _import_stage (line INTEGER NOT NULL, email TEXT NOT NULL, "
                f"email_normalized TEXT {key}, name TEXT, kind TEXT NOT NULL, language TEXT NOT NULL, "
                f"country TEXT, timezone TEXT, tags TEXT, email_hash TEXT, referral_code TEXT, new_id {id_type})"
                + (" ON COMMIT DROP" if self.per_transaction else ""))

    def create(self) -> None:
        if self.per_transaction:
            return  # made in each batch's transaction (load)
        with self.conn.begin():
            self.conn.exec_driver_sql("DROP TABLE IF EXISTS _import_stage")
            self.conn.exec_driver_sql(self._create_sql())

    def drop(self) -> None:
        if self.per_transaction:
            return  # dropped at each commit
        with self.conn.begin():
            self.conn.exec_driver_sql("DROP TABLE IF EXISTS _import_stage")

    def load(self, rows: list[tuple]) -> None:
        # TRUNCATE, not DELETE, on PostgreSQL: deleted rows stay in the table until a vacuum, so
        # every batch's scan of the stage would also read all earlier batches (a million rows took
        # 13.8 s with DELETE, 10.9 s with TRUNCATE). SQLite's DELETE without WHERE is a truncate.
        if self.per_transaction:
            self.conn.exec_driver_sql(self._create_sql())
        else:
            self.conn.exec_driver_sql("TRUNCATE _import_stage" if self.pg else "DELETE FROM _import_stage")
        columns = ", ".join(STAGE_COLUMNS)
        if self.pg:
            # No wait for the WAL flush at each batch's commit: a crash can lose only the last
            # batches, and re-running the file completes exactly those (it is idempotent).
            self.conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            raw = self.conn.connection.driver_connection
            with raw.cursor() as cur, cur.copy(f"COPY _import_stage ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in STAGE_COLUMNS)
            self.conn.exec_driver_sql(f"INSERT INTO _import_stage ({columns}) VALUES ({marks})", rows)  # noqa: S608 - only constant identifiers are interpolated

    def drop_suppressed(self) -> int:
        return self.conn.exec_driver_sql(
            "DELETE FROM _import_stage WHERE email_hash IN (SELECT email_hash FROM suppressions)").rowcount

    def update_existing(self, now: datetime) -> int:
        """Update the profile of existing supporters (never their status); count real changes."""
        p = self.columns
        sets = [f"{c} = COALESCE(st.{c}, supporters.{c})" for c in ("name", "country", "timezone") if c in p]
        sets += [f"{c} = st.{c}" for c in ("kind", "language") if c in p]
        if not sets:
            return 0
        differs = " OR ".join(
            f"(st.{c} IS NOT NULL AND supporters.{c} IS DISTINCT FROM st.{c})" if self.pg else
            f"(st.{c} IS NOT NULL AND supporters.{c} IS NOT st.{c})"
            for c in ("name", "country", "timezone", "kind", "language") if c in p)
        sql = (f"UPDATE supporters SET {', '.join(sets)}, updated_at = :now FROM _import_stage AS st "  # noqa: S608 - only constant identifiers are interpolated
               f"WHERE supporters.email_normalized = st.email_normalized AND supporters.status <> 'erased' "
               f"AND ({differs})")
        return self.conn.execute(sa.text(sql).bindparams(sa.bindparam("now", now, type_=UTCDateTime()))).rowcount

    def insert_new(self, now: datetime, need_ids: bool, with_tag_column: bool = False) -> int:
        """Insert the new supporters (and their consent events); return how many were new.

        `need_ids`: note each new supporter's id in the stage, for tags and opt-in mails.
        With --tag names or a tags column, the batch's tags exist already (`ensure_tags`) and will
        be linked to the new rows.
        """
        status = "active" if self.active else "pending"
        params = [sa.bindparam("now", now, type_=UTCDateTime()), sa.bindparam("status", status)]
        tag_column = tag_value = ""
        if self.pg and (self.tag_names or with_tag_column):
            # The tag index column written with the row (the tags exist already): the trigger on
            # supporter_tags then finds it right and leaves the row alone instead of rewriting it.
            tag_column, tag_value = ", tag_ids", f", {self._tag_ids_of_row(with_tag_column)}"
            params.append(sa.bindparam("tag_names", self.tag_names, type_=postgresql.ARRAY(sa.Text)))
        insert = ("INSERT INTO supporters (email, email_normalized, name, kind, language, country, timezone, status, "  # noqa: S608 - only constant SQL is interpolated
                  f"referral_code, engagement_score, source, created_at, updated_at{tag_column}) "
                  "SELECT email, email_normalized, name, kind, language, country, timezone, :status, referral_code, "
                  f"0, 'import', :now, :now{tag_value} FROM _import_stage WHERE true "
                  "ON CONFLICT (email_normalized) DO NOTHING RETURNING id, email_normalized")
        with_consent = not self.opts.send_opt_in
        if self.pg:
            # One statement: supporters, their consent events and (if needed) the ids in the stage,
            # all from the INSERT's RETURNING, so nothing is read twice.
            ctes = [f"ins AS ({insert})"]
            if with_consent:
                ctes.append(f"ce AS ({self._consent_insert('ins', 'id')})")
                params += self._consent_params()
            if need_ids:
                tail = ("UPDATE _import_stage SET new_id = ins.id FROM ins "
                        "WHERE _import_stage.email_normalized = ins.email_normalized")
                sql = f"WITH {', '.join(ctes)} {tail}"
                return self.conn.execute(sa.text(sql).bindparams(*params)).rowcount
            sql = f"WITH {', '.join(ctes)} SELECT count(*) FROM ins"  # noqa: S608 - constant SQL only
            return self.conn.execute(sa.text(sql).bindparams(*params)).scalar_one()
        new = self.conn.execute(sa.text(insert).bindparams(*params)).all()
        if new:
            self.conn.exec_driver_sql("UPDATE _import_stage SET new_id = ? WHERE email_normalized = ?",
                                      [(r[0], r[1]) for r in new])
            if with_consent:
                self.conn.execute(sa.text(self._consent_insert("_import_stage", "new_id")
                                          + " WHERE new_id IS NOT NULL").bindparams(*self._consent_params()))
        return len(new)

    @staticmethod
    def _tag_ids_of_row(with_tag_column: bool) -> str:
        """SQL for a staged row's sorted tag ids: the --tag names plus its own tags column."""
        own = (" OR t.name IN (SELECT j.value FROM json_array_elements_text(_import_stage.tags::json) AS j(value))"
               if with_tag_column else "")
        return f"ARRAY(SELECT t.id FROM tags AS t WHERE t.name = ANY(:tag_names){own} ORDER BY t.id)"  # noqa: S608 - constant SQL only

    @staticmethod
    def _consent_insert(source: str, id_column: str) -> str:
        return ("INSERT INTO consent_events (supporter_id, purpose, action, method, occurred_at, note, text_version) "  # noqa: S608 - constant SQL only
                f"SELECT {id_column}, :purpose, 'granted', 'import', :at, :note, 'import' FROM {source}")

    def _consent_params(self) -> list:
        return [sa.bindparam("at", self.opts.consented_at, type_=UTCDateTime()),
                sa.bindparam("purpose", CONSENT_PURPOSE), sa.bindparam("note", self.opts.consent_note.strip())]

    def ensure_tags(self, now: datetime, with_column: bool) -> None:
        """Create the tags this batch names (not public: an operator decides what is offered)."""
        if self.tag_names:
            self.conn.execute(sa.text(
                "INSERT INTO tags (name, public, created_at) VALUES (:name, false, :now) "
                "ON CONFLICT (name) DO NOTHING").bindparams(sa.bindparam("now", type_=UTCDateTime())),
                [{"name": n, "now": now} for n in self.tag_names])
        if with_column:
            self.conn.execute(sa.text(
                f"INSERT INTO tags (name, public, created_at) SELECT DISTINCT j.value, false, :now "  # noqa: S608 - only constant identifiers are interpolated
                f"FROM _import_stage, {self._each('_import_stage.tags')} WHERE _import_stage.tags IS NOT NULL "
                f"ORDER BY 1 ON CONFLICT (name) DO NOTHING").bindparams(
                    sa.bindparam("now", now, type_=UTCDateTime())))

    def _each(self, column: str) -> str:
        if self.pg:
            return f"json_array_elements_text({column}::json) AS j(value)"
        return f"json_each({column}) AS j"

    def tag_rows(self, with_column: bool) -> None:
        # Targets: the new supporters, plus the existing ones when updating.
        if self.opts.update:
            target = ("(SELECT s.id AS sid, st.tags AS tags FROM _import_stage st JOIN supporters s "
                      "ON s.email_normalized = st.email_normalized WHERE s.status <> 'erased')")
        else:
            target = "(SELECT new_id AS sid, tags FROM _import_stage WHERE new_id IS NOT NULL)"
        # One statement for all links, so the tag trigger runs once, when each supporter's tags
        # are complete (and finds the new rows' tag_ids already right).
        parts, params = [], []
        if self.tag_names:
            parts.append(f"SELECT tags.id AS tag_id, t.sid AS sid FROM {target} AS t JOIN tags ON tags.name IN :names")  # noqa: S608 - only constant identifiers are interpolated
            params.append(sa.bindparam("names", self.tag_names, expanding=True))
        if with_column:
            parts.append(f"SELECT tags.id AS tag_id, t.sid AS sid FROM {target} AS t, {self._each('t.tags')} "  # noqa: S608 - only constant identifiers are interpolated
                         f"JOIN tags ON tags.name = j.value WHERE t.tags IS NOT NULL")
        self.conn.execute(sa.text(
            f"INSERT INTO supporter_tags (tag_id, supporter_id) SELECT tag_id, sid FROM ({' UNION '.join(parts)}) AS u "  # noqa: S608 - only constant identifiers are interpolated
            f"WHERE true ON CONFLICT DO NOTHING").bindparams(*params))

    def new_ids(self) -> list[int]:
        return [r[0] for r in self.conn.exec_driver_sql(
            "SELECT new_id FROM _import_stage WHERE new_id IS NOT NULL ORDER BY new_id")]
