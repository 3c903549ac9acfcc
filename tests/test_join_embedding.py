"""Embedding /join in an iframe on the company's site: framing headers, cookies, and CSRF still on."""

import pytest

import config
from tests.test_join_support import CSRF_RE, join_form, supporters


def embedding_app(settings, origins="https://www.example.com https://*.shop.example"):
    from wsgi import create_app

    return create_app({**settings, "EMBED_ALLOWED_ORIGINS": origins})


def frame_ancestors(response) -> str:
    policy = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))
    return policy["frame-ancestors"]


def test_by_default_only_our_own_pages_may_frame_the_form(client):
    page = client.get("/join")
    assert frame_ancestors(page) == "'self'"
    assert page.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "SameSite=Lax" in page.headers["Set-Cookie"]


def test_configured_origins_may_frame_the_join_form_but_never_the_preferences(app, settings):
    embed = embedding_app(settings)
    client = embed.test_client()
    page = client.get("/join")
    assert frame_ancestors(page) == "'self' https://www.example.com https://*.shop.example"
    assert "X-Frame-Options" not in page.headers  # it cannot name other origins; CSP decides
    from supporters import links
    from tests.factories import make_supporter

    with embed.app_context():
        supporter = make_supporter()
        for path in (f"/preferences/{links.preferences_token(supporter.id)}",
                     f"/unsubscribe/{links.unsubscribe_token(supporter.id)}"):
            other = client.get(path)
            assert frame_ancestors(other) == "'self'" and other.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_inside_a_third_party_iframe_the_session_cookie_is_partitioned_and_csrf_still_works(app, settings):
    embed = embedding_app(settings)
    client = embed.test_client()
    base = "https://supporters.test"
    page = client.get("/join", base_url=base)
    cookie = page.headers["Set-Cookie"]
    assert "SameSite=None" in cookie and "Secure" in cookie and "Partitioned" in cookie
    token = CSRF_RE.search(page.get_data(as_text=True)).group(1)
    # The form posts to our own origin from inside the frame, so the Referer is ours.
    headers = {"Referer": f"{base}/join", "Origin": base}
    forged = client.post("/join", base_url=base, data={**join_form(), "csrf_token": "forged"}, headers=headers)
    assert forged.status_code == 400
    ok = client.post("/join", base_url=base, data={**join_form(), "csrf_token": token}, headers=headers)
    assert ok.status_code == 303 and ok.headers["Location"].startswith("/join/sent")
    # The "check your inbox" page, in the frame too, names the address (from the partitioned session).
    sent = client.get(ok.headers["Location"], base_url=base)
    assert sent.status_code == 200 and "ada@example.org" in sent.get_data(as_text=True)
    with embed.app_context():
        from core.extensions import db

        assert [s.email for s in supporters(db)] == ["ada@example.org"]


@pytest.mark.parametrize("value", ["javascript:alert(1)", "https://a.example/path", "https://a.example'",
                                   "https://a.example;script-src", "*", "https://user@a.example"])
def test_bad_embedding_origins_are_refused_at_startup(value):
    with pytest.raises(config.ConfigError, match="EMBED_ALLOWED_ORIGINS"):
        config.load(environ={"APP_ENV": "testing", "EMBED_ALLOWED_ORIGINS": value})


def test_embedding_origins_may_be_separated_by_commas_or_spaces():
    settings = config.load(environ={"APP_ENV": "testing",
                                    "EMBED_ALLOWED_ORIGINS": "https://a.example, http://localhost:8080"})
    assert settings["EMBED_ALLOWED_ORIGINS"] == ("https://a.example", "http://localhost:8080")
    assert config.load(environ={"APP_ENV": "testing"})["EMBED_ALLOWED_ORIGINS"] == ()


def test_a_bad_join_rate_limit_is_refused_at_startup():
    with pytest.raises(config.ConfigError, match="JOIN_RATE_LIMIT"):
        config.load(environ={"APP_ENV": "testing", "JOIN_RATE_LIMIT": "often"})
