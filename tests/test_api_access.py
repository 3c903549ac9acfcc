"""Who may do what: every endpoint × role, bad and revoked tokens, sessions, CSRF, rate limits."""

import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa

from core.accounts import ApiToken, create_token, create_user
from core.db import utcnow
from tests.api_support import ApiCaller, assert_problem

# (method, path, minimum role); {id} is replaced by an id that exists or not: the role check comes first.
ENDPOINTS = [
    ("GET", "/campaigns/1/actions", "viewer"),
    ("GET", "/campaigns/1/results", "viewer"),
    ("GET", "/campaigns/1/survey/answers", "viewer"),
    ("GET", "/campaigns/1/survey/follow-ups", "manager"),
    ("GET", "/campaigns/1/survey/export", "manager"),
    ("POST", "/campaigns/1/answer", "manager"),
    ("GET", "/supporters", "viewer"),
    ("POST", "/supporters", "manager"),
    ("GET", "/supporters/1", "viewer"),
    ("PATCH", "/supporters/1", "manager"),
    ("DELETE", "/supporters/1", "manager"),
    ("GET", "/supporters/1/consents", "viewer"),
    ("GET", "/supporters/1/export", "manager"),
    ("POST", "/supporters/tagging", "manager"),
    ("GET", "/tags", "viewer"),
    ("POST", "/tags", "manager"),
    ("GET", "/tags/1", "viewer"),
    ("PATCH", "/tags/1", "manager"),
    ("DELETE", "/tags/1", "manager"),
    ("GET", "/webhooks/event-types", "admin"),
    ("GET", "/webhooks/endpoints", "admin"),
    ("POST", "/webhooks/endpoints", "admin"),
    ("GET", "/webhooks/endpoints/1", "admin"),
    ("PATCH", "/webhooks/endpoints/1", "admin"),
    ("DELETE", "/webhooks/endpoints/1", "admin"),
    ("POST", "/webhooks/endpoints/1/rotate-secret", "admin"),
    ("GET", "/webhooks/endpoints/1/attempts", "admin"),
    ("POST", "/webhooks/endpoints/1/replay", "admin"),
    ("POST", "/webhooks/endpoints/1/test", "admin"),
    ("GET", "/segments", "viewer"),
    ("POST", "/segments", "manager"),
    ("GET", "/segments/1", "viewer"),
    ("PATCH", "/segments/1", "manager"),
    ("DELETE", "/segments/1", "manager"),
    ("GET", "/segments/1/count", "viewer"),
    ("GET", "/segments/1/preview", "viewer"),
    ("POST", "/segments/count", "viewer"),
    ("POST", "/segments/preview", "viewer"),
    ("GET", "/users", "admin"),
    ("POST", "/users", "admin"),
    ("GET", "/users/1", "admin"),
    ("POST", "/users/1/deactivate", "admin"),
    ("GET", "/tokens", "admin"),
    ("POST", "/tokens", "admin"),
    ("DELETE", "/tokens/999", "admin"),
    ("GET", "/audit", "admin"),
    ("GET", "/session", "viewer"),
    ("GET", "/settings", "viewer"),
    ("PUT", "/settings", "admin"),
]
RANK = {"viewer": 1, "manager": 2, "admin": 3}


@pytest.fixture
def api(app, db):
    return ApiCaller(app, db)


@pytest.mark.parametrize("method, path, needed", ENDPOINTS)
@pytest.mark.parametrize("role", ["viewer", "manager", "admin"])
def test_each_role_is_refused_what_it_may_not_do(api, db, method, path, needed, role):
    response = api.call(method, path, role, json={})
    if RANK[role] < RANK[needed]:
        assert_problem(response, 403)
    else:
        assert response.status_code not in (401, 403), (response.status_code, response.get_json())


@pytest.mark.parametrize("method, path, needed", ENDPOINTS)
def test_every_endpoint_needs_authentication(api, method, path, needed):
    response = api.call(method, path, None, json={})
    body = assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert body["detail"]


