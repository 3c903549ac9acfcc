"""The preferences page: name, language, interests, how often, a pause, and leaving."""

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from supporters import links
from supporters.models import Supporter, SupporterStatus, supporter_tags
from tests.factories import make_supporter, make_tag
from tests.test_join_support import CSRF_RE, supporters, trail


def open_page(client, supporter_id: int, **query):
    path = f"/preferences/{links.preferences_token(supporter_id)}"
    page = client.get(path, query_string=query)
    return path, page, CSRF_RE.search(page.get_data(as_text=True))


def save(client, supporter_id: int, **fields):
    path, _page, token = open_page(client, supporter_id)
    data = {"name": "Ada", "language": "en", "asks_per_month": "default", "paused_until": ""}
    data.update(fields)
    data = {k: v for k, v in data.items() if v is not None}
    return client.post(path, data={**data, "csrf_token": token.group(1)})


def tag_names(db, supporter_id: int) -> list[str]:
    db.session.expire_all()
    return sorted(t.name for t in db.session.get(Supporter, supporter_id).tags)


def test_the_page_shows_the_current_choices_in_the_supporters_language(client, db):
    supporter = make_supporter(name="Ada", language="de", asks_per_month=2)
    _path, page, _token = open_page(client, supporter.id)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Ihre Einstellungen" in html and 'value="Ada"' in html
    assert '<option value="2" selected>' in html
    assert f"/join?ref={supporter.referral_code}" in html
    assert "Austreten und Einwilligung widerrufen" in html
    assert page.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_saving_changes_name_language_interests_frequency_and_pause(app, client, db):
    supporter = make_supporter(name="Ada", language="en")
    make_tag("reviews", public=True)
    make_tag("votes", public=True)
    page = save(client, supporter.id, name="Ada L.", language="de", interests=["reviews", "votes"],
                asks_per_month="1", paused_until=(date.today() + timedelta(days=10)).isoformat())
    assert page.status_code == 200
    assert "Ihre Einstellungen sind gespeichert" in page.get_data(as_text=True)
    [saved] = supporters(db)
    assert (saved.name, saved.language, saved.asks_per_month) == ("Ada L.", "de", 1)
    assert saved.paused_until.date() == date.today() + timedelta(days=10)
    assert tag_names(db, supporter.id) == ["reviews", "votes"]
    # Back to the defaults: the company default is stored as NULL, the pause is lifted.
    save(client, supporter.id, asks_per_month=str(app.config["DEFAULT_ASKS_PER_MONTH"]), interests=["votes"])
    [saved] = supporters(db)
    assert (saved.asks_per_month, saved.paused_until) == (None, None)
    assert tag_names(db, supporter.id) == ["votes"]


def test_tags_the_company_assigned_are_kept_when_interests_change(client, db):
    supporter = make_supporter()
    internal = make_tag("vip-internal", public=False)
    public = make_tag("reviews", public=True)
    db.session.execute(supporter_tags.insert(), [{"tag_id": internal.id, "supporter_id": supporter.id},
                                                 {"tag_id": public.id, "supporter_id": supporter.id}])
    db.session.commit()
    save(client, supporter.id)  # no interests ticked
    assert tag_names(db, supporter.id) == ["vip-internal"]


def test_preference_changes_are_not_consent_changes(client, db):
    supporter = make_supporter()
    save(client, supporter.id, name="Someone else")
    assert trail(db, supporter.id) == [("granted", "test")]


