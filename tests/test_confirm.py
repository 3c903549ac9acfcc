"""Double opt-in: the confirm link, what confirming records, referrals, and every broken link."""

import time

import sqlalchemy as sa
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from core.queues import get_queue
from supporters import confirm, links, mail_jobs, preferences
from supporters.consent import consent_text
from supporters.models import (
    ConsentEvent,
    Supporter,
    SupporterStatus,
    Suppression,
    SuppressionReason,
    email_hash,
)
from tests.factories import make_supporter
from tests.test_join_support import link, outbox, post_join, queued, run_mail_worker, supporters, trail


def joined_and_mailed(app, client, **fields) -> tuple[Supporter, str]:
    """Join through the form, let the worker send the mail, return the supporter and the link."""
    post_join(client, **fields)
    run_mail_worker(app)
    email = fields.get("email", "ada@example.org")
    messages = [m for m in outbox(app) if m["To"] == email]
    from core.extensions import db

    supporter = db.session.scalar(sa.select(Supporter).where(Supporter.email_normalized == email))
    return supporter, link(messages[-1], "confirm")


def old_token(app, purpose: str, payload, age_seconds: int) -> str:
    class PastSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - age_seconds

    serializer = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=f"supporters/{purpose}", signer=PastSigner)
    return serializer.dumps(payload)


def test_opening_the_link_shows_one_button_and_changes_nothing(app, client, db):
    supporter, path = joined_and_mailed(app, client)
    page = client.get(path)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="confirm-button"' in html and consent_text("en").text in html
    assert "<script" not in html.split("</main>")[0]  # nothing submits itself: scanners run scripts too
    assert supporters(db)[0].status is SupporterStatus.PENDING
    assert trail(db, supporter.id) == [("granted", "web_form")]


