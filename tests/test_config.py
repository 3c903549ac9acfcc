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
