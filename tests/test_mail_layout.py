"""Every mail shows who sends it, why the person gets it and how to leave: the organisation
settings, the shared layout and footer on campaign and join mails, the List-Id per stream, and
the content lint of the campaign preview."""

from __future__ import annotations

from datetime import UTC, datetime
from email.header import decode_header, make_header

import pytest
import sqlalchemy as sa

from campaigns import services
from core.accounts import AuditEvent
from supporters.models import ConsentAction, ConsentEvent
from tests.api_support import ApiCaller, assert_problem
from tests.engine_helpers import make_campaign, run_worker
from tests.factories import make_supporter

ORG = {"organisation_name": "Gärtnerei Beispiel GmbH", "postal_address": "Hauptstraße 1\n12345 Musterstadt",
       "privacy_url": "https://example.org/privacy", "accent_color": "#2E7D32", "reply_to": "Team <team@example.org>",
       "campaign_sender": "Gärtnerei <news@example.org>", "transactional_sender": "hello@example.org"}


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "CAMPAIGN_RETRY_SECONDS": 0}


@pytest.fixture
def api(app, db):
    return ApiCaller(app, db)


def parts(message) -> dict[str, str]:
    return {p.get_content_type(): p.get_payload(decode=True).decode() for p in message.walk() if not p.is_multipart()}


def header(message, name: str) -> str:
    return str(make_header(decode_header(" ".join(str(message[name]).split()))))


# --- settings -----------------------------------------------------------------------------------

def test_a_fresh_install_has_complete_defaults_and_says_what_to_set(api):
    body = api.get("/settings", role="viewer").get_json()
    assert body["organisation_name"] is None and body["updated_at"] is None
    assert body["effective"]["organisation_name"] == "Supporters"  # the display name of MAIL_FROM
    assert body["effective"]["campaign_sender"] == body["effective"]["transactional_sender"]
    assert body["effective"]["accent_color"] == "#1f5c99"
    assert [w.split(":")[0] for w in body["warnings"]] == ["postal_address", "privacy_url"]


def test_an_admin_changes_the_settings_and_the_change_is_audited(app, api, db):
    response = api.call("PUT", "/settings", "admin", json=ORG)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["accent_color"] == "#2e7d32" and body["warnings"] == []
    assert body["effective"]["reply_to"] == "Team <team@example.org>"
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "settings.update"))
    assert sorted(event.detail["fields"]) == sorted(ORG)
    # null resets one field to its default, the others stay.
    body = api.call("PUT", "/settings", "admin", json={"campaign_sender": None}).get_json()
    assert body["campaign_sender"] is None and body["organisation_name"] == ORG["organisation_name"]
    assert body["effective"]["campaign_sender"] == app.config["MAIL_FROM"]


def test_managers_may_read_but_not_change_the_settings(api):
    assert api.get("/settings", role="manager").status_code == 200
    assert_problem(api.call("PUT", "/settings", "manager", json={"organisation_name": "X"}), 403)


@pytest.mark.parametrize("field, value", [
    ("privacy_url", "http://example.org/privacy"),
    ("logo_url", "javascript:alert(1)"),
    ("accent_color", "green"),
    ("accent_color", "#12345"),
    ("organisation_name", "Evil\r\nBcc: x@evil.example"),
    ("postal_address", "Street 1\x00"),
    ("reply_to", "not an address"),
    ("campaign_sender", "News <news@example.org>\nBcc: x@evil.example"),
    ("colour", "#ffffff"),
])
def test_bad_settings_are_refused_naming_the_field_and_change_nothing(api, field, value):
    body = assert_problem(api.call("PUT", "/settings", "admin", json={"organisation_name": "Kept", field: value}),
                          422, field)
    assert body["errors"]
    assert api.get("/settings").get_json()["organisation_name"] is None


# --- campaign mails -----------------------------------------------------------------------------

def _consent_on(supporter, when: datetime, db) -> None:
    db.session.execute(sa.update(ConsentEvent).where(ConsentEvent.supporter_id == supporter.id)
                       .values(occurred_at=when))
    db.session.commit()