def test_every_api_route_is_in_the_role_table_or_public(app):
    public = {"/api/v1/openapi.json", "/api/v1/docs"}
    listed = {(m, "/api/v1" + p.replace("/1", "/<id>").replace("/999", "/<id>")) for m, p, _ in ENDPOINTS}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api.") or rule.rule in public:
            continue
        if app.view_functions[rule.endpoint].__module__ in ("api.campaigns", "api.jobs", "api.charts", "api.dialog",
                                                                 "api.dialog_posts"):
            continue  # their module keeps its own role table
        path = rule.rule
        for _arg in rule.arguments:
            path = path.replace(path[path.index("<"):path.index(">") + 1], "<id>")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if (method, path) in {("POST", "/api/v1/session"), ("DELETE", "/api/v1/session")}:
                continue
            assert (method, path) in listed, f"{method} {path} is missing from the role table"


def test_unknown_malformed_revoked_and_expired_tokens_are_refused(api, db):
    secret = api.token("admin")
    assert api.client.get("/api/v1/tags", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    for header in ("Bearer spk_000000000000_nope", "Bearer", "Basic abc", "Bearer " + "x" * 500, secret):
        assert_problem(api.client.get("/api/v1/tags", headers={"Authorization": header}), 401)
    token = db.session.scalar(sa.select(ApiToken))
    token.revoked_at = utcnow()
    db.session.commit()
    assert_problem(api.client.get("/api/v1/tags", headers={"Authorization": f"Bearer {secret}"}), 401)
    user = create_user("late@example.com", "correct horse battery staple", "admin")
    db.session.flush()
    _t, expired = create_token(user, "old", expires_at=utcnow() - timedelta(seconds=1))
    db.session.commit()
    assert_problem(api.client.get("/api/v1/tags", headers={"Authorization": f"Bearer {expired}"}), 401)


def test_a_token_never_holds_more_than_its_users_current_role(api, db):
    secret = api.token("admin")
    api.users["admin"].role = "viewer"
    db.session.commit()
    assert_problem(api.client.post("/api/v1/tags", json={"name": "x"},
                                   headers={"Authorization": f"Bearer {secret}"}), 403)


def test_tokens_never_appear_in_logs(api, caplog):
    secret = api.token("manager")
    with caplog.at_level(logging.DEBUG):
        api.get("/supporters", role="manager")
        api.client.get("/api/v1/supporters", headers={"Authorization": f"Bearer {secret}x"})
        api.post("/tags", {"name": 5}, role="manager")
    assert secret not in caplog.text and secret[:20] not in caplog.text


@pytest.fixture
def browsers(settings, api):
    """Test clients on an app whose context is not held open, so each request gets its own `g`
    (Flask-Login and Flask-WTF cache the user and the CSRF token there)."""
    from wsgi import create_app

    api.token("manager"), api.token("admin")
    other = create_app(settings)
    yield other.test_client
    with other.app_context():
        from core.extensions import db

        db.session.remove()
        db.engine.dispose()


def _sign_in(client, email, password="correct horse battery staple"):
    return client.post("/api/v1/session", json={"email": email, "password": password})


def test_a_manager_signs_in_with_a_session_and_writes_with_the_csrf_header(browsers):
    browser = browsers()
    assert_problem(_sign_in(browser, "manager@example.com", "wrong password!!"), 401)
    assert_problem(_sign_in(browser, "nobody@example.com"), 401)
    r = _sign_in(browser, "MANAGER@example.com")
    assert r.status_code == 200 and r.get_json()["role"] == "manager"
    csrf = r.get_json()["csrf_token"]
    assert browser.get("/api/v1/tags").status_code == 200
    assert_problem(browser.post("/api/v1/tags", json={"name": "a"}), 403)
    assert_problem(browser.post("/api/v1/tags", json={"name": "a"}, headers={"X-CSRF-Token": "forged"}), 403)
    assert browser.post("/api/v1/tags", json={"name": "a"}, headers={"X-CSRF-Token": csrf}).status_code == 201
    assert browser.delete("/api/v1/session").status_code == 204
    assert_problem(browser.get("/api/v1/tags"), 401)


def test_another_managers_csrf_token_does_not_work_cross_site(browsers):
    alice, mallory = browsers(), browsers()
    _sign_in(alice, "manager@example.com")
    mallory_token = _sign_in(mallory, "admin@example.com").get_json()["csrf_token"]
    # A page elsewhere makes Alice's browser send her cookie with a token it knows: refused.
    assert_problem(alice.post("/api/v1/tags", json={"name": "evil"}, headers={"X-CSRF-Token": mallory_token}), 403)
    # A cross-site HTML form cannot send JSON: the body type alone is refused before anything runs.
    assert_problem(mallory.post("/api/v1/tags", data="name=evil", content_type="text/plain",
                                headers={"X-CSRF-Token": mallory_token}), 415)


def test_a_deactivated_users_session_and_tokens_stop_working(api, db):
    secret = api.token("manager")
    api.token("admin")
    manager_id = api.users["manager"].id
    assert api.post(f"/users/{manager_id}/deactivate").get_json()["active"] is False
    assert_problem(api.client.get("/api/v1/tags", headers={"Authorization": f"Bearer {secret}"}), 401)
    assert_problem(api.post(f"/users/{api.users['admin'].id}/deactivate"), 409)


def test_rate_limit_is_per_token_with_retry_after(api):
    api.app.config["API_RATE_LIMIT"] = "3/minute"
    for _ in range(3):
        assert api.get("/tags", role="viewer").status_code == 200
    r = api.get("/tags", role="viewer")
    assert_problem(r, 429)
    assert int(r.headers["Retry-After"]) > 0
    assert api.get("/tags", role="manager").status_code == 200  # another token has its own budget


# Objects: who may read which job (by GET /jobs/{id}); "own" is the user who started it.
JOB_ACCESS = [
    # (job kind, started by, reader, visible)
    ("export_supporters", "manager", "manager", True),
    ("export_supporters", "manager", "other_manager", False),
    ("export_supporters", "manager", "admin", True),
    ("export_supporters", "manager", "viewer", False),
    ("export_consents", "admin", "manager", False),
    ("export_consents", None, "manager", False),  # started from the CLI
    ("export_consents", None, "admin", True),
    ("import_supporters", "admin", "admin", True),
    ("import_supporters", "admin", "other_admin", True),
    ("import_supporters", "admin", "manager", False),
    ("import_supporters", "manager", "manager", False),  # a demoted admin's import stays admin-only
]


@pytest.mark.parametrize("kind, starter, reader, visible", JOB_ACCESS)
def test_a_job_is_visible_to_its_starter_and_to_admins_and_an_import_never_to_a_manager(api, db, kind, starter,
                                                                                         reader, visible):
    from supporters.transfer_jobs import TransferKind, create_job

    roles = {"manager": "manager", "other_manager": "manager", "admin": "admin", "other_admin": "admin",
             "viewer": "viewer"}
    secrets = {}
    for name, role in roles.items():
        user = create_user(f"{name}@example.org", "correct horse battery staple", role)
        db.session.flush()
        secrets[name] = (user, create_token(user, name)[1])
    db.session.commit()
    starter_id = secrets[starter][0].id if starter else None
    record = create_job(TransferKind(kind), {"format": "csv"}, starter, requested_by_user_id=starter_id)
    db.session.commit()
    r = api.client.get(f"/api/v1/jobs/{record.id}", headers={"Authorization": f"Bearer {secrets[reader][1]}"})
    if reader == "viewer":
        assert_problem(r, 403)
    elif visible:
        assert r.status_code == 200 and r.get_json()["id"] == record.id
    else:
        assert_problem(r, 404)


def test_a_manager_cannot_read_an_admins_import_nor_download_its_rejects(api, db, tmp_path):
    from core.blobs import get_store
    from supporters.transfer_jobs import TransferKind, TransferStatus, create_job

    admin_secret, manager_secret = api.token("admin"), api.token("manager")
    rejects = tmp_path / "rejects.csv"
    rejects.write_text("email,reason\nada@example.org,bad\n")
    get_store().put_file("import-test.rejects.csv", rejects)
    record = create_job(TransferKind.IMPORT_SUPPORTERS, {}, "admin", file_path="import-test.csv",
                        requested_by_user_id=api.users["admin"].id)
    record.status, record.summary = TransferStatus.DONE, {"rejects_path": "import-test.rejects.csv"}
    db.session.commit()
    assert_problem(api.client.get(f"/api/v1/jobs/{record.id}", headers={"Authorization": f"Bearer {manager_secret}"}),
                   404)
    seen = api.client.get(f"/api/v1/jobs/{record.id}", headers={"Authorization": f"Bearer {admin_secret}"})
    assert seen.status_code == 200 and seen.get_json()["download"]["url"]
