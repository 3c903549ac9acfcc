"""Operator CLI for the platform core: `users`, `tokens`, `worker` and `dev`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import AppGroup

from core.accounts import ApiToken, Role, create_token, create_user, find_user, record_audit, revoke_token
from core.errors import DomainError, ValidationFailed
from core.extensions import db
from core.outbox_cli import outbox

users = AppGroup("users", help="Manage admin users (admin, manager, viewer).")
tokens = AppGroup("tokens", help="Manage API tokens (shown once at creation, stored hashed).")


def fail(message: str, code: int = 1) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _domain_error_message(exc: DomainError) -> str:
    if isinstance(exc, ValidationFailed):
        return "; ".join(f"{field} {msg}" for field, msgs in exc.errors.items() for msg in msgs)
    return exc.detail


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@users.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.VIEWER.value, show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of prompting.")
def users_create(email: str, role: str, password_stdin: bool) -> None:
    """Create a user; the password is prompted for (or read from stdin)."""
    password = _read_password(password_stdin)
    try:
        user = create_user(email, password, role)
        db.session.flush()
        record_audit("user.create", actor_type="cli", object_type="admin_user", object_id=user.id,
                     detail={"email": user.email, "role": user.role.value})
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        fail(_domain_error_message(exc))
    click.echo(f"Created {user.role.value} {user.email} (id {user.id}).")


@users.command("list")
def users_list() -> None:
    """List users with their role and state."""
    from core.accounts import AdminUser

    for user in db.session.scalars(sa.select(AdminUser).order_by(AdminUser.id)):
        state = "active" if user.active else "deactivated"
        click.echo(f"{user.id}\t{user.email}\t{user.role.value}\t{state}")


@users.command("set-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of prompting.")
def users_set_password(email: str, password_stdin: bool) -> None:
    """Set a user's password; every session signed in so far ends (API tokens stay valid)."""
    try:
        user = find_user(email)
        user.set_password(_read_password(password_stdin))
        record_audit("user.set_password", actor_type="cli", object_type="admin_user", object_id=user.id)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        fail(_domain_error_message(exc))
    click.echo(f"Password changed for {user.email}; their existing sessions have ended.")


@users.command("deactivate")
@click.argument("email")
def users_deactivate(email: str) -> None:
    """Deactivate a user: sign-in and all of their tokens stop working."""
    try:
        user = find_user(email)
    except DomainError as exc:
        fail(_domain_error_message(exc))
    user.active = False
    record_audit("user.deactivate", actor_type="cli", object_type="admin_user", object_id=user.id)
    db.session.commit()
    click.echo(f"Deactivated {user.email}.")


@tokens.command("create")
@click.option("--user", "email", required=True, help="Email of the user the token acts for.")
@click.option("--name", default="cli", show_default=True, help="A label to recognise the token by.")
@click.option("--role", type=click.Choice([r.value for r in Role]), help="At most the user's role (default: the user's).")
@click.option("--expires-in-days", type=click.IntRange(1, 3650), help="Let the token expire after this many days.")
def tokens_create(email: str, name: str, role: str | None, expires_in_days: int | None) -> None:
    """Create an API token and print it once."""
    try:
        user = find_user(email)
        expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
        token, raw = create_token(user, name, role, expires)
        db.session.flush()
        record_audit("token.create", actor_type="cli", object_type="api_token", object_id=token.id,
                     detail={"user": user.email, "role": token.role.value, "prefix": token.prefix})
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        fail(_domain_error_message(exc))
    click.echo(f"Token {token.id} ({token.role.value}) for {user.email}; store it now, it is not shown again:", err=True)
    click.echo(raw)


@tokens.command("list")
def tokens_list() -> None:
    """List tokens (prefix, owner, role, last use; never the secret)."""
    rows = db.session.scalars(sa.select(ApiToken).order_by(ApiToken.id)).all()
    for t in rows:
        state = "revoked" if t.revoked_at else ("expired" if not t.is_usable() else "active")
        used = t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never"
        click.echo(f"{t.id}\t{t.prefix}\t{t.user.email}\t{t.role.value}\t{t.name}\t{state}\tlast used {used}")
    if not rows:
        click.echo("No tokens.", err=True)


@tokens.command("revoke")
@click.argument("token")
def tokens_revoke(token: str) -> None:
    """Revoke a token by id or prefix."""
    try:
        revoked = revoke_token(token)
    except DomainError as exc:
        fail(_domain_error_message(exc))
    record_audit("token.revoke", actor_type="cli", object_type="api_token", object_id=revoked.id)
    db.session.commit()
    click.echo(f"Revoked token {revoked.id} ({revoked.prefix}).")


