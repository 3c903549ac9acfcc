"""Lost confirmation mails are re-sent by the periodic sweeper every `flask worker` runs."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import sqlalchemy as sa

from core.db import utcnow
from core.queues import get_queue
from supporters.models import Supporter
from tests.factories import make_supporter
from tests.test_join_support import outbox, post_join, run_mail_worker


def lose_the_confirmation_of(client, db, email: str) -> None:
    """A web signup whose confirmation job vanished (Redis flushed) ten minutes ago."""
    post_join(client, email=email)
    get_queue("mail").empty()
    db.session.execute(sa.update(Supporter).values(created_at=utcnow() - timedelta(minutes=10)))
    db.session.commit()


def test_flask_campaigns_sweep_requeues_lost_confirmations_of_web_signups_only(app, client, db, runner):
    lose_the_confirmation_of(client, db, "lost@example.org")
    make_supporter("imported@example.org", status="pending", source="import")
    make_supporter("fresh@example.org", status="pending", source="web_form")  # its job may still be on its way
    result = runner.invoke(args=["campaigns", "sweep"])
    assert result.exit_code == 0 and "confirmations 1" in result.output
    run_mail_worker(app)
    assert [m["To"] for m in outbox(app)] == ["lost@example.org"]
    # Sent now: the next sweep finds nothing, and a second run sends nothing twice.
    assert "confirmations 0" in runner.invoke(args=["campaigns", "sweep"]).output
    run_mail_worker(app)
    assert len(outbox(app)) == 1


def test_a_running_worker_resends_a_lost_confirmation_without_an_operator(app, client, db, subprocess_env):
    lose_the_confirmation_of(client, db, "lost@example.org")
    env = {**subprocess_env, "CAMPAIGN_SWEEP_SECONDS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker", "-q", "mail"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def sent_at():
            db.session.expire_all()
            value = db.session.scalar(sa.select(Supporter.confirmation_sent_at))
            db.session.commit()
            return value

        # The job writes the mail, then records it: wait for both (under load the second comes later).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (outbox(app) and sent_at() is not None):
            time.sleep(0.3)
        assert [m["To"] for m in outbox(app)] == ["lost@example.org"]
        assert sent_at() is not None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
