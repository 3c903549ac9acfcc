import csv
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from core.queues import get_queue
from supporters.mail_jobs import OPT_IN_JOB_SECONDS
from supporters.models import (
    ConsentEvent,
    Supporter,
    SupporterStatus,
    Suppression,
    SuppressionReason,
    Tag,
    email_hash,
    supporter_tags,
)
from supporters.privacy import erase_supporter
from tests.factories import make_supporter
from tests.terminal import run_on_terminal
from tests.test_join_support import outbox, run_mail_worker

EVIDENCE = ["--consent-note", "Signed up at the 2025 trade fair, paper form", "--consented-at", "2025-09-01"]


def write(path, text: str, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def run(runner, path, *args, evidence=True):
    return runner.invoke(args=["import", "supporters", str(path), *(EVIDENCE if evidence else []), *args])


def count(db, model_or_table) -> int:
    db.session.rollback()
    return db.session.scalar(sa.select(sa.func.count()).select_from(model_or_table))


def rejects(path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))[1:]


def test_import_with_consent_evidence_makes_active_supporters_with_a_ledger_entry(runner, db, tmp_path):
    f = write(tmp_path / "fair.csv", "Email,Name,Country,Language\nAda@Example.ORG,Ada Lovelace,gb,en\n"
                                     "jo@example.org,Jürgen Ölmann,DE,de-DE\n")
    result = run(runner, f, "--tag", "fair-2025", "--kind", "partner")
    assert result.exit_code == 0, result.output
    assert "inserted 2, updated 0, skipped as duplicate 0" in result.stdout
    ada = db.session.scalar(sa.select(Supporter).where(Supporter.email_normalized == "ada@example.org"))
    assert ada.email == "Ada@example.org" and ada.status is SupporterStatus.ACTIVE and ada.country == "GB"
    assert ada.kind.value == "partner" and ada.source == "import"
    jo = db.session.scalar(sa.select(Supporter).where(Supporter.email_normalized == "jo@example.org"))
    assert jo.language == "de" and jo.name == "Jürgen Ölmann"
    codes = {ada.referral_code, jo.referral_code}
    assert None not in codes and len(codes) == 2 and all(len(c) >= 12 for c in codes)
    consent = ada.consents[0]
    assert (consent.method, consent.purpose, consent.action.value) == ("import", "campaigns", "granted")
    assert consent.note == "Signed up at the 2025 trade fair, paper form"
    assert consent.occurred_at.date().isoformat() == "2025-09-01"
    assert [t.name for t in ada.tags] == ["fair-2025"]
    assert db.session.scalar(sa.select(Tag.public).where(Tag.name == "fair-2025")) is False


def test_import_deduplicates_within_the_file_and_against_the_database(runner, db, tmp_path):
    make_supporter("known@example.org", name="Known")
    f = write(tmp_path / "d.csv", "email,name\nnew@example.org,New\nNEW@example.org,Again\n"
                                  "Known@Example.org,Renamed\nother@example.org,Other\n")
    result = run(runner, f)
    assert result.exit_code == 0, result.output
    assert ("inserted 2, updated 0, skipped as duplicate 2 (1 within the file, 1 already known), rejected 0, "
            "suppressed 0") in result.stdout
    assert db.session.scalar(sa.select(Supporter.name).where(Supporter.email_normalized == "known@example.org")) == "Known"
    assert db.session.scalar(sa.select(Supporter.name).where(Supporter.email_normalized == "new@example.org")) == "New"


