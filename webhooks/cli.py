"""`flask webhooks list | test ID | replay ID (--event N | --since T [--until T]) | sweep`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click
import sqlalchemy as sa
from flask.cli import AppGroup

import webhooks.endpoints as endpoints
from core.accounts import record_audit
from core.errors import DomainError, ValidationFailed
from core.events import MessageStatus, WebhookEndpoint, WebhookMessage
from core.extensions import db

webhooks_group = AppGroup("webhooks", help="Outgoing webhooks: list endpoints, send a test, replay, sweep.")


def _fail(exc: DomainError) -> None:
    db.session.rollback()
    if isinstance(exc, ValidationFailed):
        message = "; ".join(f"{f}: {m}" for f, msgs in exc.errors.items() for m in msgs)
    else:
        message = exc.detail
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected an ISO time such as 2026-12-01T10:00:00Z, got {value!r}",
                                 param_hint=name) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@webhooks_group.command("list")
def list_command() -> None:
    """List endpoints with their state and pending/failed messages."""
    counts = dict(((e, s), n) for e, s, n in db.session.execute(
        sa.select(WebhookMessage.endpoint_id, WebhookMessage.status, sa.func.count())
        .group_by(WebhookMessage.endpoint_id, WebhookMessage.status)))
    for endpoint in db.session.scalars(sa.select(WebhookEndpoint).order_by(WebhookEndpoint.id)):
        state = "active" if endpoint.active else f"disabled ({endpoint.disabled_reason or 'by an admin'})"
        types = ",".join(endpoints.event_types_of(endpoint))
        click.echo(f"{endpoint.id}\t{endpoint.url}\t{state}\t{types}\t"
                   f"pending {counts.get((endpoint.id, MessageStatus.PENDING), 0)}, "
                   f"failed {counts.get((endpoint.id, MessageStatus.FAILED), 0)}")


@webhooks_group.command("test")
@click.argument("endpoint_id", type=int)
def test_command(endpoint_id: int) -> None:
    """Send a webhook.test event to one endpoint."""
    try:
        endpoint = endpoints.get_endpoint(endpoint_id)
        event_id = endpoints.send_test(endpoint)
        record_audit("webhook.test", actor_type="cli", object_type="webhook_endpoint", object_id=endpoint_id)
        db.session.commit()
    except DomainError as exc:
        _fail(exc)
    click.echo(f"Queued test event {event_id} (webhook-id evt_{event_id}) for endpoint {endpoint_id}.")


@webhooks_group.command("replay")
@click.argument("endpoint_id", type=int)
@click.option("--event", "event_id", type=int, help="One event id.")
@click.option("--since", help="Start of a time range (ISO 8601; UTC unless an offset is given).")
@click.option("--until", help="End of the range (default: now).")
def replay_command(endpoint_id: int, event_id: int | None, since: str | None, until: str | None) -> None:
    """Send stored events to an endpoint again, with their original webhook-id."""
    try:
        endpoint = endpoints.get_endpoint(endpoint_id)
        count = endpoints.replay(endpoint, event_id=event_id, since=_time(since, "--since"),
                                 until=_time(until, "--until"))
        record_audit("webhook.replay", actor_type="cli", object_type="webhook_endpoint", object_id=endpoint_id,
                     detail={"events": count})
        db.session.commit()
    except DomainError as exc:
        _fail(exc)
    click.echo(f"Queued {count} events for endpoint {endpoint_id}.")


@webhooks_group.command("sweep")
def sweep_command() -> None:
    """Dispatch every due message now (what the workers' sweeper does periodically)."""
    from webhooks.sweeper import sweep

    click.echo(f"Queued delivery runs for {sweep(grace_seconds=0)} endpoints.")
