"""Unsubscribe: a one-button page, RFC 8058 one-click POST, idempotent, with the ledger entry."""

from supporters import links
from supporters.models import Supporter, SupporterStatus, Suppression
from tests.factories import make_supporter
from tests.test_join_support import header, outbox, post_join, run_mail_worker, supporters, trail


def test_opening_the_link_shows_one_button_and_changes_nothing(client, db):
    supporter = make_supporter(language="de")
    page = client.get(f"/unsubscribe/{links.unsubscribe_token(supporter.id)}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="unsubscribe-button"' in html and "Abmelden" in html
    assert supporters(db)[0].status is SupporterStatus.ACTIVE


def test_one_click_post_unsubscribes_without_cookie_or_csrf_token(app, db):
    supporter = make_supporter()
    client = app.test_client(use_cookies=False)
    page = client.post(f"/unsubscribe/{links.unsubscribe_token(supporter.id)}",
                       data={"List-Unsubscribe": "One-Click"}, headers={"User-Agent": "Gmail one-click"})
    assert page.status_code == 200
    [left] = supporters(db)
    assert left.status is SupporterStatus.UNSUBSCRIBED and left.unsubscribed_at is not None
    assert trail(db, supporter.id) == [("granted", "test"), ("withdrawn", "one_click")]
    assert left.consents[-1].user_agent == "Gmail one-click"
    # Leaving is a status change and a ledger entry, not a suppression: joining again stays possible.
    assert db.session.query(Suppression).count() == 0


def test_unsubscribing_twice_records_one_withdrawal(client, db):
    supporter = make_supporter()
    path = f"/unsubscribe/{links.unsubscribe_token(supporter.id)}"
    first = supporters(db)[0]
    assert client.post(path).status_code == 200
    when = supporters(db)[0].unsubscribed_at
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert supporters(db)[0].unsubscribed_at == when
    assert trail(db, first.id) == [("granted", "test"), ("withdrawn", "unsubscribe_page")]
    assert "You have left" in client.get(path).get_data(as_text=True)


def test_a_pending_supporter_can_unsubscribe_from_the_confirmation_mail(app, client, db):
    post_join(client)
    run_mail_worker(app)
    [message] = outbox(app)
    url = header(message, "List-Unsubscribe").strip("<>")
    page = client.post(url.replace("http://supporters.test", ""), data={"List-Unsubscribe": "One-Click"})
    assert page.status_code == 200
    [left] = supporters(db)
    assert left.status is SupporterStatus.UNSUBSCRIBED
    assert trail(db, left.id) == [("granted", "web_form"), ("withdrawn", "one_click")]


def test_bad_tokens_are_refused_and_change_nothing(client, db):
    supporter = make_supporter()
    for path in (f"/unsubscribe/{links.preferences_token(supporter.id)}", f"/unsubscribe/{links.confirm_token(supporter.id)}",
                 f"/unsubscribe/{links.unsubscribe_token(supporter.id)}tampered", "/unsubscribe/x",
                 f"/unsubscribe/{links.unsubscribe_token(987654)}"):
        assert client.get(path).status_code == 400
        assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 400
    assert supporters(db)[0].status is SupporterStatus.ACTIVE
    assert trail(db, supporter.id) == [("granted", "test")]


def test_an_erased_supporter_cannot_be_touched_through_an_old_link(client, db):
    from supporters.privacy import erase_supporter

    supporter = make_supporter()
    erase_supporter(db.session.get(Supporter, supporter.id))
    db.session.commit()
    assert client.post(f"/unsubscribe/{links.unsubscribe_token(supporter.id)}").status_code == 400
    assert supporters(db)[0].status is SupporterStatus.ERASED