@pytest.mark.parametrize("writers", ["1", "3"])
def test_re_running_the_same_file_is_a_no_op(runner, db, tmp_path, writers):
    lines = ["email,name,tags"] + [f"p{i}@example.org,Person {i},\"a,b\"" for i in range(120)] + ["broken"]
    f = write(tmp_path / "again.csv", "\n".join(lines) + "\n")
    first = run(runner, f, "--batch-size", "50", "--writers", writers)
    assert first.exit_code == 0, first.output
    assert "inserted 120" in first.stdout and "rejected 1" in first.stdout
    before = {t: count(db, t) for t in (Supporter, ConsentEvent, supporter_tags, Tag)}
    assert before[supporter_tags] == 240
    second = run(runner, f, "--batch-size", "50", "--writers", writers)
    assert second.exit_code == 0, second.output
    assert "inserted 0, updated 0, skipped as duplicate 120 (0 within the file, 120 already known)" in second.stdout
    assert {t: count(db, t) for t in before} == before


def test_send_opt_in_imports_pending_people_and_queues_their_confirmation_mail(runner, db, tmp_path):
    f = write(tmp_path / "optin.csv", "email\na@example.org\nb@example.org\nc@example.org\n")
    result = run(runner, f, "--send-opt-in", "--batch-size", "2", evidence=False)
    assert result.exit_code == 0, result.output
    assert "Queued 3 double-opt-in mails." in result.stdout
    people = db.session.scalars(sa.select(Supporter).order_by(Supporter.id)).all()
    assert [p.status for p in people] == [SupporterStatus.PENDING] * 3
    assert all(p.referral_code is None for p in people)
    assert count(db, ConsentEvent) == 0
    # One throttled job per committed batch (up to OPT_IN_BATCH people each), not one per person.
    jobs = get_queue("mail").get_jobs()
    assert [j.func_name for j in jobs] == ["supporters.mail_jobs.send_confirmations"] * 2
    # Batches are written by parallel writers, so which one gets the lower ids is a race: compare people.
    email_of = {p.id: p.email for p in people}
    assert sorted(sorted(email_of[i] for i in j.args[0]) for j in jobs) == [["a@example.org", "b@example.org"],
                                                                          ["c@example.org"]]
    assert all(j.timeout > OPT_IN_JOB_SECONDS for j in jobs)
    again = run(runner, f, "--send-opt-in", evidence=False)
    assert "inserted 0" in again.stdout and get_queue("mail").count == 2


def test_opt_in_mails_of_an_import_go_out_through_a_worker_once_each(app, runner, db, tmp_path):
    f = write(tmp_path / "optin.csv", "email\na@example.org\nb@example.org\nc@example.org\n")
    assert run(runner, f, "--send-opt-in", "--batch-size", "2", evidence=False).exit_code == 0
    bob = db.session.scalar(sa.select(Supporter).where(Supporter.email == "b@example.org"))
    erase_supporter(bob)  # left before the worker came round: gets nothing
    db.session.commit()
    run_mail_worker(app)
    run_mail_worker(app)  # a second pass (e.g. a retried job) sends nothing twice
    assert sorted(m["To"] for m in outbox(app)) == ["a@example.org", "c@example.org"]
    db.session.rollback()
    sent = db.session.scalars(sa.select(Supporter.confirmation_sent_at).where(Supporter.status == "pending")).all()
    assert len(sent) == 2 and None not in sent


def test_opt_in_mails_share_the_sending_engines_rates_and_hand_on_what_must_wait(app, db, monkeypatch):
    from supporters import mail_jobs

    people = [make_supporter(f"p{i}@example.org", status=SupporterStatus.PENDING, consent=False).id for i in range(3)]
    app.config["CAMPAIGN_DOMAIN_RATE_PER_MINUTE"] = 1  # one mail a minute to example.org
    monkeypatch.setattr(mail_jobs, "OPT_IN_JOB_SECONDS", 5.0)
    assert mail_jobs.send_confirmations(people) == 1
    assert [m["To"] for m in outbox(app)] == ["p0@example.org"]
    # The next example.org mail may go in a minute: rather than hold the worker, the job scheduled
    # the rest as a new job for then; the domain's budget is shared, so that job waits its turn too.
    assert get_queue("mail").count == 0
    scheduled = get_queue("mail").scheduled_job_registry
    (rest_id,) = scheduled.get_job_ids()
    rest = get_queue("mail").fetch_job(rest_id)
    assert (rest.func_name, rest.args) == ("supporters.mail_jobs.send_confirmations", (people[1:],))
    due = scheduled.get_scheduled_time(rest)
    assert 50 < (due - datetime.now(UTC)).total_seconds() <= 61
    assert mail_jobs.send_confirmations(people[1:]) == 0 and len(outbox(app)) == 1
    # Without a rate limit, a job that has used up its time (a slow relay) also hands on the rest.
    app.config["CAMPAIGN_DOMAIN_RATE_PER_MINUTE"] = 0
    monkeypatch.setattr(mail_jobs, "OPT_IN_JOB_SECONDS", -1.0)
    get_queue("mail").empty()
    assert mail_jobs.send_confirmations(people[1:]) == 0
    assert [j.args for j in get_queue("mail").get_jobs()] == [(people[1:],)]