@pytest.mark.parametrize("fields, field, message", [
    ({"asks_per_month": "5"}, "asks_per_month", "Please choose one of the listed options."),
    ({"asks_per_month": "0"}, "asks_per_month", "Please choose one of the listed options."),
    ({"asks_per_month": "lots"}, "asks_per_month", "Please choose one of the listed options."),
    ({"paused_until": "tomorrow"}, "paused_until", "Please enter a date as YYYY-MM-DD."),
    ({"paused_until": "2020-01-01"}, "paused_until", "Please choose a date in the future."),
    ({"paused_until": "2999-01-01"}, "paused_until", "Please choose a date within the next year."),
    ({"language": "xx"}, "language", "Please choose German or English."),
    ({"name": "x" * 201}, "name", "The name is too long (at most 200 characters)."),
    ({"interests": ["vip-internal"]}, "interests", "Please choose only from the listed interests."),
])
def test_bad_preferences_come_back_with_a_message_and_change_nothing(client, db, fields, field, message):
    supporter = make_supporter(name="Ada", asks_per_month=2)
    make_tag("vip-internal", public=False)
    page = save(client, supporter.id, **{"name": "Changed", **fields})
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert f'id="{field}-error"' in html and message in html
    [unchanged] = supporters(db)
    assert (unchanged.name, unchanged.asks_per_month, unchanged.paused_until) == ("Ada", 2, None)


def test_saving_without_a_csrf_token_is_refused(client, db):
    supporter = make_supporter(name="Ada")
    path, _page, _token = open_page(client, supporter.id)
    page = client.post(path, data={"name": "Mallory", "language": "en"})
    assert page.status_code == 400
    assert supporters(db)[0].name == "Ada"


def test_leaving_from_the_preferences_page_withdraws_consent(client, db):
    supporter = make_supporter()
    path, _page, token = open_page(client, supporter.id)
    page = client.post(path, data={"action": "leave", "csrf_token": token.group(1)})
    assert page.status_code == 200 and "You have left" in page.get_data(as_text=True)
    [left] = supporters(db)
    assert left.status is SupporterStatus.UNSUBSCRIBED and left.unsubscribed_at is not None
    assert trail(db, supporter.id) == [("granted", "test"), ("withdrawn", "preferences_page")]
    # Afterwards the page says so and offers to join again instead of a form.
    html = client.get(path).get_data(as_text=True)
    assert "/join" in html and 'id="save"' not in html


def test_a_pending_supporter_is_reminded_to_confirm(client, db):
    supporter = make_supporter(status="pending")
    html = open_page(client, supporter.id)[1].get_data(as_text=True)
    assert "You have not confirmed your email address yet" in html


def test_foreign_tampered_and_erased_links_are_refused(client, db):
    from supporters.privacy import erase_supporter

    supporter = make_supporter()
    other = make_supporter()
    for path in (f"/preferences/{links.unsubscribe_token(supporter.id)}", f"/preferences/{links.confirm_token(supporter.id)}",
                 f"/preferences/{links.preferences_token(supporter.id)}x", "/preferences/x"):
        assert client.get(path).status_code == 400
    erase_supporter(db.session.get(Supporter, other.id))
    db.session.commit()
    assert client.get(f"/preferences/{links.preferences_token(other.id)}").status_code == 400


def test_the_pause_is_stored_as_midnight_utc_of_the_chosen_day(client, db):
    supporter = make_supporter()
    day = date.today() + timedelta(days=30)
    save(client, supporter.id, paused_until=day.isoformat())
    assert supporters(db)[0].paused_until == datetime(day.year, day.month, day.day, tzinfo=UTC)


def test_the_company_default_limits_the_choices(settings, app):
    from wsgi import create_app

    strict = create_app({**settings, "DEFAULT_ASKS_PER_MONTH": "2"})
    with strict.app_context():
        supporter = make_supporter()
        client = strict.test_client()
        html = open_page(client, supporter.id)[1].get_data(as_text=True)
        assert 'value="3"' not in html and "at most 2 times a month" in html
        assert save(client, supporter.id, asks_per_month="3").status_code == 422
        from core.extensions import db

        assert db.session.scalar(sa.select(Supporter.asks_per_month)) is None


def test_a_stale_csrf_token_on_the_preferences_page_explains_itself(client, db):
    supporter = make_supporter(name="Ada")
    path, _page, _token = open_page(client, supporter.id)
    page = client.post(path, data={"name": "Mallory", "language": "en", "csrf_token": "stale"})
    assert page.status_code == 400
    assert "The form had expired" in page.get_data(as_text=True)
