"""Transfer files in shared storage (core.blobs): every host sees an export, an upload and a reject file.

The store tests run against both backends on both engines; the two-host tests use two applications
with separate instance folders on one database and one Redis, as two machines would.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from core.accounts import create_token, create_user
from core.blobs import CHUNK_SIZE, BlobMissing, get_store, transfer_chunks, transfer_files
from core.db import utcnow
from core.queues import make_worker
from supporters.transfer_jobs import (
    TransferJob,
    TransferKind,
    TransferStatus,
    create_job,
    expire_transfer_files,
)
from tests.factories import make_supporter

HOSTILE = "Zoë Ærøskøbing 東京 \r\n\x00 \u2028 =cmd|' /C calc'!A0\n".encode()


def use_storage(app, name: str) -> None:
    app.config["TRANSFER_STORAGE"] = name
    app.extensions.pop("transfer_store", None)


@pytest.fixture(params=["local", "database"])
def store(request, app):
    use_storage(app, request.param)
    return get_store()


def bearer(db, role: str, email: str | None = None) -> dict:
    user = create_user(email or f"{role}@example.org", "correct horse battery staple", role)
    db.session.flush()
    _token, raw = create_token(user, "test")
    db.session.commit()
    return {"Authorization": f"Bearer {raw}"}


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def read(store, key: str) -> bytes:
    return b"".join(store.chunks(key))


# --- the store ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17])
def test_a_file_comes_back_byte_for_byte_whatever_its_size_and_bytes(store, db, size):
    data = (HOSTILE * (size // len(HOSTILE) + 1))[:size]
    with store.writer("export_supporters-1.csv") as out:
        for start in range(0, size, 65_537):  # writes that straddle chunk borders
            out.write(data[start:start + 65_537])
    db.session.commit()
    assert store.exists("export_supporters-1.csv")
    assert store.size("export_supporters-1.csv") == size
    assert read(store, "export_supporters-1.csv") == data
    with store.materialize("export_supporters-1.csv") as path:
        assert path.read_bytes() == data


def test_a_writer_that_fails_leaves_the_previous_version_and_nothing_half_written(store, db):
    with store.writer("export_consents-2.csv") as out:
        out.write(b"old,version\r\n")
    with pytest.raises(RuntimeError, match="disk on fire"), store.writer("export_consents-2.csv") as out:
        out.write(b"x" * (2 * CHUNK_SIZE + 5))
        raise RuntimeError("disk on fire")
    assert read(store, "export_consents-2.csv") == b"old,version\r\n"
    with pytest.raises(ValueError), store.writer("never-finished.csv") as out:
        out.write(b"partial")
        raise ValueError("stop")
    db.session.commit()
    assert not store.exists("never-finished.csv")
    if store.name == "database":
        keys = db.session.scalars(sa.select(transfer_chunks.c.file_key).distinct()).all()
        assert keys == ["export_consents-2.csv"]


def test_a_missing_or_deleted_file_is_reported_not_served(store, db):
    with pytest.raises(BlobMissing):
        read(store, "import-nothing.csv")
    with pytest.raises(BlobMissing), store.materialize("import-nothing.csv"):
        pass
    with store.writer("import-gone.csv") as out:
        out.write(b"a" * (CHUNK_SIZE + 1))
    chunks = store.chunks("import-gone.csv")
    assert len(next(chunks)) == CHUNK_SIZE
    store.delete("import-gone.csv")
    db.session.commit()
    if store.name == "database":  # read chunk by chunk: a delete half-way is noticed, not papered over
        with pytest.raises(BlobMissing):
            next(chunks)
    assert not store.exists("import-gone.csv")
    store.delete("import-gone.csv")  # deleting twice is fine


@pytest.mark.parametrize("key", ["../secret_key", "/etc/passwd/../x", ".hidden", "a/b.csv", "x" * 201, "ä.csv",
                                 "a\x00.csv", "a\r\nb.csv", ""])
def test_names_that_could_leave_the_store_are_refused(app, key):
    use_storage(app, "database")
    store = get_store()
    if not key.startswith("/"):
        with pytest.raises(ValueError), store.writer(key):
            pass
    use_storage(app, "local")
    local = get_store()
    if not key.startswith("/"):
        with pytest.raises(ValueError):
            local.path(key)


# --- jobs through the API, on shared storage ------------------------------------------------------


@pytest.fixture
def second_host(settings, tmp_path):
    """Another machine: its own instance folder (and local disk), the same database and Redis."""
    from wsgi import create_app

    return lambda storage: create_app({**settings, "INSTANCE_PATH": str(tmp_path / "host-b"),
                                       "TRANSFER_STORAGE": storage})


def work_on(app) -> None:
    make_worker(app, ["default", "mail"]).work(burst=True)


def test_an_export_written_by_a_worker_on_another_host_downloads_through_this_one(app, client, db, second_host):
    use_storage(app, "database")
    make_supporter("zoë@example.org", name="Zoë \u2028 =Æ")
    manager = bearer(db, "manager")
    started = client.post("/api/v1/exports/supporters", headers=manager, json={"fields": ["email", "name"]})
    assert started.status_code == 202, started.json
    work_on(second_host("database"))
    done = client.get(f"/api/v1/jobs/{started.json['id']}", headers=manager).json
    assert done["status"] == "done" and done["rows"] == 1, done
    link = path_of(done["download"]["url"])
    head = client.head(link)
    assert head.status_code == 200 and head.get_data() == b""
    file = client.get(link)
    assert file.status_code == 200 and file.mimetype == "text/csv"
    assert file.headers["Cache-Control"] == "no-store"
    assert "attachment" in file.headers["Content-Disposition"]
    body = file.get_data()
    assert int(file.headers["Content-Length"]) == len(body)
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    assert rows == [["email", "name"], ["zoë@example.org", "Zoë \u2028 =Æ"]]


def test_with_host_local_storage_the_other_host_cannot_serve_the_export(app, client, db, second_host):
    """What the database storage fixes: the file stays on the worker's host."""
    use_storage(app, "local")
    make_supporter("ada@example.org")
    manager = bearer(db, "manager")
    started = client.post("/api/v1/exports/supporters", headers=manager, json={})
    work_on(second_host("local"))
    done = client.get(f"/api/v1/jobs/{started.json['id']}", headers=manager).json
    assert done["status"] == "done" and done["download"] is None