@click.command("worker")
@click.option("--queues", "-q", multiple=True, help="Queues to listen on, in priority order (default: all).")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--fork", is_flag=True, help="Fork a child per job (isolation) instead of running jobs in-process.")
@click.option("--name", help="Worker name (default: generated).")
def worker_command(queues: tuple[str, ...], burst: bool, fork: bool, name: str | None) -> None:
    """Run an RQ worker with the application's configuration."""
    from core.queues import make_worker

    app = current_app._get_current_object()
    check_services(app)
    warn_single_host(app)
    try:
        worker = make_worker(app, queues or None, fork=fork, name=name)
    except ValueError as exc:
        fail(str(exc), 2)
    # This host's metrics on an internal address (WORKER_METRICS_ADDRESS), when configured.
    from core.scrape import serve_worker_metrics

    try:
        serve_worker_metrics(app)
    except OSError as exc:
        fail(f"WORKER_METRICS_ADDRESS: cannot listen on {app.config['WORKER_METRICS_ADDRESS']}: {exc.strerror}", 2)
    # Feature packages may start background duties next to the worker (e.g. the campaign sweeper).
    for hook in app.extensions.get("worker_startup", ()):
        hook(app, worker)
    # The worker forks (its RQ scheduler; with --fork, every job): close pooled database
    # connections before each fork so that no child inherits one (after a kill -9 of the worker,
    # an inherited socket would keep its transaction and row locks alive in the orphan).
    os.register_at_fork(before=db.engine.dispose)
    worker.work(burst=burst, with_scheduler=True, logging_level="INFO")


def warn_single_host(app: Flask) -> None:
    """Say loudly what ties this process's state to its host (config.single_host_warnings)."""
    for warning in app.config.get("SINGLE_HOST_WARNINGS", ()):
        click.echo(f"WARNING (several hosts): {warning}", err=True)


def check_services(app: Flask) -> None:
    """Fail fast with one line naming the variable when the database or Redis is unreachable."""
    try:
        with db.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        fail(f"DATABASE_URL: cannot connect to {db.engine.url.render_as_string(hide_password=True)}: "
             f"{str(exc.orig or exc).strip().splitlines()[0]}", 2)
    try:
        app.extensions["redis"].ping()
    except Exception as exc:  # noqa: BLE001 - any failure is reported as one line
        fail(f"REDIS_URL: cannot reach Redis at {app.config['REDIS_URL']}: {exc}", 2)


def _port_free_or_fail(host: str, port: int) -> None:
    """Say so before anything starts (and before any URL is printed) when the port is taken."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        fail(f"--host {host}: {exc.strerror}", 2)
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            fail(f"port {port} on {host} is in use (another server running?); "
                 f"stop it or choose another port: scripts/run.sh --port {port + 1}", 2)


@click.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 8), help="RQ worker processes.")
def dev_command(host: str, port: int, workers: int) -> None:
    """Run the whole platform: migrate, then web server + workers on one Redis; Ctrl-C stops all."""
    from flask_migrate import upgrade

    app = current_app._get_current_object()
    _port_free_or_fail(host, port)
    check_services(app)
    upgrade()
    env = {**os.environ, "REDIS_URL": app.config["REDIS_URL"], "PYTHONUNBUFFERED": "1"}
    if not os.environ.get("PUBLIC_BASE_URL"):  # links in mails point at the server we start
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        env["PUBLIC_BASE_URL"] = f"http://{shown}:{port}"
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    commands = [[*flask, "run", "--host", host, "--port", str(port), "--no-reload", "--with-threads"]]
    commands += [[*flask, "worker", "--name", f"dev-{os.getpid()}-{i}"] for i in range(workers)]
    children = [subprocess.Popen(cmd, env=env, start_new_session=True) for cmd in commands]

    def stop(*_args) -> None:
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
    # A shell starting us in the background ignores SIGINT; Ctrl-C must still stop everything.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    base = env.get("PUBLIC_BASE_URL") or app.config["PUBLIC_BASE_URL"]
    click.echo(f"\nSupporter platform running: http://{host}:{port}/join  (health: http://{host}:{port}/healthz)")
    click.echo(f"Links in mails point to PUBLIC_BASE_URL={base}; mail goes to "
               f"{'SMTP' if app.config['SMTP'] else app.config['OUTBOX_DIR']}. Press Ctrl-C to stop.\n")
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        failed = [c for c in children if c.poll() is not None]
        click.echo(f"A process exited (code {failed[0].returncode}); stopping the others.", err=True)
        stop()
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("\nStopping…")
        stop()


def _excepthook(exc_type, exc, tb) -> None:
    """Turn connection failures at the command line into one line naming the variable."""
    import redis

    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        first = str(exc.orig or exc).strip().splitlines()[0]
        print(f"Error: DATABASE_URL: the database is unreachable or refused the operation: {first}", file=sys.stderr)
        sys.exit(2)
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        print(f"Error: REDIS_URL: Redis is unreachable: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.__excepthook__(exc_type, exc, tb)


def init_app(app: Flask) -> None:
    app.cli.add_command(users)
    app.cli.add_command(tokens)
    app.cli.add_command(worker_command)
    app.cli.add_command(dev_command)
    app.cli.add_command(outbox)
    if not app.testing:
        sys.excepthook = _excepthook