def test_confirming_activates_records_the_confirmation_and_shows_the_referral_link(app, client, db):
    supporter, path = joined_and_mailed(app, client)
    page = client.post(path, headers={"User-Agent": "Mail client 1.0"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    [active] = supporters(db)
    assert active.status is SupporterStatus.ACTIVE and active.confirmed_at is not None
    assert active.referral_code and len(active.referral_code) == 8
    assert f"http://supporters.test/join?ref={active.referral_code}" in html
    assert "wa.me" in html and "linkedin.com" in html  # share buttons
    assert trail(db, supporter.id) == [("granted", "web_form"), ("confirmed", "confirm_link")]
    grant, confirmation = db.session.scalars(sa.select(ConsentEvent).order_by(ConsentEvent.id)).all()
    assert (confirmation.text_version, confirmation.text_hash) == (grant.text_version, grant.text_hash)
    assert confirmation.user_agent == "Mail client 1.0" and confirmation.ip == "127.0.0.1"
    assert confirmation.note == f"confirms grant {grant.id}"


def test_confirming_twice_changes_nothing_the_second_time(app, client, db):
    supporter, path = joined_and_mailed(app, client)
    client.post(path)
    code = supporters(db)[0].referral_code
    again = client.post(path)
    assert again.status_code == 200
    assert supporters(db)[0].referral_code == code
    assert trail(db, supporter.id) == [("granted", "web_form"), ("confirmed", "confirm_link")]
    assert client.get(path).status_code == 200  # and the link still shows a friendly page


def test_confirm_needs_no_cookie_or_csrf_token_because_the_signed_link_is_the_credential(app, client, db):
    supporter, path = joined_and_mailed(app, client)
    fresh = app.test_client()
    assert fresh.post(path).status_code == 200
    assert supporters(db)[0].status is SupporterStatus.ACTIVE


def test_a_tampered_or_foreign_token_gets_a_page_offering_a_new_link(app, client, db):
    supporter, path = joined_and_mailed(app, client)
    foreign = links.unsubscribe_token(supporter.id)
    for bad in (path[:-3] + "xyz", f"/confirm/{foreign}", "/confirm/nonsense", "/confirm/" + "a" * 3000):
        for method in (client.get, client.post):
            page = method(bad)
            html = page.get_data(as_text=True)
            assert page.status_code == 400, bad
            assert "This link is not valid" in html and "Send me a new link" in html
    assert supporters(db)[0].status is SupporterStatus.PENDING
    assert trail(db, supporter.id) == [("granted", "web_form")]


def test_an_expired_link_offers_a_new_one_which_arrives_and_works(app, client, db):
    supporter, _path = joined_and_mailed(app, client)
    grant_id = db.session.scalar(sa.select(ConsentEvent.id))
    expired = old_token(app, "confirm", {"s": supporter.id, "g": grant_id}, links.CONFIRM_MAX_AGE + 60)
    page = client.post(f"/confirm/{expired}")
    html = page.get_data(as_text=True)
    assert page.status_code == 410 and "This link has expired" in html
    assert f'name="token" value="{expired}"' in html
    assert supporters(db)[0].status is SupporterStatus.PENDING
    from tests.test_join_support import CSRF_RE

    answer = client.post("/confirm/new", data={"token": expired, "csrf_token": CSRF_RE.search(html).group(1)})
    assert answer.status_code == 200 and "A new link is on its way" in answer.get_data(as_text=True)
    run_mail_worker(app)
    messages = outbox(app)
    assert len(messages) == 2
    assert client.post(link(messages[-1], "confirm")).status_code == 200
    assert supporters(db)[0].status is SupporterStatus.ACTIVE


def test_asking_for_a_new_link_by_address_tells_nobody_whether_the_address_is_known(app, client, db):
    make_supporter("known@example.org", status="pending")
    make_supporter("active@example.org")
    page = client.get("/confirm/garbage")
    from tests.test_join_support import CSRF_RE

    token = CSRF_RE.search(page.get_data(as_text=True)).group(1)
    answers = {client.post("/confirm/new", data={"email": e, "csrf_token": token}).get_data(as_text=True)
               for e in ("known@example.org", "active@example.org", "nobody@example.org", "")}
    assert len(answers) == 1
    assert queued() == ["supporters.mail_jobs.send_confirmation"]  # only the pending one gets a link


def test_a_link_sent_before_a_withdrawal_cannot_bring_the_consent_back(app, client, db):
    supporter, path = joined_and_mailed(app, client)
    preferences.withdraw(supporter.id, method="unsubscribe_page")
    page = client.post(path)
    assert page.status_code == 409
    assert "no longer valid" in page.get_data(as_text=True)
    assert supporters(db)[0].status is SupporterStatus.UNSUBSCRIBED
    # Joining again starts a new double opt-in; the old link stays void, the new one works.
    post_join(client)
    run_mail_worker(app)
    assert client.post(path).status_code == 409
    new_path = link(outbox(app)[-1], "confirm")
    assert new_path != path
    assert client.post(new_path).status_code == 200
    assert supporters(db)[0].status is SupporterStatus.ACTIVE
    assert trail(db, supporter.id) == [("granted", "web_form"), ("withdrawn", "unsubscribe_page"),
                                       ("granted", "web_form"), ("confirmed", "confirm_link")]


def test_an_erased_supporters_link_is_invalid(app, client, db):
    from supporters.privacy import erase_supporter

    supporter, path = joined_and_mailed(app, client)
    erase_supporter(db.session.get(Supporter, supporter.id))
    db.session.commit()
    assert client.post(path).status_code == 400


# --- referrals -----------------------------------------------------------------------------------

def test_who_brought_whom_is_recorded_only_once_the_newcomer_confirms(app, client, db):
    referrer = make_supporter("friend@example.org", referral_code="friendly1")
    newcomer, path = joined_and_mailed(app, client, email="new@example.org", ref="friendly1")
    db.session.expire_all()
    assert db.session.get(Supporter, newcomer.id).referred_by_id is None
    client.post(path)
    db.session.expire_all()
    assert db.session.get(Supporter, newcomer.id).referred_by_id == referrer.id


def test_unknown_referral_codes_are_ignored_silently(app, client, db):
    newcomer, path = joined_and_mailed(app, client, email="new@example.org", ref="nosuchcode")
    assert client.post(path).status_code == 200
    db.session.expire_all()
    assert db.session.get(Supporter, newcomer.id).referred_by_id is None


def test_malformed_referral_codes_are_dropped_at_the_door(app, client, db):
    post_join(client, email="new@example.org", ref="<script>" + "x" * 40)
    assert supporters(db)[0].joined_with_ref is None


def test_self_referral_is_ignored(app, client, db):
    supporter, path = joined_and_mailed(app, client)
    client.post(path)
    code = supporters(db)[0].referral_code
    preferences.withdraw(supporter.id, method="unsubscribe_page")
    post_join(client, ref=code)  # joins again through their own link
    run_mail_worker(app)
    client.post(link(outbox(app)[-1], "confirm"))
    [again] = supporters(db)
    assert again.status is SupporterStatus.ACTIVE and again.referred_by_id is None
    assert again.referral_code == code  # the personal link stays the same


def test_referral_codes_are_unique_and_unguessable_in_length():
    codes = {confirm.new_referral_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(c) == 8 and confirm.is_referral_code(c) for c in codes)


# --- the job -------------------------------------------------------------------------------------

def test_the_confirmation_job_is_safe_to_run_twice(app, client, db):
    post_join(client)
    supporter_id = supporters(db)[0].id
    get_queue("mail").enqueue("supporters.join.send_confirmation", supporter_id)  # as other features do
    run_mail_worker(app)
    assert len(outbox(app)) == 1
    assert supporters(db)[0].confirmation_sent_at is not None


def test_the_confirmation_job_sends_nothing_to_active_unknown_or_suppressed_supporters(app, db):
    active = make_supporter("active@example.org")
    bounced = make_supporter("bounced@example.org", status="pending")
    db.session.add(Suppression(email_hash=email_hash("bounced@example.org"), reason=SuppressionReason.HARD_BOUNCE))
    db.session.commit()
    for supporter_id in (active.id, bounced.id, 999999):
        mail_jobs.send_confirmation.enqueue(supporter_id)
    run_mail_worker(app)
    assert outbox(app) == []
    assert get_queue("mail").failed_job_registry.count == 0


def test_a_pending_supporter_created_elsewhere_without_a_grant_can_confirm_the_current_text(app, client, db):
    supporter = make_supporter("api@example.org", status="pending", consent=False, referral_code=None)
    get_queue("mail").enqueue("supporters.join.send_confirmation", supporter.id)
    run_mail_worker(app)
    path = link(outbox(app)[0], "confirm")
    assert consent_text("en").text in client.get(path).get_data(as_text=True)
    assert client.post(path).status_code == 200
    confirmation = db.session.scalar(sa.select(ConsentEvent))
    assert confirmation.action.value == "confirmed"
    assert confirmation.text_hash == consent_text("en").hash


def test_confirming_after_an_erasure_lifts_the_erasure_suppression_of_that_address(app, client, db):
    db.session.add(Suppression(email_hash=email_hash("back@example.org"), reason=SuppressionReason.ERASED))
    db.session.commit()
    _supporter, path = joined_and_mailed(app, client, email="back@example.org")
    client.post(path)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Suppression)) == 0


