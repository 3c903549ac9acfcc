import pytest

from campaigns import services
from tests.engine_helpers import make_campaign, run_worker, statuses
from tests.factories import make_supporter


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url}


def test_list_and_show_describe_campaigns_and_their_progress(app, runner):
    make_supporter()
    make_supporter(status="unsubscribed")
    campaign = make_campaign(name="Spring news")
    services.launch(campaign.id)
    run_worker(app)
    listed = runner.invoke(args=["campaigns", "list"])
    assert listed.exit_code == 0 and f"{campaign.id}\tannouncement\tsent\tSpring news" in listed.output
    shown = runner.invoke(args=["campaigns", "show", str(campaign.id)])
    assert shown.exit_code == 0, shown.output
    assert "100.0%" in shown.output and "sent 1" in shown.output and "unsubscribed 1" in shown.output


def test_pause_resume_and_cancel_from_the_command_line(app, runner):
    make_supporter()
    campaign = make_campaign()
    services.launch(campaign.id)
    assert runner.invoke(args=["campaigns", "pause", str(campaign.id)]).exit_code == 0
    again = runner.invoke(args=["campaigns", "pause", str(campaign.id)])
    assert again.exit_code == 1 and "cannot pause a campaign that is paused" in again.output
    assert runner.invoke(args=["campaigns", "resume", str(campaign.id)]).exit_code == 0
    run_worker(app)
    assert statuses(campaign.id) == {"sent": 1}
    assert runner.invoke(args=["campaigns", "cancel", str(campaign.id)]).exit_code == 1


def test_sweep_requeues_work_whose_jobs_were_lost(app, runner):
    from datetime import timedelta

    import sqlalchemy as sa

    from campaigns.models import Delivery
    from core.db import utcnow
    from core.extensions import db

    for _ in range(3):
        make_supporter()
    campaign = make_campaign()
    services.launch(campaign.id)
    app.extensions["redis"].flushdb()  # the jobs are gone
    run_worker(app)
    assert statuses(campaign.id) == {"queued": 3}
    db.session.execute(sa.update(Delivery).values(enqueued_at=utcnow() - timedelta(hours=1)))
    db.session.commit()
    result = runner.invoke(args=["campaigns", "sweep"])
    assert result.exit_code == 0 and "requeued 3" in result.output
    run_worker(app)
    assert statuses(campaign.id) == {"sent": 3}


def test_unknown_campaigns_are_reported(runner):
    result = runner.invoke(args=["campaigns", "show", "999"])
    assert result.exit_code == 1 and "campaign 999 does not exist" in result.output
