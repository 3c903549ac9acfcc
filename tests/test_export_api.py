import csv
import io
import json
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from core.accounts import AuditEvent, create_token, create_user
from core.blobs import get_store
from core.queues import get_queue, make_worker
from supporters.models import ConsentEvent, Supporter
from supporters.transfer_jobs import TransferJob
from tests.factories import make_supporter, make_tag


def bearer(db, role="manager", email=None):
    user = create_user(email or f"{role}@example.org", "correct horse battery staple", role)
    db.session.flush()  # defaults (active) apply on flush
    _token, raw = create_token(user, "test")
    db.session.commit()
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def manager(db):
    return bearer(db, "manager")


def work(app):
    make_worker(app, ["default", "mail"]).work(burst=True)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_an_export_job_runs_in_a_worker_and_its_file_downloads_by_an_expiring_link(app, client, db, manager):
    make_tag("press")
    make_supporter("ada@example.org", name="=Ada")
    make_supporter("bob@example.org", name="Bob", kind="supplier")
    started = client.post("/api/v1/exports/supporters", headers=manager,
                          json={"fields": ["email", "name"], "kind": ["fan"]})
    assert started.status_code == 202, started.json
    job_id = started.json["id"]
    assert started.headers["Location"].endswith(f"/api/v1/jobs/{job_id}")
    assert started.json["status"] == "queued" and started.json["download"] is None
    assert get_queue("default").count == 1
    work(app)
    done = client.get(f"/api/v1/jobs/{job_id}", headers=manager)
    assert done.status_code == 200
    assert done.json["status"] == "done" and done.json["rows"] == 1
    link = done.json["download"]["url"]
    file = client.get(path_of(link))  # no bearer token: the link is the authorisation
    assert file.status_code == 200 and file.mimetype == "text/csv"
    assert file.headers["Cache-Control"] == "no-store"
    assert list(csv.reader(io.StringIO(file.get_data(as_text=True), newline=""))) == [["email", "name"],
                                                                                      ["ada@example.org", "'=Ada"]]
    assert db.session.scalar(sa.select(AuditEvent.action).where(AuditEvent.object_type == "transfer_job")) \
        == "transfer.export"
    app.config["TRANSFER_LINK_MAX_AGE"] = -1  # every link is now older than allowed
    assert client.get(path_of(link)).status_code == 410
    app.config["TRANSFER_LINK_MAX_AGE"] = 3600
    assert client.get(path_of(link)[:-3] + "xyz").status_code == 403
    other = client.get(path_of(link).replace(f"/jobs/{job_id}/", f"/jobs/{job_id + 1}/"))
    assert other.status_code == 403


def test_a_consent_ledger_export_job_as_json_lines(app, client, db, manager):
    make_supporter("ada@example.org")
    started = client.post("/api/v1/exports/consents", headers=manager, json={"format": "jsonl"})
    assert started.status_code == 202
    work(app)
    done = client.get(f"/api/v1/jobs/{started.json['id']}", headers=manager).json
    assert done["status"] == "done" and done["rows"] == 1
    body = client.get(path_of(done["download"]["url"]))
    assert body.mimetype == "application/x-ndjson"
    assert json.loads(body.get_data(as_text=True).splitlines()[0])["email"] == "ada@example.org"


def test_bad_export_requests_are_refused_before_any_job_exists(client, db, manager):
    cases = [
        ({"filter": {"field": "shoe", "op": "eq", "value": 1}}, "filter.field"),
        ({"fields": ["email", "password"]}, "fields"),
        ({"format": "xlsx"}, "format"),
        ({"kind": ["alien"]}, "kind.0"),
        ({"tags": ["nope"]}, "unknown tag"),
    ]
    for body, where in cases:
        response = client.post("/api/v1/exports/supporters", headers=manager, json=body)
        assert response.status_code == 422, (body, response.json)
        assert response.mimetype == "application/problem+json"
        assert where in json.dumps(response.json), (body, response.json)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(TransferJob)) == 0


def test_jobs_need_authentication_and_the_right_role(client, db):
    from flask import g

    # The test app context outlives requests, and with it `g`: forget the caller between requests.
    assert client.post("/api/v1/exports/supporters", json={}).status_code == 401
    g.pop("principal", None)
    viewer = bearer(db, "viewer")
    assert client.post("/api/v1/exports/supporters", headers=viewer, json={}).status_code == 403
    g.pop("principal", None)
    manager = bearer(db, "manager")
    upload = {"file": (io.BytesIO(b"email\na@example.org\n"), "list.csv"), "send_opt_in": "true"}
    assert client.post("/api/v1/imports/supporters", headers=manager, data=upload).status_code == 403
    assert client.get("/api/v1/jobs/999", headers=manager).status_code == 404
    assert client.get("/api/v1/jobs/1/download?token=nonsense").status_code == 403