def test_the_join_data_is_part_of_the_export_and_cleared_on_erasure(app, client, db):
    from supporters.privacy import erase_supporter, person_record

    make_supporter("friend@example.org", referral_code="friendly1")
    post_join(client, email="new@example.org", ref="friendly1")
    run_mail_worker(app)
    supporter = db.session.scalar(sa.select(Supporter).where(Supporter.email == "new@example.org"))
    record = person_record(supporter)
    assert record["join"]["joined_with_referral_code"] == "friendly1"
    assert record["join"]["confirmation_sent_at"] is not None
    erase_supporter(supporter)
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Supporter, supporter.id).joined_with_ref is None


def test_the_sweeper_queues_confirmations_that_never_went_out_for_web_signups_only(app, client, db):
    from datetime import timedelta

    from core.db import utcnow

    post_join(client, email="lost@example.org")  # its job is lost, as if Redis had been flushed
    get_queue("mail").empty()
    fresh = make_supporter("fresh@example.org", status="pending", source="web_form")
    imported = make_supporter("imported@example.org", status="pending", source="import")
    db.session.execute(sa.update(Supporter).where(Supporter.id != fresh.id)
                       .values(created_at=utcnow() - timedelta(minutes=10)))
    db.session.commit()
    assert mail_jobs.sweep_unsent_confirmations() == 1
    run_mail_worker(app)
    assert [m["To"] for m in outbox(app)] == ["lost@example.org"]
    assert mail_jobs.sweep_unsent_confirmations() == 0  # sent now: nothing left behind
    assert imported.id