def test_suppressed_and_erased_addresses_are_never_imported(runner, db, tmp_path):
    db.session.add(Suppression(email_hash=email_hash("Bounced@example.org"), reason=SuppressionReason.HARD_BOUNCE))
    gone = make_supporter("gone@example.org")
    erase_supporter(gone)
    db.session.commit()
    f = write(tmp_path / "s.csv", "email\nbounced@EXAMPLE.org\ngone@example.org\nfine@example.org\n")
    result = run(runner, f)
    assert result.exit_code == 0, result.output
    assert "inserted 1" in result.stdout and "suppressed 2" in result.stdout
    assert db.session.scalars(sa.select(Supporter.email_normalized).where(Supporter.email_normalized.is_not(None))
                              ).all() == ["fine@example.org"]


def test_update_changes_profiles_but_never_brings_back_unsubscribed_people(runner, db, tmp_path):
    make_supporter("left@example.org", name="Old", status="unsubscribed")
    make_supporter("stay@example.org", name="Same", country="FR")
    f = write(tmp_path / "u.csv", "email,name,country\nleft@example.org,New Name,\nstay@example.org,Same,FR\n")
    without = run(runner, f)
    assert "updated 0" in without.stdout
    assert db.session.scalar(sa.select(Supporter.name).where(Supporter.email_normalized == "left@example.org")) == "Old"
    result = run(runner, f, "--update")
    assert result.exit_code == 0, result.output
    assert "inserted 0, updated 1" in result.stdout
    left = db.session.scalar(sa.select(Supporter).where(Supporter.email_normalized == "left@example.org"))
    assert left.name == "New Name" and left.status is SupporterStatus.UNSUBSCRIBED
    assert count(db, ConsentEvent) == 2  # the factories' own; an update grants nothing


def test_dry_run_reports_and_changes_nothing(runner, db, tmp_path):
    make_supporter("known@example.org")
    f = write(tmp_path / "dry.csv", "email\nknown@example.org\nnew@example.org\nbad\n")
    result = run(runner, f, "--dry-run", "--tag", "x")
    assert result.exit_code == 0, result.output
    assert "Would import" in result.stdout and "inserted 1" in result.stdout and "rejected 1" in result.stdout
    assert "Dry run: nothing was changed." in result.stdout
    assert count(db, Supporter) == 1 and count(db, Tag) == 0 and count(db, ConsentEvent) == 1


