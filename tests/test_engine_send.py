from email.header import decode_header, make_header

import pytest

from campaigns import services
from campaigns.models import Campaign
from tests.engine_helpers import make_campaign, run_worker, statuses
from tests.factories import make_supporter


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "CAMPAIGN_RETRY_SECONDS": 0}


def test_an_announcement_reaches_every_active_supporter_once(app, db, smtp_sink):
    people = [make_supporter(name=f"Kim {i}") for i in range(5)]
    campaign = make_campaign()
    result = services.launch(campaign.id)
    assert result == {"status": "sending", "queued": 5}
    run_worker(app)
    assert statuses(campaign.id) == {"sent": 5}
    assert len(smtp_sink.messages) == 5
    assert set(smtp_sink.handler.message_ids.values()) == {1}
    msg = smtp_sink.handler.parsed()[0]
    assert str(make_header(decode_header(msg["Subject"]))).startswith("News for Kim")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Unsubscribe"].startswith("<http://supporters.test/unsubscribe/")
    text, html = (p.get_payload(decode=True).decode() for p in msg.get_payload())
    assert "Hello Kim," in text and "<strong>news</strong>" in html
    assert 'href="http://supporters.test/preferences/' in html
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).status.value == "sent"
    assert {m[1][0] for m in smtp_sink.messages} == {p.email for p in people}
