"""GET and POST /join: the form, what a submission stores and sends, and every kind of bad input."""

import threading
from email.header import decode_header, make_header

import pytest
import sqlalchemy as sa

from supporters.consent import CURRENT_VERSION, consent_text, text_hash
from supporters.models import ConsentEvent, Supporter, SupporterStatus, supporter_tags
from tests.factories import make_supporter, make_tag
from tests.test_join_support import (
    csrf_token,
    header,
    join_form,
    outbox,
    parts,
    post_join,
    queued,
    run_mail_worker,
    supporters,
    trail,
)


def subject(message) -> str:
    return str(make_header(decode_header(message["Subject"])))


# --- the form ------------------------------------------------------------------------------------

def test_the_form_has_the_public_field_names_and_an_unticked_consent_box(client):
    page = client.get("/join")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    for name in ("email", "name", "kind", "language", "consent", "csrf_token", "ref", "website"):
        assert f'name="{name}"' in html
    for kind in ("fan", "former_employee", "supplier", "partner", "other"):
        assert f'value="{kind}"' in html
    consent_box = html[html.index('id="consent"'):].split(">", 1)[0]
    assert "checked" not in consent_box
    assert consent_text("en").text in html
    assert page.headers["Cache-Control"] == "no-store"


def test_the_form_speaks_german_by_query_or_accept_language(client):
    assert "Werden Sie Unterstützer:in" in client.get("/join?lang=de").get_data(as_text=True)
    page = client.get("/join", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    html = page.get_data(as_text=True)
    assert '<html lang="de">' in html and consent_text("de").text in html
    assert "Join our supporters" in client.get("/join?lang=fr", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "Accept-Language" in page.headers["Vary"]


def test_only_public_tags_are_offered_as_interests(client):
    make_tag("reviews", public=True)
    make_tag("vip-internal", public=False)
    html = client.get("/join").get_data(as_text=True)
    assert 'value="reviews"' in html
    assert "vip-internal" not in html


def test_a_known_referral_code_is_welcomed_and_carried_in_the_form(client):
    make_supporter(referral_code="friend123")
    html = client.get("/join?ref=friend123").get_data(as_text=True)
    assert "A friend invited you" in html
    assert 'name="ref" value="friend123"' in html
    assert "A friend invited you" not in client.get("/join?ref=nobody").get_data(as_text=True)


# --- a good submission ---------------------------------------------------------------------------

def test_joining_stores_a_pending_supporter_and_the_consent_grant_then_queues_the_mail(client, db):
    make_tag("reviews", public=True)
    page = post_join(client, "/join?lang=de", email="  Ada@Example.ORG ", name="Ada Lovelace", kind="supplier",
                     language="de", interests="reviews")
    assert page.status_code == 200
    assert "Fast geschafft" in page.get_data(as_text=True)
    [supporter] = supporters(db)
    assert supporter.email == "Ada@example.org" and supporter.email_normalized == "ada@example.org"
    assert (supporter.status, supporter.kind.value, supporter.language, supporter.name, supporter.source) == \
        (SupporterStatus.PENDING, "supplier", "de", "Ada Lovelace", "web_form")
    assert [t.name for t in supporter.tags] == ["reviews"]
    assert supporter.referral_code is None  # only active supporters get one
    [grant] = db.session.scalars(sa.select(ConsentEvent)).all()
    assert (grant.purpose, grant.action.value, grant.method) == ("campaigns", "granted", "web_form")
    assert grant.text_version == CURRENT_VERSION
    assert grant.text_hash == text_hash(consent_text("de").text)  # the German text the page showed
    assert grant.ip == "127.0.0.1" and grant.user_agent.startswith("Werkzeug")
    assert queued() == ["supporters.mail_jobs.send_confirmation"]


def test_the_confirmation_mail_is_sent_by_the_worker_in_both_formats_with_unsubscribe_headers(app, db, settings,
                                                                                               smtp_sink):
    from wsgi import create_app

    smtp_app = create_app({**settings, "SMTP_URL": smtp_sink.url})
    client = smtp_app.test_client()
    post_join(client, email="grace@example.org", name="<script>alert(1)</script> & Co")
    run_mail_worker(smtp_app)
    [message] = smtp_sink.handler.parsed()
    assert message["To"] == "grace@example.org"
    assert message["From"] == "Supporters <supporters@example.org>"
    assert subject(message) == "Please confirm your support"
    assert header(message, "List-Unsubscribe").startswith("<http://supporters.test/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    body = parts(message)
    assert "<script>alert(1)</script> & Co" in body["text/plain"]
    assert "<script>" not in body["text/html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in body["text/html"]
    assert "http://supporters.test/confirm/" in body["text/plain"]
    assert 'href="http://supporters.test/confirm/' in body["text/html"]


def test_a_german_supporter_gets_the_mail_in_german(app, client, db):
    post_join(client, "/join?lang=de", language="de")
    run_mail_worker(app)
    [message] = outbox(app)
    assert subject(message) == "Bitte bestätigen Sie Ihre Unterstützung"
    assert "Der Link gilt 7 Tage" in parts(message)["text/plain"]


def test_the_answer_is_the_same_for_new_pending_and_active_addresses(client, db):
    make_supporter("active@example.org")
    make_supporter("pending@example.org", status="pending")
    answers = set()
    for e in ("new@example.org", "pending@example.org", "active@example.org"):
        page = post_join(client, email=e).get_data(as_text=True)
        assert e in page  # "check your inbox" names the address this browser entered
        answers.add(page.replace(e, "ADDRESS"))
    assert len(answers) == 1


def test_an_active_supporter_who_joins_again_gets_a_notice_instead_of_a_second_row(app, client, db):
    active = make_supporter("Active@Example.org", name="Ann")
    page = post_join(client, email="active@example.org")
    assert page.status_code == 200
    assert len(supporters(db)) == 1
    assert trail(db, active.id) == [("granted", "test")]  # nothing new in the ledger
    run_mail_worker(app)
    [message] = outbox(app)
    assert subject(message) == "You are already one of our supporters"
    text = parts(message)["text/plain"]
    assert "http://supporters.test/preferences/" in text
    assert f"http://supporters.test/join?ref={active.referral_code}" in text
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # A second attempt right away does not mail them again.
    post_join(client, email="active@example.org")
    run_mail_worker(app)
    assert len(outbox(app)) == 1


def test_a_pending_supporter_gets_the_confirmation_again_but_rate_limited(app, client, db):
    post_join(client, email="ada@example.org")
    run_mail_worker(app)
    post_join(client, email="ada@example.org")
    run_mail_worker(app)
    post_join(client, email="ADA@example.org")
    run_mail_worker(app)
    [supporter] = supporters(db)
    assert len(outbox(app)) == 2  # the first mail and one repeat; the third attempt is throttled
    # The repeat that mails is on record; a throttled one writes nothing (a flood of repeats of
    # someone else's address must not fill that person's ledger with strangers' IPs).
    assert trail(db, supporter.id) == [("granted", "web_form")] * 2


def test_someone_who_left_can_join_again_through_a_new_double_opt_in(app, client, db):
    left = make_supporter("left@example.org", status="unsubscribed")
    post_join(client, email="left@example.org")
    run_mail_worker(app)  # a known address is sorted out in the background (equal work in the request)
    db.session.expire_all()
    assert db.session.get(Supporter, left.id).status is SupporterStatus.PENDING
    [message] = outbox(app)
    assert subject(message) == "Please confirm your support"


def test_concurrent_double_submits_of_one_address_create_one_supporter(app, db):
    clients = [app.test_client() for _ in range(6)]
    barrier = threading.Barrier(len(clients))
    results = []

    def submit(c):
        data = {**join_form(email="twice@example.org"), "csrf_token": csrf_token(c)}
        barrier.wait()
        results.append(c.post("/join", data=data).status_code)  # 303 to "check your inbox"

    threads = [threading.Thread(target=submit, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [303] * len(clients)
    assert [s.email_normalized for s in supporters(db)] == ["twice@example.org"]
    assert queued().count("supporters.mail_jobs.send_confirmation") <= 2


def test_the_rate_limit_answers_with_a_friendly_page(app, settings):
    from wsgi import create_app

    limited = create_app({**settings, "JOIN_RATE_LIMIT": "2 per minute"})
    client = limited.test_client()
    with limited.app_context():
        assert post_join(client, email="a1@example.org").status_code == 200
        assert post_join(client, email="a2@example.org").status_code == 200
        page = post_join(client, "/join?lang=de", email="a3@example.org")
        assert page.status_code == 429
        assert "Zu viele Versuche" in page.get_data(as_text=True)
        assert page.mimetype == "text/html"
        assert int(page.headers["Retry-After"]) > 0
        assert client.get("/join").status_code == 200  # reading the form is not limited
        from core.extensions import db
        from tests.test_join_support import supporters as rows

        assert [s.email for s in rows(db)] == ["a1@example.org", "a2@example.org"]


@pytest.mark.parametrize("proxies", [0, 1])
def test_behind_a_trusted_proxy_limits_and_the_ledger_see_the_visitor_not_the_proxy(app, settings, proxies):
    from core.extensions import db
    from wsgi import create_app

    proxied = create_app({**settings, "JOIN_RATE_LIMIT": "1 per minute", "TRUSTED_PROXIES": str(proxies)})
    client = proxied.test_client()

    def join_from(address: str, email: str) -> int:
        return post_join(client, headers={"X-Forwarded-For": address}, email=email).status_code

    with proxied.app_context():
        assert join_from("203.0.113.7", "v1@example.org") == 200
        # Another visitor through the same proxy has a limit of their own, but only when the
        # proxy is trusted: otherwise the header is ignored (anyone could send one).
        assert join_from("198.51.100.4", "v2@example.org") == (200 if proxies else 429)
        assert join_from("203.0.113.7", "v3@example.org") == 429
        ips = db.session.scalars(sa.select(ConsentEvent.ip).order_by(ConsentEvent.id)).all()
        assert ips == (["203.0.113.7", "198.51.100.4"] if proxies else ["127.0.0.1"])


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, field, message", [
    ({"email": ""}, "email", "Please enter your email address."),
    ({"email": "not-an-address"}, "email", "This does not look like a valid email address."),
    ({"email": "a@b"}, "email", "This does not look like a valid email address."),
    ({"email": "x" * 250 + "@example.org"}, "email", "The email address is too long (at most 254 characters)."),
    ({"email": "ada@exa mple.org"}, "email", "This does not look like a valid email address."),
    ({"name": "N" * 201}, "name", "The name is too long (at most 200 characters)."),
    ({"name": "Ada\nBcc: x@example.org"}, "name", "The name contains characters we cannot accept."),
    ({"consent": None}, "consent", "Please tick the box to agree; without your consent we cannot write to you."),
    ({"kind": None}, "kind", "Please choose how you are connected to us."),
    ({"kind": "ceo"}, "kind", "Please choose one of the listed options."),
    ({"language": "fr"}, "language", "Please choose German or English."),
    ({"interests": "no-such-tag"}, "interests", "Please choose only from the listed interests."),
    ({"website": "http://spam.example"}, "website", "This submission looked automated"),
])
def test_bad_input_comes_back_with_a_message_beside_the_field_and_stores_nothing(client, db, fields, field, message):
    page = post_join(client, **fields)
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert f'id="{field}-error"' in html
    assert message.replace("&", "&amp;") in html
    assert 'role="alert"' in html
    assert supporters(db) == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ConsentEvent)) == 0
    assert queued() == []


def test_bad_input_keeps_what_was_typed_and_speaks_the_page_language(client, db):
    page = post_join(client, "/join?lang=de", email="ada@example.org", name="Ada <b>", consent=None)
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert 'value="ada@example.org"' in html and 'value="Ada &lt;b&gt;"' in html
    assert "Bitte setzen Sie das Häkchen" in html


def test_a_missing_or_wrong_csrf_token_shows_the_form_again_and_stores_nothing(client, db):
    client.get("/join")
    missing = client.post("/join", data=join_form())
    wrong = client.post("/join", data={**join_form(), "csrf_token": "forged"})
    for page in (missing, wrong):
        html = page.get_data(as_text=True)
        assert page.status_code == 400
        assert "The form had expired" in html
        assert 'value="ada@example.org"' in html  # nothing typed is lost
        assert 'name="csrf_token" value="' in html  # and a fresh token lets the next submit work
    assert supporters(db) == [] and queued() == []
    assert client.post("/join", data={**join_form(), "csrf_token": csrf_token(client)}).status_code == 200


def test_a_submission_without_a_language_uses_the_page_language(client, db):
    post_join(client, "/join?lang=de", language=None)
    assert supporters(db)[0].language == "de"


def test_the_consent_version_the_page_showed_is_recorded_even_if_unknown_values_are_posted(client, db):
    post_join(client, consent_version="made-up")
    grant = db.session.scalar(sa.select(ConsentEvent))
    assert grant.text_version == CURRENT_VERSION


def test_private_tags_cannot_be_chosen_through_the_form(client, db):
    make_tag("vip-internal", public=False)
    page = post_join(client, interests="vip-internal")
    assert page.status_code == 422
    assert db.session.scalar(sa.select(sa.func.count()).select_from(supporter_tags)) == 0


def test_a_signup_is_kept_when_redis_is_down_and_no_page_fails(app, settings, db):
    from tests.servers import free_port
    from wsgi import create_app

    no_redis = create_app({**settings, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "RATELIMIT_ENABLED": "0"})
    client = no_redis.test_client()
    with no_redis.app_context():
        page = post_join(client, email="kept@example.org")
        assert page.status_code == 200
        again = post_join(client, email="kept@example.org")  # the pending path needs Redis for its throttle
        assert again.status_code == 200
        [row] = supporters(db)
        assert (row.email, row.status, row.confirmation_sent_at) == ("kept@example.org", SupporterStatus.PENDING, None)


def test_a_known_address_costs_the_request_no_more_database_work_than_a_new_one(app, client, db):
    """Equal work, so the answer's timing does not tell whether an address is known (issue 12)."""
    make_supporter("pending@example.org", status="pending")
    make_supporter("active@example.org")
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement.split(None, 1)[0].upper())

    # The per-process cache of subscribed webhook types reloads with one SELECT every few seconds,
    # for whichever address comes then: warm it, so the comparison below is of the join's own work.
    from core import events

    events.subscribed_types()
    engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        work = {}
        for email in ("new@example.org", "pending@example.org", "active@example.org"):
            data = {**join_form(email=email), "csrf_token": csrf_token(client)}
            statements.clear()  # the POST alone: not the form's GET, not the page after the redirect
            assert client.post("/join", data=data, follow_redirects=False).status_code == 303
            work[email] = [s for s in statements if s not in ("SAVEPOINT", "RELEASE", "ROLLBACK")]
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    # The known addresses' statements are the first of a new address's (the INSERT that fails on
    # the unique index), and no look-up or update of the known person happens in the request.
    known = work["pending@example.org"]
    assert known == work["active@example.org"] == work["new@example.org"][:len(known)], work
    assert known.count("SELECT") == work["new@example.org"].count("SELECT") and "UPDATE" not in known, work
    assert queued().count("supporters.join.repeat_join") == 2


def test_a_flood_of_repeats_of_a_pending_address_writes_one_grant_and_one_mail(app, client, db):
    pending = make_supporter("flood@example.org", status="pending")
    for _ in range(5):
        post_join(client, email="flood@example.org")
    run_mail_worker(app)
    assert trail(db, pending.id) == [("granted", "test"), ("granted", "web_form")]
    assert len(outbox(app)) == 1
