"""What a supporter sees: who is asking on every page, `/`, a favicon, Post/Redirect/Get, resend,
"fewer mails or a pause" next to leaving, and a petition's progress (issue 15)."""

import re

import pytest
import sqlalchemy as sa

from campaigns.actions import Vote
from config import ConfigError, load
from core.org_settings import update_settings
from supporters import links
from supporters.models import Supporter, SupporterStatus
from tests.actions_helpers import act_path, auth, create, launch, mails
from tests.factories import make_supporter
from tests.test_join_support import csrf_token, join_form, queued

ORG = {"organisation_name": "Bäckerei Müller GmbH", "postal_address": "Hauptstraße 1\n10115 Berlin",
       "privacy_url": "https://www.example.com/datenschutz", "logo_url": "https://cdn.example.net/logo.svg"}


@pytest.fixture
def branded(db):
    update_settings(ORG)
    db.session.commit()


def _public_pages(client, db) -> dict[str, str]:
    supporter = make_supporter("ada@example.org")
    return {"/": "home", "/join": "join", "/join/sent": "joined",
            f"/preferences/{links.preferences_token(supporter.id)}": "preferences",
            f"/unsubscribe/{links.unsubscribe_token(supporter.id)}": "unsubscribe",
            "/confirm/not-a-token": "link problem", "/confirm/new/sent": "link resent"}


def test_every_public_page_shows_who_is_asking_with_imprint_privacy_link_and_logo(client, db, branded):
    for path, name in _public_pages(client, db).items():
        page = client.get(path)
        html = page.get_data(as_text=True)
        assert "Bäckerei Müller GmbH" in html, name
        assert "Hauptstraße 1, 10115 Berlin" in html, name
        assert 'href="https://www.example.com/datenschutz"' in html, name
        assert '<img src="https://cdn.example.net/logo.svg" alt="Logo' in html, name
        assert 'rel="icon"' in html, name
        # The logo's origin, and only it, is allowed for images; nothing inline.
        csp = page.headers["Content-Security-Policy"]
        assert "img-src 'self' data: https://cdn.example.net;" in csp and "unsafe-inline" not in csp, name


def test_without_settings_pages_show_the_default_name_and_no_empty_links(client, db):
    html = client.get("/join").get_data(as_text=True)
    assert '<span class="org">Supporters</span>' in html  # the display name of MAIL_FROM
    assert "<img" not in html and "datenschutz" not in html
    assert "img-src 'self' data:;" in client.get("/join").headers["Content-Security-Policy"]


def test_home_is_a_landing_page_or_a_configured_redirect(client, app, settings, branded):
    page = client.get("/?lang=de")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Unterstützer:innen von Bäckerei Müller GmbH" in html
    assert 'href="/join?lang=de"' in html
    assert client.head("/").status_code == 200
    from wsgi import create_app

    redirecting = create_app({**settings, "HOME_REDIRECT_URL": "https://www.example.com/"})
    answer = redirecting.test_client().get("/")
    assert answer.status_code == 302 and answer.headers["Location"] == "https://www.example.com/"
    for bad in ("javascript:alert(1)", "www.example.com", "https://x.example/\r\nSet-Cookie: a=b"):
        with pytest.raises(ConfigError, match="HOME_REDIRECT_URL"):
            load({"HOME_REDIRECT_URL": bad}, environ={})


def test_the_favicon_is_served_instead_of_a_404(client):
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert icon.get_data().startswith(b"<svg") and "nosniff" == icon.headers["X-Content-Type-Options"]


def test_join_redirects_to_a_page_that_names_the_address_and_a_reload_joins_nobody_again(client, db):
    data = {**join_form(email="zoë@bücher.example"), "csrf_token": csrf_token(client)}
    posted = client.post("/join", data=data, follow_redirects=False)
    assert posted.status_code == 303 and posted.headers["Location"].startswith("/join/sent")
    jobs_before = queued()
    for _reload in range(3):
        page = client.get(posted.headers["Location"])
        assert page.status_code == 200 and "zoë@bücher.example" in page.get_data(as_text=True)
    assert queued() == jobs_before
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Supporter)) == 1
    # A browser that never joined sees the page without anyone's address.
    assert "@" not in re.sub(r"<footer.*</footer>", "", client.application.test_client().get(
        "/join/sent").get_data(as_text=True), flags=re.S)


def test_the_resend_button_asks_for_a_new_mail_and_answers_like_for_anyone(client, db):
    data = {**join_form(email="ada@example.org"), "csrf_token": csrf_token(client)}
    page = client.post("/join", data=data).get_data(as_text=True)
    form = re.search(r'<form method="post" action="(/confirm/new[^"]*)">(.*?)</form>', page, re.S)
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form.group(2)))
    assert fields["email"] == "ada@example.org"
    answer = client.post(form.group(1).replace("&amp;", "&"), data=fields, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["Location"].startswith("/confirm/new/sent")
    unknown = client.post("/confirm/new", data={**fields, "email": "nobody@example.org"}, follow_redirects=False)
    assert unknown.status_code == 303 and unknown.headers["Location"] == answer.headers["Location"]


def test_unsubscribe_offers_fewer_mails_and_a_pause_without_making_leaving_harder(client, db):
    supporter = make_supporter("ada@example.org")
    path = f"/unsubscribe/{links.unsubscribe_token(supporter.id)}"
    html = client.get(path).get_data(as_text=True)
    assert html.index('id="unsubscribe-button"') < html.index("Rather hear from us less?")
    prefs = re.findall(r'href="(http://supporters.test/preferences/[^"#]+)#(asks_per_month|paused_until)"', html)
    assert {anchor for _url, anchor in prefs} == {"asks_per_month", "paused_until"}
    prefs_page = client.get(prefs[0][0].replace("http://supporters.test", "")).get_data(as_text=True)
    assert 'id="asks_per_month"' in prefs_page and 'id="paused_until"' in prefs_page
    # Leaving is still one POST, and its answer is a redirect to the "you have left" page.
    left = client.post(path, follow_redirects=False)
    assert left.status_code == 303
    assert "You have left" in client.get(left.headers["Location"]).get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Supporter, supporter.id).status is SupporterStatus.UNSUBSCRIBED


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "RATELIMIT_ENABLED": "0"}


def test_a_petition_shows_progress_and_a_reload_after_signing_signs_nothing_again(app, client, db, smtp_sink):
    manager = auth("manager", "owner@example.com")
    ada = make_supporter("ada@example.org")
    make_supporter("bea@example.org")
    campaign = create(client, manager, "vote", {"type": "petition", "statement": "Open on Sundays.", "goal": 3})
    launch(client, manager, campaign["id"], app)
    page = act_path(mails(smtp_sink)[ada.email])
    html = client.get(page).get_data(as_text=True)
    assert '<progress id="progress" max="3" value="0">' in html and '<label for="progress">' in html
    signed = client.post(page, data={"sign": "1"}, follow_redirects=False)
    assert signed.status_code == 303
    for _reload in range(3):
        result = client.get(signed.headers["Location"])
        assert result.status_code == 200 and '<progress id="progress" max="3" value="1">' in result.get_data(as_text=True)
    assert len(db.session.scalars(sa.select(Vote)).all()) == 1
    # A second submission from an old tab: the page as it is, saying so kindly (not "did not work").
    again = client.post(page, data={"sign": "1"})
    text = again.get_data(as_text=True)
    assert again.status_code == 409 and "already signed" in text and "This did not work" not in text
    assert len(db.session.scalars(sa.select(Vote)).all()) == 1
