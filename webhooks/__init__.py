"""Outgoing webhooks (Standard Webhooks): delivery, the sweeper, privacy hooks and `flask webhooks`.

The outbox and the endpoint models live in `core.events` (so every layer can emit); this package
registers the dispatcher there, a sweeper next to every worker, and the data-access section.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    from core import events
    from webhooks import privacy  # noqa: F401 - registers the data-access export section
    from webhooks.cli import webhooks_group
    from webhooks.dispatch import enqueue_dispatch
    from webhooks.sweeper import start_sweeper_thread

    events.set_dispatcher(enqueue_dispatch)
    app.extensions.setdefault("worker_startup", []).append(start_sweeper_thread)
    app.cli.add_command(webhooks_group)
