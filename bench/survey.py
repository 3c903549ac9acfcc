"""Survey results on a large survey: campaigns.survey_results.figures() vs hand-written SQL, same run.

    .venv/bin/python -m bench.survey --responses 100000                  # PostgreSQL (throw-away server)
    .venv/bin/python -m bench.survey --responses 100000 --engine sqlite

A survey of 10 questions (1 NPS, 3 ratings, 2 single and 2 multiple choices, 2 texts) with N
responses (about 13 answer rows each) is written with INSERT … SELECT. Timed, interleaved:
  ours      figures(): every question's distribution, NPS with its interval, breakdowns by
            kind and language (with NPS), response and completion rates
  hand      the same numbers from hand-written SQL statements (one GROUP BY for all questions,
            COUNT DISTINCT for multiple choice, the response counts, the two breakdowns over the
            responses' NPS column)
  groupby   the bare minimum: one hand-written GROUP BY question, value (all question summaries
            and the NPS follow from it)
Target (issue 17): ours ≤ 1.5 × hand.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path

import sqlalchemy as sa

from bench.api import _interleaved, _production_memory
from bench.generate import generate

LANG = {"en": "x", "de": "y"}
QUESTIONS = (
    [{"key": "nps", "type": "nps", "label": LANG, "required": True}]
    + [{"key": f"r{i}", "type": "rating", "label": LANG} for i in range(3)]
    + [{"key": f"s{i}", "type": "single", "label": LANG, "options": {"en": ["a", "b", "c"], "de": ["a", "b", "c"]}}
       for i in range(2)]
    + [{"key": f"m{i}", "type": "multiple", "label": LANG, "options": {"en": ["a", "b", "c"], "de": ["a", "b", "c"]}}
       for i in range(2)]
    + [{"key": f"t{i}", "type": "long_text", "label": LANG} for i in range(2)]
)

HAND = {
    "distribution": "SELECT question, value, count(*) FROM survey_answers WHERE campaign_id = :c "
                    "GROUP BY question, value",
    "respondents": "SELECT question, count(DISTINCT response_id) FROM survey_answers "
                   "WHERE campaign_id = :c AND question IN ('m0', 'm1') GROUP BY question",
    "responses": "SELECT count(*), count(completed_at), count(reply_requested_at) FROM survey_responses "
                 "WHERE campaign_id = :c",
    "sent": "SELECT count(*) FROM deliveries WHERE campaign_id = :c AND status IN ('sent', 'bounced')",
    "by_kind": "SELECT supporter_kind, nps, count(*) FROM survey_responses WHERE campaign_id = :c "
               "GROUP BY supporter_kind, nps",
    "by_language": "SELECT language, nps, count(*) FROM survey_responses WHERE campaign_id = :c GROUP BY language, nps",
}


def _fill(conn, campaign_id: int, responses: int) -> int:
    """Deliveries, responses and answers with INSERT … SELECT; returns the number of answer rows."""
    c = {"c": campaign_id, "n": responses}
    conn.execute(sa.text("INSERT INTO deliveries (campaign_id, supporter_id, status, attempts, reclaimed, "
                         "in_flight_at_stop, sent_at) SELECT :c, id, 'sent', 1, false, false, created_at "
                         "FROM supporters WHERE id <= :n"), c)
    conn.execute(sa.text("INSERT INTO survey_responses (campaign_id, delivery_id, supporter_id, supporter_kind, "
                         "language, created_at, updated_at, completed_at) SELECT d.campaign_id, d.id, s.id, s.kind, "
                         "s.language, d.sent_at, d.sent_at, d.sent_at FROM deliveries d JOIN supporters s "
                         "ON s.id = d.supporter_id WHERE d.campaign_id = :c"), c)
    base = "INSERT INTO survey_answers (response_id, campaign_id, question, value, text) SELECT id, campaign_id, "
    where = " FROM survey_responses WHERE campaign_id = :c"
    # Scores spread over the scale, deterministic per response id.
    conn.execute(sa.text(base + "'nps', (id * 7919 + id / 7) % 11, NULL" + where), c)
    conn.execute(sa.text("UPDATE survey_responses SET nps = (id * 7919 + id / 7) % 11 WHERE campaign_id = :c"), c)
    for i in range(3):
        conn.execute(sa.text(base + f"'r{i}', 1 + (id * {31 + i}) % 5, NULL" + where), c)
    for i in range(2):
        conn.execute(sa.text(base + f"'s{i}', (id * {13 + i}) % 3, NULL" + where), c)
        conn.execute(sa.text(base + f"'m{i}', (id * {17 + i}) % 3, NULL" + where), c)
        conn.execute(sa.text(base + f"'m{i}', ((id * {17 + i}) + 1) % 3, NULL" + where + f" AND id % {2 + i} = 0"), c)
        conn.execute(sa.text(base + f"'t{i}', NULL, 'comment ' || id" + where + " AND id % 5 = 0"), c)
    return conn.execute(sa.text("SELECT count(*) FROM survey_answers WHERE campaign_id = :c"), c).scalar_one()


def run(engine_name: str, responses: int, repeat: int) -> None:
    from flask_migrate import upgrade

    from campaigns.survey_results import figures, nps
    from core.extensions import db
    from tests.servers import PostgresServer, RedisServer
    from wsgi import create_app

    tmp = Path(tempfile.mkdtemp(prefix="sp-bench-survey-"))
    servers = []
    try:
        settings = {"APP_ENV": "testing", "INSTANCE_PATH": str(tmp / "instance"), "SMTP_URL": None}
        if engine_name == "postgresql":
            pg = PostgresServer().start()
            servers.append(pg)
            _production_memory(pg)
            settings["DATABASE_URL"] = pg.create_database("bench_survey")
            redis_server = RedisServer().start()
            servers.append(redis_server)
            settings["REDIS_URL"] = redis_server.url
        else:
            settings["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.db'}"
        app = create_app(settings)
        with app.app_context():
            upgrade()
            db.session.remove()
        print(f"== {engine_name}: {responses:,} supporters …", flush=True)
        generate(settings["DATABASE_URL"], responses, seed=1)
        with app.app_context():
            with db.engine.begin() as conn:
                cid = conn.execute(sa.text("INSERT INTO campaigns (name, kind, status, respect_quiet_hours, "
                                           "created_at, updated_at) VALUES ('bench survey', 'survey', 'sent', "
                                           "false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP) RETURNING id")).scalar_one()
                conn.execute(sa.text("INSERT INTO campaign_settings (campaign_id, config) VALUES (:c, :cfg)"),
                             {"c": cid, "cfg": json.dumps({"questions": QUESTIONS})})
                rows = _fill(conn, cid, responses)
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                # As autovacuum would after a load: statistics, and a visibility map for index-only scans.
                conn.execute(sa.text("VACUUM ANALYZE" if engine_name == "postgresql" else "ANALYZE"))
            print(f"   {responses:,} responses, {rows:,} answer rows", flush=True)

            def ours():
                return figures(cid)

            def hand():
                with db.engine.connect() as conn:
                    out = {name: conn.execute(sa.text(sql), {"c": cid}).all() for name, sql in HAND.items()}
                counts = {v: n for q, v, n in out["distribution"] if q == "nps"}
                return out, nps(counts)

            def groupby():
                with db.engine.connect() as conn:
                    return conn.execute(sa.text(HAND["distribution"]), {"c": cid}).all()

            mine, (_theirs, their_nps) = ours(), hand()
            assert mine["nps"] == their_nps and mine["responses"] == responses, "ours and hand disagree"
            db.session.remove()
            samples = _interleaved({"ours": lambda: (ours(), db.session.remove()), "hand": hand,
                                    "groupby": groupby}, repeat)
        medians = {k: statistics.median(v) for k, v in samples.items()}
        print(f"   median ms: ours {medians['ours']:.1f}, hand-written SQL {medians['hand']:.1f}, "
              f"one GROUP BY {medians['groupby']:.1f}")
        print(f"   ratio ours/hand = {medians['ours'] / medians['hand']:.2f} (target ≤ 1.5), "
              f"ours/groupby = {medians['ours'] / medians['groupby']:.2f}; NPS {mine['nps']['score']} "
              f"{mine['nps']['ci95']}", flush=True)
    finally:
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Survey results vs hand-written SQL on a large survey")
    parser.add_argument("--responses", type=int, default=100_000)
    parser.add_argument("--engine", choices=("postgresql", "sqlite", "both"), default="postgresql")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    for engine_name in (("postgresql", "sqlite") if args.engine == "both" else (args.engine,)):
        run(engine_name, args.responses, args.repeat)


if __name__ == "__main__":
    main()
