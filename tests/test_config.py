import pytest

import config
from config import ConfigError


def load(**env):
    return config.load(environ={"APP_ENV": "testing", "INSTANCE_PATH": "/tmp/sp-config-test", **env})


def test_defaults_to_embedded_sqlite_and_redis_under_instance():
    settings = load()
    assert settings["SQLALCHEMY_DATABASE_URI"] == "sqlite:////tmp/sp-config-test/supporters.db"
    assert settings["REDIS_URL"] is None
    assert settings["SMTP"] is None
    assert settings["OUTBOX_DIR"] == "/tmp/sp-config-test/outbox"


@pytest.mark.parametrize("url, expected", [
    ("postgresql://u:p@db/app", "postgresql+psycopg://u:p@db/app"),
    ("postgres://u:p@db/app", "postgresql+psycopg://u:p@db/app"),
    ("postgresql+psycopg://u@db:5433/app", "postgresql+psycopg://u@db:5433/app"),
])
def test_postgres_urls_are_normalised_to_psycopg3(url, expected):
    assert load(DATABASE_URL=url)["SQLALCHEMY_DATABASE_URI"] == expected


@pytest.mark.parametrize("env, variable, fragment", [
    ({"DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL", "unsupported database 'mysql'"),
    ({"DATABASE_URL": "not a url"}, "DATABASE_URL", "not a database URL"),
    ({"DATABASE_URL": "postgresql+asyncpg://x@y/z"}, "DATABASE_URL", "unsupported PostgreSQL driver"),
    ({"DATABASE_URL": "postgresql://x@y"}, "DATABASE_URL", "names no database"),
    ({"REDIS_URL": "http://localhost:6379"}, "REDIS_URL", "unsupported scheme"),
    ({"REDIS_URL": "redis://localhost:port"}, "REDIS_URL", "port is not a number"),
    ({"SMTP_URL": "smtp://"}, "SMTP_URL", "names no host"),
    ({"SMTP_URL": "smtp://h?tls=1"}, "SMTP_URL", "unknown option"),
    ({"SMTP_URL": "imap://h"}, "SMTP_URL", "unsupported scheme"),
    ({"MAIL_FROM": "nobody"}, "MAIL_FROM", "not an email address"),
    ({"PUBLIC_BASE_URL": "ftp://x"}, "PUBLIC_BASE_URL", "expected an http(s) URL"),
    ({"APP_ENV": "staging"}, "APP_ENV", "unknown environment"),
    ({"DEFAULT_ASKS_PER_MONTH": "many"}, "DEFAULT_ASKS_PER_MONTH", "whole number"),
    ({"TRUSTED_PROXIES": "-1"}, "TRUSTED_PROXIES", "at least 0"),
    ({"API_RATE_LIMIT": "lots"}, "API_RATE_LIMIT", "expected a rate limit"),
    ({"ACT_RATE_LIMIT": "fast"}, "ACT_RATE_LIMIT", "expected a rate limit"),
])
def test_bad_settings_name_the_variable_and_the_problem(env, variable, fragment):
    with pytest.raises(ConfigError) as info:
        load(**env)
    assert info.value.variable == variable
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"{variable}: ")


def test_smtp_url_carries_credentials_starttls_and_connections():
    smtp = load(SMTP_URL="smtp://user%40x:p%3Ass@mail.example.com:587?starttls=1&connections=3")["SMTP"]
    assert smtp == {"host": "mail.example.com", "port": 587, "username": "user@x", "password": "p:ss",
                    "ssl": False, "starttls": True, "timeout": 30, "connections": 3}
    assert load(SMTP_URL="smtps://mail.example.com")["SMTP"]["port"] == 465


def test_production_requires_a_secret_key():
    with pytest.raises(ConfigError, match="SECRET_KEY: is required in production"):
        load(APP_ENV="production")
    with pytest.raises(ConfigError, match="at least 32"):
        load(APP_ENV="production", SECRET_KEY="short")
    assert load(APP_ENV="production", SECRET_KEY="x" * 40)["SESSION_COOKIE_SECURE"] is True


