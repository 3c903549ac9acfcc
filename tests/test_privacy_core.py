import sqlalchemy as sa

from supporters.models import (
    ConsentAction,
    ConsentEvent,
    Supporter,
    SupporterStatus,
    Suppression,
    Tag,
    email_hash,
    supporter_tags,
)
from supporters.privacy import erase_supporter, person_record


def make_person(db):
    tag = Tag(name="newsletter")
    person = Supporter(email="Ada@Example.org", email_normalized="ada@example.org", name="Ada Lovelace",
                       status=SupporterStatus.ACTIVE, country="GB", referral_code="adaref01")
    db.session.add_all([tag, person])
    db.session.flush()
    db.session.execute(supporter_tags.insert().values(tag_id=tag.id, supporter_id=person.id))
    db.session.add(ConsentEvent(supporter=person, purpose="campaigns", action=ConsentAction.GRANTED,
                                method="web_form", ip="203.0.113.9", user_agent="Firefox", text_version="v1"))
    friend = Supporter(email="bob@example.org", email_normalized="bob@example.org", referred_by=person)
    db.session.add(friend)
    db.session.commit()
    return person


def test_person_record_holds_profile_tags_consents_and_referrals(db):
    person = make_person(db)
    record = person_record(person)
    assert record["profile"]["email"] == "Ada@Example.org"
    assert record["tags"] == ["newsletter"]
    assert record["consents"][0]["ip"] == "203.0.113.9"
    assert len(record["referrals"]) == 1


def test_erasure_removes_personal_data_and_keeps_a_hashed_suppression(db):
    person = make_person(db)
    total_before = db.session.scalar(sa.select(sa.func.count()).select_from(Supporter))
    erase_supporter(person)
    db.session.commit()
    db.session.expire_all()
    person = db.session.get(Supporter, person.id)
    assert person.status is SupporterStatus.ERASED and person.email is None and person.name is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Supporter)) == total_before
    assert db.session.scalar(sa.select(Suppression.reason)) == "erased"
    assert db.session.scalar(sa.select(Suppression.email_hash)) == email_hash("ada@example.org")
    consent = db.session.scalar(sa.select(ConsentEvent))
    assert consent.ip is None and consent.user_agent is None and consent.purpose == "campaigns"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(supporter_tags)) == 0
    # No table still holds the address or the name, in any column.
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(sa.select(table)).all():
            text = " ".join(str(v) for v in row)
            assert "ada@example.org" not in text.lower() and "Lovelace" not in text, (table.name, row)