def test_an_upload_received_here_is_imported_by_a_worker_on_another_host(app, client, db, second_host):
    use_storage(app, "database")
    admin = bearer(db, "admin")
    data = "email;name\r\nzoë@example.org;Zoë 東京\r\nbroken;B\r\nb@example.org;\"B\r\nmit Zeilenumbruch\"\r\n".encode()
    started = client.post("/api/v1/imports/supporters", headers=admin, data={
        "file": (io.BytesIO(data), "list.csv"), "send_opt_in": "true"}, content_type="multipart/form-data")
    assert started.status_code == 202, started.json
    record = db.session.get(TransferJob, started.json["id"])
    upload = record.file_path
    assert get_store().exists(upload) and read(get_store(), upload) == data  # stored byte for byte
    db.session.commit()
    work_on(second_host("database"))
    db.session.expire_all()
    done = client.get(f"/api/v1/jobs/{started.json['id']}", headers=admin).json
    assert done["status"] == "done", done
    assert done["summary"]["inserted"] == 1 and done["summary"]["rejected"] == 2, done["summary"]
    rejects = client.get(path_of(done["download"]["url"]))
    assert rejects.status_code == 200 and "broken" in rejects.get_data(as_text=True)
    assert not get_store().exists(upload)  # the upload is gone once read, from the shared store too
    files = db.session.scalars(sa.select(transfer_files.c.key)).all()
    assert files == [db.session.get(TransferJob, started.json["id"]).summary["rejects_path"]]


