"""A petition with a real `flask worker` process: the mail, the signatures, the goal mail to the
owner and the official answer to exactly the signers all go through separate worker processes."""

import subprocess
import sys

import pytest

from tests.actions_helpers import act_path, auth, create, mails
from tests.factories import make_supporter


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "RATELIMIT_ENABLED": "0"}


def _worker(env) -> None:
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--burst"],
                          env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def test_a_petition_runs_through_real_worker_processes(app, client, db, smtp_sink, subprocess_env):
    manager = auth("manager", "owner@example.com")
    signers = [make_supporter(f"s{i}@example.org") for i in range(2)]
    bystander = make_supporter("b@example.org")
    campaign = create(client, manager, "vote", {"type": "petition", "statement": "Open on Sundays", "goal": 2})
    assert client.post(f"/api/v1/campaigns/{campaign['id']}/launch", headers=manager).status_code == 202
    _worker({**subprocess_env, "SMTP_URL": smtp_sink.url})
    sent = mails(smtp_sink)
    assert set(sent) == {s.email for s in signers} | {bystander.email}
    for s in signers:
        assert client.post(act_path(sent[s.email]), data={"sign": "1"}).status_code == 200
    smtp_sink.messages.clear()
    _worker({**subprocess_env, "SMTP_URL": smtp_sink.url})  # the goal mail (queue "default")
    assert [m[1] for m in smtp_sink.messages] == [["owner@example.com"]]
    smtp_sink.messages.clear()
    answer = client.post(f"/api/v1/campaigns/{campaign['id']}/answer", headers=manager,
                         json={"contents": {"en": {"subject": "Our answer", "body": "Yes, from May."}}})
    assert answer.status_code == 202
    _worker({**subprocess_env, "SMTP_URL": smtp_sink.url})
    assert sorted(m[1][0] for m in smtp_sink.messages) == sorted(s.email for s in signers)
