"""Imports fed what the world sends: formula cells, codecs that are not text encodings, paths."""

import io

import pytest
import sqlalchemy as sa

from supporters.models import Supporter
from supporters.transfer_jobs import TransferJob
from tests.test_export_api import bearer, work
from tests.test_import import count, rejects, run, write


def test_the_reject_file_defuses_formula_cells_like_exports_do(runner, db, tmp_path):
    path = write(tmp_path / "in.csv", "email,name\n=HYPERLINK(\"http://evil.example\"),Ada\n"
                                      "@SUM(1+1),+Bob\nb@example.org,-Carol\n")
    result = run(runner, path, "--rejects", str(tmp_path / "rejects.csv"))
    assert result.exit_code == 0, result.output
    rows = rejects(tmp_path / "rejects.csv")
    assert [row[2:] for row in rows] == [["'=HYPERLINK(\"http://evil.example\")", "Ada"], ["'@SUM(1+1)", "'+Bob"]]
    assert count(db, Supporter) == 1


@pytest.mark.parametrize("codec", ["rot13", "base64", "zlib_codec", "idna", "hex", "unicode_escape"])
def test_codecs_that_are_not_file_encodings_are_refused_before_anything_happens(runner, db, tmp_path, codec):
    path = write(tmp_path / "in.csv", "email\na@example.org\n")
    result = run(runner, path, "--encoding", codec)
    assert result.exit_code == 2, result.output
    assert "is not a text encoding for a CSV file" in result.stderr
    assert count(db, Supporter) == 0


@pytest.mark.parametrize("codec", ["rot13", "zlib_codec", "idna"])
def test_an_api_import_with_such_a_codec_is_a_422_naming_the_encoding(client, db, codec):
    admin = bearer(db, "admin")
    upload = {"file": (io.BytesIO(b"email\na@example.org\n"), "list.csv"), "send_opt_in": "true", "encoding": codec}
    answer = client.post("/api/v1/imports/supporters", headers=admin, data=upload)
    assert answer.status_code == 422, answer.json
    assert "not a text encoding" in answer.json["detail"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(TransferJob)) == 0


def test_a_failed_import_job_never_shows_where_the_upload_lies_on_the_server(app, client, db):
    admin = bearer(db, "admin")
    latin = "email,name\na@example.org,J\u00fcrgen\n".encode("latin-1")
    upload = {"file": (io.BytesIO(latin), "list.csv"), "send_opt_in": "true", "encoding": "utf-8"}
    started = client.post("/api/v1/imports/supporters", headers=admin, data=upload)
    work(app)
    done = client.get(f"/api/v1/jobs/{started.json['id']}", headers=admin).json
    assert done["status"] == "failed" and "not valid utf-8" in done["error"], done
    assert app.instance_path not in done["error"] and "transfers" not in done["error"]
    assert done["error"].startswith("the uploaded file")