def test_ten_percent_broken_rows_go_to_the_reject_file_with_line_numbers(runner, db, tmp_path):
    lines, broken = ["email;name;kind;language;country;timezone"], {}
    bad_rows = [
        ("not-an-email;X;fan;en;DE;", "invalid email"),
        ("x@example.org;X;alien;en;DE;", "unknown kind 'alien'"),
        ("y@example.org;X;fan;fr;DE;", "unknown language 'fr'"),
        ("z@example.org;X;fan;en;Germany;", "two-letter ISO code"),
        ("w@example.org;X;fan;en;DE;Mars/Base", "unknown time zone"),
        ("v@example.org;X;fan", "expected 6 fields, found 3"),
        ("u@example.org;X;fan;en;DE;;extra", "expected 6 fields, found 7"),
        (";X;fan;en;DE;", "the email is empty"),
        ("t@localhost;X;fan;en;DE;", "invalid email"),
        ("s@example.org;" + "N" * 201 + ";fan;en;DE;", "longer than 200"),
    ]
    for i in range(200):
        if i % 10 == 5:
            row, reason = bad_rows[i // 10 % len(bad_rows)]
            broken[len(lines) + 1] = reason
            lines.append(row)
        else:
            lines.append(f"good{i}@example.org;Good {i};supplier;de;at;Europe/Vienna")
    f = write(tmp_path / "messy.csv", "\n".join(lines) + "\n")
    result = run(runner, f, "--rejects", str(tmp_path / "rej.csv"))
    assert result.exit_code == 0, result.output
    assert "inserted 180" in result.stdout and "rejected 20" in result.stdout
    got = rejects(tmp_path / "rej.csv")
    assert [int(r[0]) for r in got] == sorted(broken)
    for row in got:
        assert broken[int(row[0])] in row[1], row
        assert row[2:] == lines[int(row[0]) - 1].split(";")
    good = db.session.scalar(sa.select(Supporter).where(Supporter.email_normalized == "good0@example.org"))
    assert (good.kind.value, good.language, good.country, good.timezone) == ("supplier", "de", "AT", "Europe/Vienna")


def test_a_file_that_stops_mid_row_rejects_only_that_row(runner, db, tmp_path):
    f = write(tmp_path / "cut.csv", "email,name,country\na@example.org,A,DE\nb@example.org,B")
    result = run(runner, f)
    assert result.exit_code == 0, result.output
    assert "inserted 1" in result.stdout and "rejected 1" in result.stdout
    assert "stops in the middle of this row" in rejects(str(f) + ".rejects.csv")[0][1]
    quoted = write(tmp_path / "quote.csv", 'email,name\na@example.org,A\nb@example.org,"Unfinished\nc@example.org,C\n')
    result = run(runner, quoted)
    assert "rejected 1" in result.stdout
    assert rejects(str(quoted) + ".rejects.csv")[0][:2] == ["3", "the file ends inside a quoted field (it stops mid-row)"]
    assert count(db, Supporter) == 1


def test_a_complete_last_row_without_a_newline_is_fine(runner, db, tmp_path):
    f = write(tmp_path / "nonl.csv", "email,name\na@example.org,A\nb@example.org,B")
    result = run(runner, f)
    assert "inserted 2" in result.stdout and "rejected 0" in result.stdout
    assert not os.path.exists(str(f) + ".rejects.csv")


def test_mapping_delimiters_and_encodings_are_detected_or_given(runner, db, tmp_path):
    tab = write(tmp_path / "tab.tsv", "Mail\tVoller Name\nt@example.org\tTabby\n")
    assert "inserted 1" in run(runner, tab).stdout
    mapped = write(tmp_path / "map.csv", "Kontakt;Wer;Notiz\nm@example.org;Mapped;ignore me\n")
    result = run(runner, mapped, "--map", "email=Kontakt,name=Wer")
    assert "inserted 1" in result.stdout and "ignored columns: Notiz" in result.stderr
    bom = write(tmp_path / "bom.csv", "\ufeffemail,name\nb@example.org,Bom\n")
    assert "inserted 1" in run(runner, bom).stdout
    latin = write(tmp_path / "latin.csv", "email,name\nl@example.org,Jürgen Größe\n", encoding="cp1252")
    result = run(runner, latin)
    assert "inserted 1" in result.stdout and "read it as cp1252" in result.stderr
    utf16 = write(tmp_path / "u16.csv", "email,name\nu@example.org,Sixteen\n", encoding="utf-16")
    assert "inserted 1" in run(runner, utf16).stdout
    names = dict(db.session.execute(sa.select(Supporter.email, Supporter.name)).all())
    assert names == {"t@example.org": "Tabby", "m@example.org": "Mapped", "b@example.org": "Bom",
                     "l@example.org": "Jürgen Größe", "u@example.org": "Sixteen"}


@pytest.mark.parametrize(("setup", "args", "message"), [
    (None, [], "no such file"),
    ("dir", [], "is a directory"),
    ("empty", [], "the file is empty"),
    ("latin", ["--encoding", "utf-8"], "line 3 is not valid utf-8"),
    ("nul", [], "NUL byte"),
    ("no-email", [], "the header has no email column (columns: Name, Phone)"),
    ("ok", ["--map", "shoe=Email"], "--map names the unknown field 'shoe'"),
    ("ok", ["--map", "email=Mail"], "the header has no column 'Mail'"),
    ("ok", ["--map", "email"], "--map expects FIELD=COLUMN"),
    ("ok", ["--encoding", "klingon"], "unknown encoding 'klingon'"),
    ("ok", ["--delimiter", ";;"], "--delimiter must be one character"),
    ("ok", ["--writers", "0"], "--writers must be between 1 and 8"),
    ("ok", ["--batch-size", "0"], "--batch-size must be between 1 and 100000"),
    ("two-emails", [], "more than one email column"),
])
def test_files_that_cannot_be_imported_fail_clearly_and_change_nothing(runner, db, tmp_path, setup, args, message):
    path = tmp_path / "in.csv"
    if setup == "dir":
        path.mkdir()
    elif setup == "empty":
        path.write_bytes(b"")
    elif setup == "latin":
        path.write_bytes("email,name\na@example.org,A\nb@example.org,J\u00fcrgen\n".encode("latin-1"))
    elif setup == "nul":
        path.write_bytes("email\na@example.org\n".encode("utf-16-le"))
    elif setup == "no-email":
        write(path, "Name,Phone\nAda,123\n")
    elif setup == "ok":
        write(path, "Email,Name\na@example.org,A\n")
    elif setup == "two-emails":
        write(path, "Email,E-Mail\na@example.org,b@example.org\n")
    result = run(runner, path, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr, result.stderr
    assert count(db, Supporter) == 0 and count(db, ConsentEvent) == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_file_fails_clearly(runner, tmp_path):
    path = write(tmp_path / "secret.csv", "email\na@example.org\n")
    path.chmod(0)
    result = run(runner, path)
    assert result.exit_code == 2 and "not readable" in result.stderr


def test_an_unreadable_file_fails_clearly_even_for_root(runner, db, tmp_path):
    # /proc/self/mem exists but cannot be read sequentially, for root too.
    result = run(runner, "/proc/self/mem")
    assert result.exit_code == 2 and "cannot be read" in result.stderr
    assert count(db, Supporter) == 0


@pytest.mark.parametrize(("args", "message"), [
    ([], "state the consent basis"),
    (["--consent-note", "x"], "needs both --consent-note and --consented-at"),
    (["--consented-at", "2025-01-01"], "needs both"),
    (["--consent-note", "x", "--consented-at", "2025-01-01", "--send-opt-in"], "not both"),
    (["--consent-note", "x", "--consented-at", "last summer"], "not an ISO 8601 date"),
    (["--consent-note", "x", "--consented-at", "2999-01-01"], "lies in the future"),
])
def test_an_import_needs_exactly_one_consent_basis(runner, db, tmp_path, args, message):
    f = write(tmp_path / "c.csv", "email\na@example.org\n")
    result = run(runner, f, *args, evidence=False)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert count(db, Supporter) == 0


def test_a_batch_that_fails_is_rolled_back_whole_and_a_re_run_completes_it(runner, db, tmp_path, monkeypatch):
    from supporters.import_stage import Stage

    f = write(tmp_path / "b.csv", "email\n" + "".join(f"b{i}@example.org\n" for i in range(25)))
    original = Stage.tag_rows
    calls = {"n": 0}

    def fail_in_third_batch(self, with_column):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("the database went away")  # after this batch's INSERTs ran
        return original(self, with_column)

    monkeypatch.setattr(Stage, "tag_rows", fail_in_third_batch)
    result = run(runner, f, "--batch-size", "10", "--tag", "t", "--writers", "1")
    assert result.exit_code == 1
    assert "the import stopped: the database went away" in result.stderr and "Run the same command again" in result.stderr
    assert count(db, Supporter) == 20 and count(db, ConsentEvent) == 20 and count(db, supporter_tags) == 20
    monkeypatch.setattr(Stage, "tag_rows", original)
    result = run(runner, f, "--batch-size", "10", "--tag", "t")
    assert "inserted 5" in result.stdout and "20 already known" in result.stdout
    assert count(db, Supporter) == 25 and count(db, ConsentEvent) == 25


def test_fast_email_check_never_accepts_what_email_validator_refuses():
    from email_validator import EmailNotValidError, validate_email

    from supporters.import_rows import RowRejected, check_email

    samples = ["a@example.org", "A.B+c@Sub.Example.COM", "a..b@example.org", ".a@example.org", "a.@example.org",
               "a@-example.org", "a@example-.org", "a@example.o", "a@example.123", "a@localhost", "a@x.test",
               "a@xn--nxasmq6b.com", "a@ab--cd.com", "a@" + "a" * 64 + ".com", "a" * 65 + "@example.org",
               "a@example.org.", "a b@example.org", "a@exa_mple.org", "ä@example.org", "a@bücher.de",
               "x%y@example.org", "-@example.org", "a@example.invalid", "a@example.local", "_a_@e-x.io"]
    for address in samples:
        try:
            ours = check_email(address)
        except RowRejected:
            ours = None
        try:
            theirs = validate_email(address, check_deliverability=False).normalized
        except EmailNotValidError:
            theirs = None
        assert ours == theirs, address


def test_imported_tags_reach_the_tag_index_without_rewriting_the_new_rows(runner, db, tmp_path):
    existing = make_supporter(email="known@example.org", status=SupporterStatus.ACTIVE)
    f = write(tmp_path / "tagged.csv", "email,tags\na@example.org,vip;press\nb@example.org,\n"
                                       "c@example.org,press\nknown@example.org,vip\n")
    result = run(runner, f, "--tag", "fair", "--update")
    assert result.exit_code == 0, result.output
    db.session.rollback()
    ids = dict(db.session.execute(sa.select(Tag.name, Tag.id)).all())
    linked = {}
    for email, tag_id in db.session.execute(sa.select(Supporter.email, supporter_tags.c.tag_id).join(
            supporter_tags, supporter_tags.c.supporter_id == Supporter.id)):
        linked.setdefault(email, set()).add(tag_id)
    assert linked == {"a@example.org": {ids["fair"], ids["vip"], ids["press"]}, "b@example.org": {ids["fair"]},
                      "c@example.org": {ids["fair"], ids["press"]}, "known@example.org": {ids["fair"], ids["vip"]}}
    if db.engine.dialect.name != "postgresql":
        return  # SQLite answers tag filters from the join table alone
    rows = db.session.execute(sa.text("SELECT email, tag_ids, ctid::text FROM supporters")).all()
    assert {email: set(tag_ids) for email, tag_ids, _ in rows} == linked
    assert all(tag_ids == sorted(tag_ids) for _, tag_ids, _ in rows)
    # The table was empty but for `existing` (row 1 of page 0): the three new rows were written
    # once, as rows 2-4; the tag trigger rewrote only the existing supporter, whose tags changed.
    ctids = {email: ctid for email, _, ctid in rows}
    assert sorted(ctids[e] for e in ("a@example.org", "b@example.org", "c@example.org")) == ["(0,2)", "(0,3)", "(0,4)"]
    assert ctids[existing.email] not in ("(0,1)", "(0,2)", "(0,3)", "(0,4)")


def test_the_tag_index_follows_every_change_of_the_links(db):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the tag index column and its triggers exist on PostgreSQL only")
    ann, bob = make_supporter(email="ann@example.org"), make_supporter(email="bob@example.org")
    t, u = Tag(name="t"), Tag(name="u")
    db.session.add_all([t, u])
    db.session.commit()

    def tag_ids() -> dict[str, list[int]]:
        db.session.commit()
        return dict(db.session.execute(sa.text("SELECT email, tag_ids FROM supporters")).all())

    db.session.execute(sa.text("UPDATE supporters SET tag_ids = '{999}' WHERE id = :id"), {"id": ann.id})
    db.session.execute(supporter_tags.insert().values(tag_id=t.id, supporter_id=ann.id))  # corrects the wrong value
    assert tag_ids() == {"ann@example.org": [t.id], "bob@example.org": []}
    db.session.execute(supporter_tags.update().values(supporter_id=bob.id))  # the link moves to bob
    assert tag_ids() == {"ann@example.org": [], "bob@example.org": [t.id]}
    db.session.execute(supporter_tags.update().values(tag_id=u.id))  # and becomes another tag
    assert tag_ids() == {"ann@example.org": [], "bob@example.org": [u.id]}
    db.session.execute(supporter_tags.insert().values(tag_id=t.id, supporter_id=bob.id))
    assert tag_ids() == {"ann@example.org": [], "bob@example.org": sorted([t.id, u.id])}
    db.session.execute(supporter_tags.delete().where(supporter_tags.c.tag_id == u.id))
    assert tag_ids() == {"ann@example.org": [], "bob@example.org": [t.id]}
    db.session.execute(sa.text("TRUNCATE supporter_tags"))
    assert tag_ids() == {"ann@example.org": [], "bob@example.org": []}


def test_referral_codes_are_url_safe_unguessable_and_do_not_repeat():
    import base64
    import itertools
    import re

    from supporters.confirm import is_referral_code
    from supporters.import_rows import referral_codes

    codes = list(itertools.islice(referral_codes(chunk=1000), 25_000))  # crosses many refills
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{14}", c) and is_referral_code(c) for c in codes)
    assert len(set(codes)) == len(codes)
    # After the shared 2-character prefix: 9 random bytes each, like secrets.token_urlsafe(9).
    assert {len(base64.urlsafe_b64decode(c[2:])) for c in codes} == {9}
    assert len({c[:2] for c in codes}) > 1 and len({c[2:4] for c in codes[:1000]}) > 500


def test_import_as_a_subprocess_prints_a_summary_and_no_progress_bar(db, tmp_path, subprocess_env):
    f = write(tmp_path / "p.csv", "email,name\nsub@example.org,Sub\nbad\n")
    cmd = [sys.executable, "-m", "flask", "--app", "wsgi", "import", "supporters", str(f), *EVIDENCE]
    result = subprocess.run(cmd, env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "inserted 1" in result.stdout and "rejected 1" in result.stdout
    assert "Importing" not in result.stderr
    assert count(db, Supporter) == 1
    missing = subprocess.run([*cmd[:7], str(tmp_path / "nope.csv"), *EVIDENCE], env=subprocess_env,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_import_shows_a_progress_bar_on_a_terminal(db, tmp_path, subprocess_env):
    f = write(tmp_path / "tty.csv", "email\n" + "".join(f"t{i}@example.org\n" for i in range(50)))
    code, output = run_on_terminal([sys.executable, "-m", "flask", "--app", "wsgi", "import", "supporters", str(f),
                                    *EVIDENCE, "--batch-size", "20"], subprocess_env)
    assert code == 0
    assert b"Importing" in output and b"50/50" in output
    assert count(db, Supporter) == 50
