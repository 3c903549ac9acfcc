"""Header injection at the edges: refused with 422 naming the field; no mail ever carries it (issue 18)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from campaigns import services
from tests.api_support import ApiCaller, assert_problem
from tests.engine_helpers import BODY, make_campaign, run_worker
from tests.factories import make_supporter

ATTACKS = ["Hello\r\nBcc: x@evil.example\r\n\r\nbody", "Hi\nReply-To: x@evil.example", "Hi\u2028Bcc: x@evil.example"]


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "RATELIMIT_ENABLED": "0"}


@pytest.fixture
def api(app, db):
    return ApiCaller(app, db)


def campaign(**overrides):
    return {"name": "News", "contents": {"en": {"subject": "News for {{first_name}}", "body": BODY}}, **overrides}


def field_of(response) -> list[str]:
    return [e["field"] for e in response.get_json().get("errors", [])]


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_subject_or_sender_name_with_line_breaks_is_refused_naming_the_field(api, attack):
    r = api.post("/campaigns", campaign(contents={"en": {"subject": attack, "body": BODY}}), role="manager")
    assert_problem(r, 422)
    assert any(f.startswith("contents.en") and f.endswith("subject") for f in field_of(r)), field_of(r)
    r = api.post("/campaigns", campaign(sender=f"{attack} <news@example.org>"), role="manager")
    assert_problem(r, 422)
    assert field_of(r) == ["sender"]
    assert api.get("/campaigns", role="viewer").get_json()["items"] == []


@pytest.mark.parametrize("attack", ATTACKS)
def test_tag_and_supporter_names_with_line_breaks_are_refused(api, attack):
    assert_problem(api.post("/tags", {"name": attack}, role="manager"), 422)
    assert_problem(api.post("/supporters", {"email": "ann@example.org", "name": attack}, role="manager"), 422)
    assert api.get("/tags", role="viewer").get_json()["items"] == []


def test_an_international_sender_and_address_are_accepted(api, smtp_sink):
    make_supporter("zoë@bücher.example", name="Zoë")
    r = api.post("/campaigns", campaign(sender="Grüne Füchse <news@bücher.example>"), role="manager")
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["sender"] == '"Grüne Füchse" <news@bücher.example>'
    r = api.post(f"/campaigns/{r.get_json()['id']}/test", {"to": "Test.Empfänger@Bücher.example"}, role="manager")
    assert r.status_code == 200, r.get_json()
    assert smtp_sink.messages[0][:2] == ("news@xn--bcher-kva.example", ["Test.Empfänger@xn--bcher-kva.example"])


def test_a_test_send_is_marked_and_carries_a_sample_supporters_working_links(api, app, smtp_sink):
    sample = make_supporter("sample@example.org", name="")
    cid = api.post("/campaigns", campaign(), role="manager").get_json()["id"]
    r = api.post(f"/campaigns/{cid}/test", {"to": "me@example.com"}, role="manager")
    assert r.status_code == 200 and r.get_json()["sample_supporter_id"] == sample.id
    msg = smtp_sink.handler.parsed()[0]
    assert msg["Subject"] == "[TEST] News for there"  # the sample has no name: the fallback shows
    assert msg["X-Campaign-Test"] == f"test links of sample supporter #{sample.id}"
    text = msg.get_payload()[0].get_payload(decode=True).decode()
    url = text.split("(")[-1].split(")")[0]
    assert url.startswith("http://supporters.test/preferences/")
    page = app.test_client().get(url.removeprefix("http://supporters.test"))
    assert page.status_code == 200  # a working link, not /preferences → 404


def test_a_test_send_answers_422_for_a_bad_or_refused_address_and_502_for_a_relay_failure(api, smtp_sink):
    cid = api.post("/campaigns", campaign(), role="manager").get_json()["id"]
    for bad in ("not an address", "a@b\r\nBcc: x@evil.example"):
        r = api.post(f"/campaigns/{cid}/test", {"to": bad}, role="manager")
        assert_problem(r, 422)
        assert field_of(r) == ["to"] or "to" in r.get_data(as_text=True)
    smtp_sink.handler.rcpt_replies["gone@example.org"] = "550 5.1.1 no such user"
    assert_problem(api.post(f"/campaigns/{cid}/test", {"to": "gone@example.org"}, role="manager"), 422)
    smtp_sink.handler.data_replies["busy@example.org"] = ["554 5.6.0 content refused"]
    assert_problem(api.post(f"/campaigns/{cid}/test", {"to": "busy@example.org"}, role="manager"), 502)
    smtp_sink.handler.drop_next_data = 1
    assert_problem(api.post(f"/campaigns/{cid}/test", {"to": "drop@example.org"}, role="manager"), 502)
    assert smtp_sink.messages == []


def test_header_text_that_bypassed_the_edge_never_becomes_a_header(app, db, smtp_sink):
    from campaigns.models import CampaignContent
    from core.extensions import db as _db

    for attack in ATTACKS:
        make_supporter(name=attack.replace("Hello", "Mallory"))
    c = make_campaign()
    _db.session.get(CampaignContent, c.contents[0].id).subject = "Hi {{first_name}}\r\nBcc: y@evil.example"
    _db.session.commit()
    services.launch(c.id)
    run_worker(app)
    assert len(smtp_sink.messages) == len(ATTACKS)
    for msg in smtp_sink.handler.parsed():
        assert not {"bcc", "reply-to"} & {k.lower() for k in msg.keys()}
        assert "\n" not in msg["Subject"] and "\r" not in msg["Subject"]


def test_imported_names_and_tags_with_line_breaks_are_rejected_rows_naming_the_field(runner, db, tmp_path):
    import csv

    from supporters.models import Supporter
    from tests.test_import import EVIDENCE

    path = tmp_path / "people.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)  # quoted fields may hold CR/LF in a valid CSV
        writer.writerow(["email", "name", "tags"])
        writer.writerow(["ann@example.org", "Ann", "fair"])
        writer.writerow(["mallory@example.org", "Mallory\r\nBcc: x@evil.example", ""])
        writer.writerow(["eve@example.org", "Eve", "ok,evil\nBcc: x@evil.example"])
        writer.writerow(["zoë@bücher.example", "Zoë", ""])
    result = runner.invoke(args=["import", "supporters", str(path), *EVIDENCE, "--rejects", str(tmp_path / "rej.csv")])
    assert result.exit_code == 0, result.output
    assert "inserted 2" in result.stdout and "rejected 2" in result.stdout
    with open(tmp_path / "rej.csv", encoding="utf-8", newline="") as fh:
        reasons = {row[2]: row[1] for row in list(csv.reader(fh))[1:]}
    assert "the name must not contain line breaks" in reasons["mallory@example.org"]
    assert "a tag name must not contain line breaks" in reasons["eve@example.org"]
    assert db.session.scalar(sa.select(Supporter.email).where(Supporter.email_normalized == "zoë@bücher.example")) \
        == "zoë@bücher.example"
