import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from core.accounts import AuditEvent
from core.queues import QUEUES, get_queue, job, make_worker
from tests.jobs import write_audit


def labels(db):
    db.session.expire_all()
    return sorted(db.session.scalars(sa.select(AuditEvent.actor_label)))


def test_jobs_run_in_a_real_worker_with_an_app_context(app, db):
    write_audit.enqueue("one")
    write_audit.enqueue_many([("two",), ("three",)])
    assert get_queue("default").count == 3
    make_worker(app, ["default"]).work(burst=True)
    assert labels(db) == ["one", "three", "two"]
    assert get_queue("default").count == 0


def test_flask_worker_command_runs_jobs_in_a_separate_process(app, db, subprocess_env):
    job = write_audit.enqueue("from-cli")
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--burst", "-q", "default"],
                            env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert labels(db) == ["from-cli"]
    job.refresh()
    assert job.return_value() != os.getpid()


def test_unknown_queues_are_refused():
    with pytest.raises(ValueError, match="unknown queue"):
        job("nope")
    assert list(QUEUES) == ["mail", "webhooks", "campaigns", "default"]


def test_worker_command_refuses_an_unknown_queue(runner):
    result = runner.invoke(args=["worker", "--burst", "-q", "nope"])
    assert result.exit_code == 2
    assert "unknown queue 'nope'" in result.output