def test_development_generates_a_secret_key_once_and_keeps_it(tmp_path):
    env = {"APP_ENV": "development", "INSTANCE_PATH": str(tmp_path)}
    first = config.load(environ=env)["SECRET_KEY"]
    assert len(first) == 64
    assert config.load(environ=env)["SECRET_KEY"] == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_create_app_exits_with_one_line_for_a_bad_setting(capsys):
    from wsgi import create_app

    with pytest.raises(SystemExit) as info:
        create_app({"APP_ENV": "testing", "DATABASE_URL": "oracle://x/y"})
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == "Configuration error: DATABASE_URL: unsupported database 'oracle'; use sqlite or postgresql"


PG = "postgresql://u@db.example.org/supporters"


def test_transfer_storage_defaults_to_the_database_on_postgresql_and_local_on_sqlite(tmp_path):
    base = {"INSTANCE_PATH": str(tmp_path), "APP_ENV": "testing"}
    assert load(**base)["TRANSFER_STORAGE"] == "local"
    assert load(**base, DATABASE_URL=PG)["TRANSFER_STORAGE"] == "database"
    assert load(**base, DATABASE_URL=PG, TRANSFER_STORAGE=" LOCAL ")["TRANSFER_STORAGE"] == "local"
    assert load(**base, TRANSFER_STORAGE="database")["TRANSFER_STORAGE"] == "database"
    for bad in ("s3", "lo\r\ncal", "datab\x00ase", "lökal"):
        with pytest.raises(ConfigError, match="TRANSFER_STORAGE: expected local or database"):
            load(**base, TRANSFER_STORAGE=bad)
    with pytest.raises(ConfigError, match="TRANSFER_KEEP_HOURS: must be at least 1"):
        load(**base, TRANSFER_KEEP_HOURS="0")


def test_transaction_pooling_turns_prepared_statements_off_and_needs_postgresql(tmp_path):
    base = {"INSTANCE_PATH": str(tmp_path), "APP_ENV": "testing"}
    assert load(**base, DATABASE_URL=PG)["SQLALCHEMY_ENGINE_OPTIONS"] == {"pool_pre_ping": True}
    pooled = load(**base, DATABASE_URL=PG, DATABASE_POOL_MODE="transaction")
    assert pooled["DATABASE_POOL_MODE"] == "transaction"
    assert pooled["SQLALCHEMY_ENGINE_OPTIONS"] == {"pool_pre_ping": True, "connect_args": {"prepare_threshold": None}}
    with pytest.raises(ConfigError, match="DATABASE_POOL_MODE: transaction pooling is a PostgreSQL"):
        load(**base, DATABASE_POOL_MODE="transaction")
    with pytest.raises(ConfigError, match="DATABASE_POOL_MODE: expected session or transaction"):
        load(**base, DATABASE_URL=PG, DATABASE_POOL_MODE="statement")


def test_settings_that_tie_state_to_one_host_are_named_on_a_shared_database(tmp_path):
    dev = {"INSTANCE_PATH": str(tmp_path), "APP_ENV": "development", "DATABASE_URL": PG}
    warnings = " ".join(load(**dev, TRANSFER_STORAGE="local")["SINGLE_HOST_WARNINGS"])
    assert "SECRET_KEY is not set" in warnings and f"{tmp_path}/secret_key" in warnings
    assert "REDIS_URL is not set" in warnings and "TRANSFER_STORAGE=local" in warnings
    shared = load(**dev, SECRET_KEY="s" * 40, REDIS_URL="redis://redis.example.org:6379/0")
    assert shared["SINGLE_HOST_WARNINGS"] == []
    # One machine on SQLite is what the embedded default is for: nothing to warn about.
    assert load(INSTANCE_PATH=str(tmp_path), APP_ENV="development")["SINGLE_HOST_WARNINGS"] == []


def test_the_default_instance_folder_is_the_checkouts_or_else_the_working_directorys(tmp_path, monkeypatch):
    assert config.default_instance_path() == config.ROOT / "instance"  # this is a checkout
    monkeypatch.setattr(config, "ROOT", tmp_path / "site-packages")
    monkeypatch.chdir(tmp_path)
    assert config.default_instance_path() == tmp_path / "instance"
