"""A real `flask worker` killed with SIGKILL in the middle of a webhook delivery loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import sqlalchemy as sa

from core.events import MessageStatus, WebhookAttempt, WebhookMessage
from tests.test_webhooks import FAST, add_endpoint, new_supporter, receiver, run, settings  # noqa: F401


def test_a_worker_killed_mid_delivery_loses_nothing_and_resends_with_the_same_id(app, db, receiver,  # noqa: F811
                                                                                   subprocess_env):
    endpoint = add_endpoint(db, receiver)
    receiver.plan.append("timeout")  # the first request hangs: the worker is inside it when killed
    receiver.timeout_seconds = 5
    ids = [new_supporter(n) for n in range(3)]
    worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker", "-q", "webhooks"],
                              env={**subprocess_env, **FAST}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not receiver.received:
            assert worker.poll() is None and time.monotonic() < deadline, "the worker never delivered"
            time.sleep(0.02)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        try:
            os.killpg(worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # The killed run recorded nothing for the message it was sending: it is still pending.
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookAttempt)) == 0
    assert set(db.session.scalars(sa.select(WebhookMessage.status))) == {MessageStatus.PENDING}
    db.session.commit()
    # The sweeper re-dispatches once the dead worker's lease has run out; every event arrives.
    run(app, lambda: len(receiver.delivered()) >= 3)
    delivered = receiver.delivered()
    assert [r["json"]["data"]["supporter_id"] for r in delivered] == ids
    assert delivered[0]["headers"]["webhook-id"] == receiver.received[0]["headers"]["webhook-id"]
    assert all(r["verified"] for r in receiver.received)
    assert endpoint.id