def test_every_campaign_mail_has_the_footer_in_its_language_with_the_consent_date(app, api, db, smtp_sink):
    api.call("PUT", "/settings", "admin", json=ORG)
    ada = make_supporter("ada@example.org", name="Ada", language="en")
    bea = make_supporter("bea@example.org", name="Bea", language="de")
    _consent_on(ada, datetime(2025, 3, 5, 10, tzinfo=UTC), db)
    _consent_on(bea, datetime(2024, 11, 30, 10, tzinfo=UTC), db)
    # A body without any link of its own: the footer still has both.
    campaign = make_campaign(contents={"en": {"subject": "News", "body": "Hello {{first_name}}, we have **news**."},
                                       "de": {"subject": "Neues", "body": "Hallo {{first_name}}, es gibt **Neues**."}})
    services.launch(campaign.id)
    run_worker(app)
    mails = {m["To"]: m for m in smtp_sink.handler.parsed()}
    en, de = mails["ada@example.org"], mails["bea@example.org"]
    for msg, why, unsubscribe in ((en, "on 5 March 2025 you agreed to hear from", "Unsubscribe"),
                                  (de, "am 30. November 2024 eingewilligt", "Abmelden")):
        body = parts(msg)
        text, html = body["text/plain"], body["text/html"]
        unsub_url = msg["List-Unsubscribe"].strip("<>")
        assert why in text and why in html
        assert "Gärtnerei Beispiel GmbH" in text and "Hauptstraße 1" in text and "12345 Musterstadt" in text
        assert "Hauptstraße 1<br>12345 Musterstadt" in html
        assert f"{unsubscribe}: {unsub_url}" in text and f'href="{unsub_url}"' in html
        assert "/preferences/" in text and 'href="http://supporters.test/preferences/' in html
        assert "https://example.org/privacy" in text and "https://example.org/privacy" in html
        assert text.index("-- \n") < text.index(why)  # the footer follows the signature separator
        assert 'name="color-scheme" content="light dark"' in html and "prefers-color-scheme: dark" in html
        assert "<table" in html and "fonts.googleapis" not in html and "@import" not in html
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert header(msg, "List-Id") == "Gärtnerei Beispiel GmbH campaigns <campaigns.example.org>"
        assert header(msg, "Reply-To") == "Team <team@example.org>"
        assert header(msg, "From") == "Gärtnerei <news@example.org>"
    assert "Hello Ada, we have <strong>news</strong>." in parts(en)["text/html"].replace("\r\n", "\n")


def test_the_consent_date_comes_with_the_recipient_query_not_a_query_per_mail(app, db, smtp_sink):
    from sqlalchemy import event

    from core.extensions import db as ext_db

    for i in range(6):
        make_supporter(f"p{i}@example.org")
    campaign = make_campaign()
    services.launch(campaign.id)
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    engine = ext_db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        run_worker(app)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(smtp_sink.messages) == 6
    ledger_reads = [s for s in statements if "consent_events" in s]
    assert len(ledger_reads) == 1, ledger_reads  # one claim, one recipient query
    today = datetime.now(UTC)
    assert f"on {today.day} " in parts(smtp_sink.handler.parsed()[0])["text/plain"]


# --- the join mails -----------------------------------------------------------------------------

def test_the_confirmation_mail_shares_the_layout_and_is_sent_from_the_transactional_stream(app, api, db,
                                                                                             smtp_sink):
    from core.mail import get_transport
    from supporters.mails import send_confirmation_mail

    api.call("PUT", "/settings", "admin", json=ORG)
    supporter = make_supporter("new@example.org", status="pending", language="de", name=None)
    send_confirmation_mail(supporter, None)
    get_transport().close()
    [(envelope_from, _to, _raw)] = smtp_sink.messages
    [msg] = smtp_sink.handler.parsed()
    assert envelope_from == "hello@example.org" and msg["From"] == "hello@example.org"
    assert header(msg, "List-Id") == "Gärtnerei Beispiel GmbH notices <transactional.example.org>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    body = parts(msg)
    for part in body.values():
        assert "Formular von Gärtnerei Beispiel GmbH eingetragen" in part and "Hauptstraße 1" in part
        assert "/confirm/" in part and "/unsubscribe/" in part
        assert "/preferences/" not in part  # nothing to set before the confirmation
    assert "#2e7d32" in body["text/html"] and 'class="sp-card"' in body["text/html"]