def test_an_import_job_imports_the_upload_and_offers_its_reject_file(app, client, db):
    admin = bearer(db, "admin")
    upload = {"file": (io.BytesIO(b"email;name\na@example.org;A\nbroken;B\nb@example.org;B\n"), "list.csv"),
              "consent_note": "Opted in at checkout", "consented_at": "2025-05-01", "tag": ["shop", "vip"]}
    started = client.post("/api/v1/imports/supporters", headers=admin, data=upload,
                          content_type="multipart/form-data")
    assert started.status_code == 202, started.json
    work(app)
    done = client.get(f"/api/v1/jobs/{started.json['id']}", headers=admin).json
    assert done["status"] == "done", done
    assert done["summary"]["inserted"] == 2 and done["summary"]["rejected"] == 1
    assert done["summary"]["has_rejects"] is True and "rejects_path" not in done["summary"]
    rejects = client.get(path_of(done["download"]["url"])).get_data(as_text=True)
    assert "broken" in rejects and "invalid email" in rejects
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Supporter)) == 2
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ConsentEvent)) == 2


def test_bad_import_requests_are_refused_with_the_field(client, db):
    admin = bearer(db, "admin")
    no_file = client.post("/api/v1/imports/supporters", headers=admin, data={"send_opt_in": "true"})
    assert no_file.status_code == 422 and "file" in no_file.json["detail"]
    upload = {"file": (io.BytesIO(b"email\na@example.org\n"), "list.csv")}
    no_basis = client.post("/api/v1/imports/supporters", headers=admin, data=upload)
    assert no_basis.status_code == 422 and "consent basis" in no_basis.json["detail"]
    upload = {"file": (io.BytesIO(b"email\na@example.org\n"), "list.csv"), "send_opt_in": "true",
              "map": "shoe=email"}
    bad_map = client.post("/api/v1/imports/supporters", headers=admin, data=upload)
    assert bad_map.status_code == 422 and "unknown field 'shoe'" in bad_map.json["detail"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(TransferJob)) == 0


def test_an_import_job_with_a_file_that_cannot_be_imported_fails_with_the_reason(app, client, db):
    admin = bearer(db, "admin")
    upload = {"file": (io.BytesIO(b"Name,Phone\nAda,1\n"), "list.csv"), "send_opt_in": "true"}
    started = client.post("/api/v1/imports/supporters", headers=admin, data=upload)
    work(app)
    done = client.get(f"/api/v1/jobs/{started.json['id']}", headers=admin).json
    assert done["status"] == "failed" and "no email column" in done["error"]
    assert done["download"] is None


def test_an_erasure_deletes_finished_export_files_and_upload_files_do_not_outlive_their_import(app, client, db,
                                                                                                manager, runner):
    make_supporter("ada@example.org", name="Ada Lovelace")
    from flask import g

    started = client.post("/api/v1/exports/supporters", headers=manager, json={})
    g.pop("principal", None)  # the test app context outlives requests, and with it `g`
    admin = bearer(db, "admin")
    upload = {"file": (io.BytesIO(b"email\nbob@example.org\nbroken\n"), "list.csv"), "send_opt_in": "true"}
    imported = client.post("/api/v1/imports/supporters", headers=admin, data=upload)
    assert imported.status_code == 202, imported.json
    work(app)
    export_job = db.session.get(TransferJob, started.json["id"])
    import_job = db.session.get(TransferJob, imported.json["id"])
    store = get_store()
    assert b"ada@example.org" in b"".join(store.chunks(export_job.file_path))
    assert not store.exists(import_job.file_path)  # the upload, read and gone
    rejects = import_job.summary["rejects_path"]
    assert store.exists(rejects)
    assert runner.invoke(args=["supporters", "erase", "ada@example.org", "--yes"]).exit_code == 0
    assert not store.exists(export_job.file_path) and not store.exists(rejects)
    g.pop("principal", None)
    assert client.get(f"/api/v1/jobs/{export_job.id}", headers=manager).json["download"] is None
