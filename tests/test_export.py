import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from supporters import models
from supporters.models import ConsentAction, ConsentEvent, Supporter, SupporterStatus, supporter_tags
from supporters.privacy import erase_supporter
from tests.factories import make_supporter, make_tag
from tests.terminal import run_on_terminal


def rows_of(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def export(runner, *args):
    result = runner.invoke(args=["export", "supporters", *args])
    return result


@pytest.fixture
def people(db):
    press = make_tag("press", public=True)
    ada = make_supporter("ada@example.org", name="Ada Lovelace", language="en", country="GB")
    jo = make_supporter("jo@example.org", name="Jürgen Ölmann", language="de", country="DE", kind="supplier")
    pending = make_supporter("pen@example.org", name="Pending Person", status="pending")
    gone = make_supporter("gone@example.org", name="Gone Person")
    db.session.execute(supporter_tags.insert(), [{"tag_id": press.id, "supporter_id": ada.id},
                                                 {"tag_id": press.id, "supporter_id": jo.id}])
    erase_supporter(gone)
    db.session.commit()
    return {"ada": ada, "jo": jo, "pending": pending, "gone": gone}


def test_export_writes_utf8_csv_with_a_header_and_leaves_out_the_erased(runner, people):
    result = export(runner)
    assert result.exit_code == 0, result.output
    rows = rows_of(result.stdout)
    assert list(rows[0]) == ["id", "email", "name", "kind", "language", "country", "status", "tags", "created_at"]
    assert [r["email"] for r in rows] == ["ada@example.org", "jo@example.org", "pen@example.org"]
    jo = rows[1]
    assert jo["name"] == "Jürgen Ölmann" and jo["kind"] == "supplier" and jo["tags"] == "press"
    assert jo["created_at"].endswith("Z") and datetime.fromisoformat(jo["created_at"])
    assert "Exported 3 supporters." in result.stderr


def test_export_defuses_every_formula_start_in_csv_but_not_in_jsonl(runner, db):
    dangerous = ["=HYPERLINK(\"http://evil\")", "+1+2", "-3", "@SUM(A1)", "\tTab", "\rReturn", "Plain -x"]
    for i, name in enumerate(dangerous):
        make_supporter(f"f{i}@example.org", name=name)
    make_supporter("=cmd@example.org", name="ok")
    result = export(runner, "--fields", "email,name")
    assert result.exit_code == 0, result.output
    names = [r["name"] for r in rows_of(result.stdout)]
    assert names == ["'" + n for n in dangerous[:-1]] + ["Plain -x", "ok"]
    assert rows_of(result.stdout)[-1]["email"] == "'=cmd@example.org"
    jsonl = export(runner, "--format", "jsonl", "--fields", "name")
    assert [json.loads(line)["name"] for line in jsonl.stdout.splitlines()] == [*dangerous, "ok"]


def test_export_filters_by_flags_and_by_an_inline_filter(runner, people):
    def emails(*args):
        result = export(runner, "--fields", "email", *args)
        assert result.exit_code == 0, result.output
        return [r["email"] for r in rows_of(result.stdout)]

    assert emails("--status", "pending") == ["pen@example.org"]
    assert emails("--kind", "supplier") == ["jo@example.org"]
    assert emails("--tag", "press") == ["ada@example.org", "jo@example.org"]
    assert emails("--language", "de") == ["jo@example.org"]
    assert emails("--country", "gb") == ["ada@example.org"]
    assert emails("--tag", "press", "--language", "en") == ["ada@example.org"]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert emails("--joined-after", tomorrow) == []
    assert len(emails("--joined-before", tomorrow)) == 3
    definition = {"any": [{"field": "kind", "op": "eq", "value": "supplier"},
                          {"field": "status", "op": "eq", "value": "pending"}]}
    assert emails("--filter", json.dumps(definition)) == ["jo@example.org", "pen@example.org"]
    # Even a filter that asks for them never brings the erased back.
    assert emails("--status", "erased") == []


def test_export_refuses_bad_filters_fields_and_segments_clearly(runner, people, tmp_path):
    cases = [
        (["--filter", "{not json"], "--filter is not valid JSON"),
        (["--filter", '{"field": "shoe_size", "op": "eq", "value": 1}'], "filter.field: unknown field 'shoe_size'"),
        (["--filter", '{"all": [{"field": "kind", "op": "eq", "value": "alien"}]}'], "filter.all[0].value"),
        (["--tag", "nonexistent"], "unknown tag 'nonexistent'"),
        (["--joined-after", "yesterday"], "not an ISO 8601 date"),
        (["--fields", "email,password"], "unknown field 'password'"),
        (["--filter", f"@{tmp_path / 'missing.json'}"], "cannot read the file"),
        (["--output", str(tmp_path)], "is a directory"),
    ]
    for args, message in cases:
        result = export(runner, *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
        assert result.stdout == ""


def test_export_by_saved_segment_exports_its_members_and_combines_with_flags(runner, people, db):
    segment = models.Segment(name="Germans", definition={"field": "language", "op": "eq", "value": "de"})
    db.session.add(segment)
    db.session.commit()
    result = export(runner, "--segment", str(segment.id), "--fields", "email")
    assert result.exit_code == 0, result.stderr
    assert [r["email"] for r in rows_of(result.stdout)] == ["jo@example.org"]
    both = export(runner, "--segment", str(segment.id), "--kind", "fan", "--fields", "email")
    assert both.exit_code == 0 and rows_of(both.stdout) == []


def test_export_by_an_unknown_segment_fails_clearly_and_writes_nothing(runner, people):
    result = export(runner, "--segment", "999")
    assert result.exit_code == 2
    assert "no segment 999" in result.stderr
    assert result.stdout == ""


def test_export_to_a_file_and_as_json_lines(runner, people, tmp_path):
    target = tmp_path / "out.jsonl"
    result = export(runner, "--format", "jsonl", "--fields", "id,email,tags,status,created_at", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["email"] for r in records] == ["ada@example.org", "jo@example.org", "pen@example.org"]
    assert records[0]["tags"] == ["press"] and records[2]["tags"] == []
    assert records[0]["status"] == "active" and records[0]["created_at"].endswith("Z")
    assert not list(tmp_path.glob(".*partial"))


def test_export_streams_many_rows_in_batches(runner, db):
    now = datetime.now(UTC)
    db.session.execute(sa.insert(Supporter), [
        {"email": f"m{i}@example.org", "email_normalized": f"m{i}@example.org", "name": f"-{i}",
         "status": SupporterStatus.ACTIVE, "created_at": now, "updated_at": now} for i in range(12_345)])
    db.session.commit()
    result = export(runner, "--fields", "id,name", "--quiet")
    assert result.exit_code == 0, result.output
    rows = rows_of(result.stdout)
    assert len(rows) == 12_345 and rows[-1]["name"] == "'-12344"
    assert result.stderr == ""


def test_export_consents_gives_an_auditor_the_ledger_without_erased_personal_data(runner, db, people):
    db.session.add(ConsentEvent(supporter_id=people["ada"].id, purpose="campaigns", action=ConsentAction.WITHDRAWN,
                                method="one_click", ip="203.0.113.5"))
    db.session.commit()
    result = runner.invoke(args=["export", "consents"])
    assert result.exit_code == 0, result.output
    rows = rows_of(result.stdout)
    assert len(rows) == 5
    assert list(rows[0])[:5] == ["id", "supporter_id", "email", "purpose", "action"]
    withdrawn = [r for r in rows if r["action"] == "withdrawn"]
    assert withdrawn[0]["email"] == "ada@example.org" and withdrawn[0]["ip"] == "203.0.113.5"
    erased = [r for r in rows if int(r["supporter_id"]) == people["gone"].id]
    assert erased and erased[0]["email"] == "" and erased[0]["ip"] == ""
    later = runner.invoke(args=["export", "consents", "--since", "2999-01-01", "--format", "jsonl"])
    assert later.exit_code == 2 and "in the future" in later.stderr
    since = runner.invoke(args=["export", "consents", "--since", "2000-01-01", "--format", "jsonl"])
    assert since.exit_code == 0 and len(since.stdout.splitlines()) == 5


def test_export_as_a_subprocess_pipes_clean_csv_without_a_progress_bar(people, subprocess_env):
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "export", "supporters", "--tag", "press"],
                            env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [r["email"] for r in rows_of(result.stdout)] == ["ada@example.org", "jo@example.org"]
    assert result.stderr.strip() == "Exported 2 supporters."
    bad = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "export", "supporters", "--kind", "alien"],
                         env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "alien" in bad.stderr


def test_export_shows_a_progress_bar_on_a_terminal(people, subprocess_env, tmp_path):
    target = tmp_path / "out.csv"
    code, output = run_on_terminal([sys.executable, "-m", "flask", "--app", "wsgi", "export", "supporters",
                                    "-o", str(target)], subprocess_env)
    assert code == 0
    assert b"Exporting supporters" in output and b"3/3" in output
    assert len(rows_of(target.read_text())) == 3


def test_export_stops_quietly_when_the_reader_stops_early(db, subprocess_env):
    now = datetime.now(UTC)
    db.session.execute(sa.insert(Supporter), [
        {"email": f"h{i}@example.org", "email_normalized": f"h{i}@example.org", "name": "x" * 100,
         "status": SupporterStatus.ACTIVE, "created_at": now, "updated_at": now} for i in range(20_000)])
    db.session.commit()
    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "export", "supporters", "--quiet"],
                            env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"id,email")
    proc.stdout.close()  # like `| head -1`
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 141
    assert b"Traceback" not in err and b"BrokenPipe" not in err
