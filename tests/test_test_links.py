"""Links in a test mail open the sample supporter's real pages but change nothing (issue 18 follow-up).

A test send carries a real sample supporter's links so that a tester sees working pages; a tester
(or their mail client's one-click unsubscribe) must not unsubscribe, re-configure or act for that
person. The links carry a test flag; any POST through one answers "a link from a test mail".
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from core.signing import is_test_token, make_token
from dialog.models import Post
from supporters.links import unsubscribe_url
from supporters.models import ConsentEvent, Supporter, SupporterStatus
from tests.api_support import ApiCaller
from tests.dialog_helpers import CSRF_RE, make_topic
from tests.engine_helpers import BODY
from tests.factories import make_supporter

BASE = "http://supporters.test"


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "RATELIMIT_ENABLED": "0"}


@pytest.fixture
def api(app, db):
    return ApiCaller(app, db)


def _test_mail_links(api, smtp_sink) -> tuple[int, dict[str, str]]:
    sample = make_supporter("sample@example.org", name="Sam")
    body = BODY + "\n\n[Preferences]({{preferences_url}})\n"
    cid = api.post("/campaigns", {"name": "News", "contents": {"en": {"subject": "News", "body": body}}},
                   role="manager").get_json()["id"]
    r = api.post(f"/campaigns/{cid}/test", {"to": "tester@example.com"}, role="manager")
    assert r.status_code == 200 and r.get_json()["sample_supporter_id"] == sample.id
    msg = smtp_sink.handler.parsed()[-1]
    html = msg.get_payload()[1].get_payload(decode=True).decode()
    found = {kind: re.search(rf'{BASE}(/{kind}/[^"\s<)]+)', html).group(1) for kind in ("preferences", "dialog")}
    found["one_click"] = msg["List-Unsubscribe"].strip("<>").removeprefix(BASE)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    return sample.id, found


def _state(db, supporter_id: int):
    db.session.expire_all()
    s = db.session.get(Supporter, supporter_id)
    events = db.session.scalar(sa.select(sa.func.count()).select_from(ConsentEvent)
                               .where(ConsentEvent.supporter_id == supporter_id))
    posts = db.session.scalar(sa.select(sa.func.count()).select_from(Post))
    state = (s.status, s.paused_until, s.name, events, posts)
    db.session.commit()
    return state


def _says_test(response) -> None:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert "test mail" in response.get_data(as_text=True)


def test_a_test_mails_links_open_the_pages_but_no_post_through_them_changes_anything(app, db, api, smtp_sink):
    sid, links = _test_mail_links(api, smtp_sink)
    make_topic(api)
    before = _state(db, sid)
    client = app.test_client()
    # RFC 8058 one-click, as Gmail's "unsubscribe" button posts it, and the page's own form.
    _says_test(client.post(links["one_click"], data={"List-Unsubscribe": "One-Click"}))
    _says_test(client.post(links["one_click"], data={}))
    # The preferences page opens; saving a pause through it changes nothing.
    page = client.get(links["preferences"])
    assert page.status_code == 200 and "Sam" in page.get_data(as_text=True)
    csrf = CSRF_RE.search(page.get_data(as_text=True)).group(1)
    _says_test(client.post(links["preferences"], data={
        "csrf_token": csrf, "name": "Changed", "language": "en", "asks_per_month": "default",
        "paused_until": (date.today() + timedelta(days=30)).isoformat()}))
    # The dialog page opens; posting an idea through it stores nothing.
    page = client.get(links["dialog"])
    assert page.status_code == 200
    csrf = CSRF_RE.search(page.get_data(as_text=True)).group(1)
    _says_test(client.post(links["dialog"], data={"csrf_token": csrf, "action": "post", "title": "An idea",
                                                  "text": "Please open a shop in Hamburg."}))
    assert _state(db, sid) == before
    assert before[0] is SupporterStatus.ACTIVE

    # The same person's real link still works: the guard is for test links only.
    r = client.post(unsubscribe_url(sid).removeprefix(app.config["PUBLIC_BASE_URL"]),
                    data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200 and "test mail" not in r.get_data(as_text=True)
    assert _state(db, sid)[0] is SupporterStatus.UNSUBSCRIBED


def test_only_a_signed_token_for_an_acting_purpose_counts_as_a_test_link(app):
    with app.test_request_context():
        real = make_token("unsubscribe", {"s": 1, "test": 1})
        assert is_test_token(real, ("unsubscribe",))
        assert not is_test_token(real, ("preferences",))  # signed for another purpose
        assert not is_test_token(make_token("unsubscribe", {"s": 1}), ("unsubscribe",))
        head, rest = real.split(".", 1)
        forged = make_token("unsubscribe", {"s": 2, "test": 1}).split(".", 1)[0] + "." + make_token(
            "unsubscribe", {"s": 1}).split(".", 1)[1]
        assert not is_test_token(forged, ("unsubscribe",))  # the flag without a valid signature
        for junk in ("", ".", "abc", "!!!.x.y", "e30", "x" * 3000):
            assert not is_test_token(junk, ("unsubscribe",))
        assert head and rest