# --- preview and lint ---------------------------------------------------------------------------

def _codes(preview: dict, language: str = "en") -> set[str]:
    return {issue["code"] for issue in preview["lint"][language]}


def test_the_preview_warns_about_content_that_looks_like_spam(app, db):
    make_supporter()
    campaign = make_campaign(contents={"en": {
        "subject": "A subject that goes on and on and on, far longer than any inbox will ever show it",
        "body": "![Big banner](https://example.org/banner.png)\n\n<http://example.org/offer>"}})
    preview = services.preview(campaign.id)
    assert _codes(preview) >= {"no_text", "image_only", "insecure_link", "long_subject",
                               "no_unsubscribe_placeholder", "settings.postal_address"}
    insecure = next(i for i in preview["lint"]["en"] if i["code"] == "insecure_link")
    assert "http://example.org/offer" in insecure["message"]
    sample = preview["samples"]["en"]
    assert "5 March 2026" in sample["text"] and "http://supporters.test/unsubscribe/SAMPLE" in sample["html"]


def test_clean_content_gets_no_warnings(app, api, db):
    api.call("PUT", "/settings", "admin", json=ORG)
    campaign = make_campaign(contents={"en": {"subject": "News from the garden", "body":
                                              "Hello {{first_name}}, see [our news](https://example.org/news).\n\n"
                                              "[Leave]({{unsubscribe_url}})"}})
    assert services.preview(campaign.id)["lint"] == {"en": []}


def test_a_spamassassin_score_is_shown_when_spamassassin_is_installed(app, db, tmp_path, monkeypatch):
    fake = tmp_path / "spamassassin"
    fake.write_text("#!/bin/sh\ncat >/dev/null\nprintf 'X-Spam-Status: No, score=1.3 required=5.0\\n\\ttests=NONE\\n'\n")
    fake.chmod(0o755)
    campaign = make_campaign()
    monkeypatch.setenv("PATH", "/nonexistent")
    assert "spamassassin" not in services.preview(campaign.id)["samples"]["en"]
    monkeypatch.setenv("PATH", str(tmp_path))
    assert services.preview(campaign.id)["samples"]["en"]["spamassassin"] == {"score": 1.3, "required": 5.0}


def test_the_consent_of_an_import_counts_from_its_recorded_date(app, db, smtp_sink):
    supporter = make_supporter("imported@example.org", consent=False)
    db.session.add(ConsentEvent(supporter_id=supporter.id, purpose="campaigns", action=ConsentAction.GRANTED,
                                method="import", occurred_at=datetime(2023, 1, 9, tzinfo=UTC)))
    db.session.commit()
    services.launch(make_campaign().id)
    run_worker(app)
    assert "on 9 January 2023 you agreed" in parts(smtp_sink.handler.parsed()[0])["text/plain"]


def test_stream_headers_stay_on_one_line_whatever_the_organisation_is_called(app):
    from dataclasses import replace

    from core.org_settings import current_org
    from supporters.mail_layout import stream_headers

    org = replace(current_org(), name="Gärtnerei Überall " * 11, reply_to="Zoë Überall <team@example.org>")
    headers = stream_headers(org, "campaigns", "News <news@example.org>")
    assert headers["List-Id"].endswith(" <campaigns.example.org>") and headers["List-Id"].isascii()
    assert not any(c in value for value in headers.values() for c in "\r\n")
    assert str(make_header(decode_header(headers["Reply-To"]))) == "Zoë Überall <team@example.org>"
