import sqlalchemy as sa

from core.accounts import AdminUser, ApiToken, AuditEvent, Role, verify_token

GOOD = "correct horse battery staple"


def create(runner, email="ops@example.org", role="admin", password=GOOD):
    return runner.invoke(args=["users", "create", email, "--role", role, "--password-stdin"], input=password + "\n")


def test_users_create_stores_an_argon2_hash_and_audits(runner, db):
    result = create(runner, "Ops@Example.org")
    assert result.exit_code == 0, result.output
    user = db.session.scalar(sa.select(AdminUser))
    assert user.email == "ops@example.org"
    assert user.role is Role.ADMIN
    assert user.password_hash.startswith("$argon2")
    assert GOOD not in user.password_hash
    assert user.check_password(GOOD) and not user.check_password("wrong password!!")
    assert db.session.scalar(sa.select(AuditEvent.action)) == "user.create"


def test_users_create_refuses_a_duplicate_case_insensitively(runner, db):
    assert create(runner).exit_code == 0
    result = create(runner, "OPS@example.org")
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AdminUser)) == 1


def test_users_create_refuses_weak_passwords_and_bad_emails(runner, db):
    for password, message in [("short", "at least 12"), ("aaaaaaaaaaaaaaa", "too easy"), ("ops-is-my-password", "must not contain")]:
        result = create(runner, password=password)
        assert result.exit_code == 1 and message in result.output, result.output
    result = create(runner, "not-an-email")
    assert result.exit_code == 1 and "email" in result.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AdminUser)) == 0


def test_users_create_refuses_an_unknown_role(runner):
    result = create(runner, role="owner")
    assert result.exit_code == 2
    assert "Invalid value for '--role'" in result.output


def test_token_is_printed_once_stored_hashed_and_verifies(runner, db):
    create(runner, role="manager")
    result = runner.invoke(args=["tokens", "create", "--user", "ops@example.org", "--name", "crm sync"])
    assert result.exit_code == 0, result.output
    raw = result.stdout.strip().splitlines()[-1]
    assert raw.startswith("spk_") and len(raw) > 50
    token = db.session.scalar(sa.select(ApiToken))
    assert raw not in (token.token_hash, token.prefix) and token.prefix in raw
    assert verify_token(raw).id == token.id
    assert verify_token(raw[:-1] + ("A" if raw[-1] != "A" else "B")) is None
    assert verify_token("spk_nothing") is None
    listing = runner.invoke(args=["tokens", "list"])
    assert token.prefix in listing.output and raw not in listing.output and "crm sync" in listing.output


def test_a_token_cannot_outrank_its_user(runner, db):
    create(runner, role="viewer")
    result = runner.invoke(args=["tokens", "create", "--user", "ops@example.org", "--role", "admin"])
    assert result.exit_code == 1
    assert "a viewer cannot hold a admin token" in result.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0


def test_revoked_tokens_and_deactivated_users_stop_verifying(runner, db):
    create(runner)
    raw1 = runner.invoke(args=["tokens", "create", "--user", "ops@example.org"]).stdout.strip().splitlines()[-1]
    raw2 = runner.invoke(args=["tokens", "create", "--user", "ops@example.org"]).stdout.strip().splitlines()[-1]
    prefix = raw1[4:16]
    assert runner.invoke(args=["tokens", "revoke", prefix]).exit_code == 0
    db.session.expire_all()
    assert verify_token(raw1) is None
    assert verify_token(raw2) is not None
    assert runner.invoke(args=["users", "deactivate", "ops@example.org"]).exit_code == 0
    db.session.expire_all()
    assert verify_token(raw2) is None


def test_tokens_for_an_unknown_user_or_token_fail_clearly(runner):
    result = runner.invoke(args=["tokens", "create", "--user", "ghost@example.org"])
    assert result.exit_code == 1 and "no user with the email ghost@example.org" in result.output
    result = runner.invoke(args=["tokens", "revoke", "abcdef123456"])
    assert result.exit_code == 1 and "no token abcdef123456" in result.output


def test_an_all_digit_prefix_is_still_a_prefix(runner, db):
    from core.accounts import find_user, revoke_token

    create(runner)
    token = ApiToken(user=find_user("ops@example.org"), name="x", prefix="123456789012", token_hash="0" * 64,
                     role=Role.ADMIN)
    db.session.add(token)
    db.session.commit()
    assert revoke_token("123456789012").id == token.id
    assert revoke_token(str(token.id)).id == token.id
