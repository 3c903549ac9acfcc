"""Secrets are shown once and never stored for replay; sign-out and a password change end sessions."""

import pytest
import sqlalchemy as sa

from api.models import IdempotencyKey
from core.accounts import AdminUser
from tests.api_support import ApiCaller, assert_problem

PASSWORD = "correct horse battery staple"


@pytest.fixture
def api(app, db):
    return ApiCaller(app, db)


def test_a_new_tokens_secret_never_reaches_the_idempotency_table_and_a_replay_says_it_was_shown_once(api, db):
    body = {"name": "ci"}
    first = api.post("/tokens", body, headers={"Idempotency-Key": "token-1"})
    assert first.status_code == 201
    secret = first.get_json()["secret"]
    assert secret.startswith("spk_")
    db.session.expire_all()
    stored = db.session.scalars(sa.select(IdempotencyKey)).all()
    assert len(stored) == 1 and stored[0].secret_withheld
    assert secret not in (stored[0].response_body or "") and secret[-24:] not in stored[0].response_body
    replay = api.post("/tokens", body, headers={"Idempotency-Key": "token-1"})
    problem = assert_problem(replay, 410)
    assert problem["type"] == "/api/v1/problems/secret-shown-once"
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert secret not in replay.get_data(as_text=True)
    assert problem["created"]["id"] == first.get_json()["id"]
    assert problem["created"]["prefix"] == first.get_json()["prefix"]


def test_other_responses_are_still_replayed_whole(api):
    first = api.post("/tags", {"name": "kept"}, headers={"Idempotency-Key": "tag-1"})
    replay = api.post("/tags", {"name": "kept"}, headers={"Idempotency-Key": "tag-1"})
    assert first.status_code == replay.status_code == 201
    assert replay.get_json() == first.get_json() and replay.headers["Idempotent-Replayed"] == "true"


@pytest.fixture
def browsers(settings, api):
    """Clients on an app whose context is not held open (each request gets its own `g`)."""
    from wsgi import create_app

    api.token("manager")
    other = create_app(settings)
    yield other.test_client
    with other.app_context():
        from core.extensions import db

        db.session.remove()
        db.engine.dispose()


def _signed_in(browsers):
    browser = browsers()
    assert browser.post("/api/v1/session", json={"email": "manager@example.com", "password": PASSWORD}
                        ).status_code == 200
    assert browser.get("/api/v1/session").status_code == 200
    return browser


def _copy_cookies(source, target):
    for cookie in source._cookies.values():
        target.set_cookie(cookie.key, cookie.value, domain=cookie.domain, path=cookie.path)


def test_signing_out_ends_the_session_server_side_so_a_copied_cookie_no_longer_works(browsers):
    browser = _signed_in(browsers)
    stolen = browsers()
    _copy_cookies(browser, stolen)
    assert stolen.get("/api/v1/session").status_code == 200
    assert browser.delete("/api/v1/session").status_code == 204
    assert_problem(browser.get("/api/v1/session"), 401)
    assert_problem(stolen.get("/api/v1/session"), 401)
    # Signing in again works, with a new session.
    assert _signed_in(browsers).get("/api/v1/tags").status_code == 200


def test_a_password_change_ends_existing_sessions(browsers, app, db):
    browser = _signed_in(browsers)
    user = db.session.scalar(sa.select(AdminUser).where(AdminUser.email == "manager@example.com"))
    user.set_password("another long passphrase 2")
    db.session.commit()
    assert_problem(browser.get("/api/v1/session"), 401)


def test_flask_users_set_password_ends_existing_sessions_and_refuses_a_weak_password(browsers, runner, db):
    browser = _signed_in(browsers)
    weak = runner.invoke(args=["users", "set-password", "manager@example.com", "--password-stdin"], input="short\n")
    assert weak.exit_code == 1 and "password" in weak.output
    assert browser.get("/api/v1/session").status_code == 200  # nothing changed
    result = runner.invoke(args=["users", "set-password", "manager@example.com", "--password-stdin"],
                           input="another long passphrase 2\n")
    assert result.exit_code == 0, result.output
    assert_problem(browser.get("/api/v1/session"), 401)
    signed_in = browsers().post("/api/v1/session", json={"email": "manager@example.com",
                                                         "password": "another long passphrase 2"})
    assert signed_in.status_code == 200
    unknown = runner.invoke(args=["users", "set-password", "nobody@example.com", "--password-stdin"],
                            input="another long passphrase 2\n")
    assert unknown.exit_code == 1


def test_a_session_id_from_before_versions_or_forged_loads_nobody(app, db, api):
    from core.accounts import _load_user

    api.token("manager")
    user = api.users["manager"]
    assert _load_user(user.get_id()) is user
    for forged in (str(user.id), f"{user.id}:0", f"{user.id}:x", ":1", f"{user.id}:{user.session_version + 1}"):
        assert _load_user(forged) is None