def test_an_upload_over_the_limit_is_refused_and_leaves_nothing_stored(app, client, db):
    use_storage(app, "database")
    app.config["IMPORT_MAX_BYTES"] = CHUNK_SIZE + 10
    admin = bearer(db, "admin")
    big = b"email\r\n" + b"a@example.org\r\n" * (CHUNK_SIZE // 10)
    response = client.post("/api/v1/imports/supporters", headers=admin,
                           data={"file": (io.BytesIO(big), "big.csv"), "send_opt_in": "true"})
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert "file" in response.json["detail"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(transfer_files)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(transfer_chunks)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(TransferJob)) == 0


def test_an_erasure_deletes_the_files_in_the_database_store(app, client, db, runner):
    use_storage(app, "database")
    make_supporter("ada@example.org")
    manager = bearer(db, "manager")
    started = client.post("/api/v1/exports/supporters", headers=manager, json={})
    work_on(app)
    key = db.session.get(TransferJob, started.json["id"]).file_path
    assert get_store().exists(key)
    db.session.commit()
    assert runner.invoke(args=["supporters", "erase", "ada@example.org", "--yes"]).exit_code == 0
    db.session.rollback()
    assert not get_store().exists(key)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(transfer_chunks)) == 0


def test_files_of_jobs_finished_longer_ago_than_the_keep_time_are_deleted(store, app, db):
    old = create_job(TransferKind.EXPORT_SUPPORTERS, {"format": "csv"}, "cli")
    fresh = create_job(TransferKind.EXPORT_SUPPORTERS, {"format": "csv"}, "cli")
    running = create_job(TransferKind.EXPORT_SUPPORTERS, {"format": "csv"}, "cli")
    db.session.commit()  # a writer has a connection of its own (on SQLite it would wait for our lock)
    for record in (old, fresh, running):
        with store.writer(record.file_path) as out:
            out.write(b"id\r\n1\r\n")
    now = utcnow()
    old.status, old.finished_at = TransferStatus.DONE, now - timedelta(hours=25)
    fresh.status, fresh.finished_at = TransferStatus.DONE, now - timedelta(hours=23)
    running.status = TransferStatus.RUNNING
    db.session.commit()
    old_key = old.file_path
    assert expire_transfer_files(now) == 1
    db.session.commit()
    assert not store.exists(old_key) and old.file_path is None and old.result_key is None
    assert store.exists(fresh.file_path) and store.exists(running.file_path)
    assert expire_transfer_files(now) == 0  # nothing left to do: the row no longer names a file


def test_the_sweeper_expires_transfer_files(app, db):
    from campaigns.sweeper import sweep

    use_storage(app, "database")
    record = create_job(TransferKind.EXPORT_CONSENTS, {"format": "jsonl"}, "cli")
    db.session.commit()
    with get_store().writer(record.file_path) as out:
        out.write(b"{}\n")
    record.status, record.finished_at = TransferStatus.DONE, utcnow() - timedelta(hours=48)
    db.session.commit()
    assert sweep()["transfer_files"] == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(transfer_files)) == 0


def test_chunks_are_stored_with_lz4_or_else_uncompressed_never_with_pglz(app, db):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("column compression is PostgreSQL's")
    storage, compression = db.session.execute(sa.text(
        "SELECT attstorage, attcompression FROM pg_attribute "
        "WHERE attrelid = 'transfer_chunks'::regclass AND attname = 'data'")).one()
    assert (storage, compression) in (("x", "l"), ("e", "")), (storage, compression)


def test_a_worker_on_a_shared_database_names_what_would_stay_on_its_host(subprocess_env, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    if not subprocess_env["DATABASE_URL"].startswith("postgresql"):
        pytest.skip("one host on SQLite is what the embedded default is for: nothing to warn about")
    env = {**subprocess_env, "APP_ENV": "development", "INSTANCE_PATH": str(tmp_path / "host"),
           "TRANSFER_STORAGE": "local"}
    env.pop("SECRET_KEY", None)
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--burst", "--queues", "default"],
                            cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING (several hosts): ")]
    assert len(warnings) == 2, result.stderr
    assert "SECRET_KEY is not set" in warnings[0] and "TRANSFER_STORAGE=local" in warnings[1]
    env.update(SECRET_KEY="k" * 40, TRANSFER_STORAGE="database")
    quiet = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--burst", "--queues", "default"],
                           cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
                           timeout=120)
    assert quiet.returncode == 0 and "WARNING (several hosts)" not in quiet.stderr, quiet.stderr
