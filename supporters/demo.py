"""The supporters part of `flask demo` (campaigns.demo): a realistic small supporter base to explore.

Every address is under example.org/.com/.net (RFC 2606), so no demo mail can reach a person.
"""

from __future__ import annotations

import random
import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa

from core.extensions import db
from supporters.models import (
    ConsentEvent,
    Supporter,
    Suppression,
    Tag,
    email_hash,
    supporter_tags,
)

FIRST = {
    "de": ["Anna", "Lukas", "Mia", "Jonas", "Lea", "Felix", "Hannah", "Paul", "Sophie", "Maximilian", "Marie",
           "Leon", "Emma", "Elias", "Lina", "Jürgen", "Ömer", "Zoë", "Björn", "Käthe"],
    "en": ["Olivia", "Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Noah", "Emily", "Jack", "Sophia",
           "Charlie", "Grace", "Leo", "Chloe", "Freddie", "Aisha", "Mateo", "Siobhán", "Ngozi"],
}
LAST = {
    "de": ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann",
           "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Schwarz", "Zimmermann", "Braun"],
    "en": ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Robinson",
           "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "O'Brien", "Okafor"],
}
PLACES = {
    "de": [("DE", "Europe/Berlin", 70), ("AT", "Europe/Vienna", 15), ("CH", "Europe/Zurich", 15)],
    "en": [("GB", "Europe/London", 45), ("US", "America/New_York", 25), ("US", "America/Los_Angeles", 10),
           ("IE", "Europe/Dublin", 10), ("NL", "Europe/Amsterdam", 10)],
}
KINDS = [("fan", 70), ("former_employee", 12), ("supplier", 8), ("partner", 6), ("other", 4)]
STATUSES = [("active", 78), ("pending", 10), ("unsubscribed", 12)]
# (name, public, English label, German label)
TAGS = [
    ("product-news", True, "Product news", "Produktneuigkeiten"),
    ("events", True, "Events near me", "Veranstaltungen in meiner Nähe"),
    ("reviews", True, "Reviews and ratings", "Bewertungen"),
    ("sustainability", True, "Sustainability", "Nachhaltigkeit"),
    ("local-politics", True, "Local decisions and votes", "Lokale Entscheidungen und Abstimmungen"),
    ("vip", False, "VIP", "VIP"),
    ("trade-fair-2025", False, "Trade fair 2025", "Messe 2025"),
    ("alumni-network", False, "Alumni network", "Alumni-Netzwerk"),
]
CONSENT_TEXT_VERSION = "2025-01"
DOMAINS = ["example.org", "example.com", "example.net"]


def database_is_empty() -> bool:
    return db.session.scalar(sa.select(Supporter.id).limit(1)) is None


def _pick(rng: random.Random, weighted: list[tuple]) -> tuple:
    return rng.choices(weighted, weights=[w[-1] for w in weighted])[0]


def fill(rng: random.Random, now: datetime, count: int = 3000) -> dict[str, int]:
    """Insert the demo supporters, tags and consents (set-based); the caller commits."""
    text_hash = "0" * 64  # the demo has no stored consent text; real joins record the text's SHA-256

    tag_rows = [{"name": n, "public": p, "label_en": en, "label_de": de, "created_at": now - timedelta(days=720)}
                for n, p, en, de in TAGS]
    db.session.execute(sa.insert(Tag), tag_rows)
    tag_ids = dict(db.session.execute(sa.select(Tag.name, Tag.id)).all())

    people, seen = [], set()
    for i in range(count):
        language = "de" if rng.random() < 0.45 else "en"
        first, last = rng.choice(FIRST[language]), rng.choice(LAST[language])
        local = f"{first}.{last}".lower().replace("'", "")
        email = f"{local}{i}@{rng.choice(DOMAINS)}"
        country, timezone, _ = _pick(rng, PLACES[language])
        status = _pick(rng, STATUSES)[0]
        kind = _pick(rng, KINDS)[0]
        joined = now - timedelta(days=rng.triangular(0, 730, 60), hours=rng.randint(0, 23))
        person = {
            "email": email, "email_normalized": email.lower(), "name": f"{first} {last}", "kind": kind,
            "language": language, "country": country, "timezone": timezone, "status": status,
            "referral_code": secrets.token_urlsafe(9) if status != "pending" else None,
            "engagement_score": round(rng.expovariate(1 / 8), 2) if status == "active" else 0.0,
            "source": rng.choice(["web_form"] * 6 + ["import", "api"]),
            "created_at": joined, "updated_at": joined,
            "confirmed_at": joined + timedelta(minutes=rng.randint(1, 600)) if status != "pending" else None,
            "unsubscribed_at": None,
        }
        if status == "unsubscribed":
            person["unsubscribed_at"] = min(now, person["confirmed_at"] + timedelta(days=rng.randint(1, 300)))
        seen.add(email.lower())
        people.append(person)
    db.session.execute(sa.insert(Supporter), people)
    rows = db.session.execute(sa.select(Supporter.id, Supporter.email_normalized, Supporter.created_at,
                                        Supporter.status).order_by(Supporter.id)).all()

    # Word of mouth: about a fifth joined through an earlier supporter's link.
    referrals = []
    for index, (sid, _email, joined, _status) in enumerate(rows):
        if index > 20 and rng.random() < 0.2:
            referrer = rows[rng.randrange(0, index)]
            if referrer.created_at <= joined:
                referrals.append({"id": sid, "referred_by_id": referrer.id})
    if referrals:
        db.session.execute(sa.update(Supporter), referrals)  # bulk UPDATE by primary key

    consents, suppressions, tagged = [], [], []
    by_id = {p["email_normalized"]: p for p in people}
    for sid, email, joined, _status in rows:
        person = by_id[email]
        base = {"supporter_id": sid, "purpose": "campaigns", "text_version": CONSENT_TEXT_VERSION,
                "text_hash": text_hash, "ip": f"198.51.100.{rng.randint(1, 254)}",
                "user_agent": rng.choice(["Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0",
                                          "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0) Safari/605.1",
                                          "Mozilla/5.0 (Windows NT 10.0) Chrome/130.0"]), "note": None}
        consents.append({**base, "action": "granted", "method": person["source"], "occurred_at": joined})
        if person["confirmed_at"]:
            consents.append({**base, "action": "confirmed", "method": "confirm_link",
                             "occurred_at": person["confirmed_at"]})
        if person["unsubscribed_at"]:
            consents.append({**base, "action": "withdrawn", "method": rng.choice(["one_click", "preferences"]),
                             "occurred_at": person["unsubscribed_at"]})
            suppressions.append({"email_hash": email_hash(email), "reason": "unsubscribed",
                                 "created_at": person["unsubscribed_at"]})
        for name, _public, _en, _de in TAGS:
            chance = {"product-news": 0.45, "events": 0.3, "reviews": 0.25, "sustainability": 0.2,
                      "local-politics": 0.12, "vip": 0.03, "trade-fair-2025": 0.08,
                      "alumni-network": 0.9 if person["kind"] == "former_employee" else 0.0}[name]
            if rng.random() < chance:
                tagged.append({"tag_id": tag_ids[name], "supporter_id": sid})
    db.session.execute(sa.insert(ConsentEvent), consents)
    if suppressions:
        db.session.execute(sa.insert(Suppression), suppressions)
    if tagged:
        db.session.execute(supporter_tags.insert(), tagged)
    counts = {"supporters": len(rows), "tags": len(TAGS), "consent events": len(consents),
              "referrals": len(referrals), "suppressions": len(suppressions), "tag assignments": len(tagged)}
    return counts
