"""`flask demo`: fill an empty database with supporters (supporters.demo) and one sent campaign of each kind.

The campaigns are built through the real models and validated by `campaigns.kinds` like any
manager's campaign, but they are not sent through SMTP: the deliveries are written directly as
sent (or skipped, bounced, failed) at a past time, and clicks, shares, review confirmations, votes
and signatures are written as the action pages would have recorded them. Bulk inserts per table
(a few statements per campaign), so a 3,000-supporter base gets its results in well under a second.
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta

import click
import sqlalchemy as sa

from campaigns import kinds
from campaigns.actions import Action, CampaignReferral, Click, Link, LinkPurpose, Vote, VoteChoice
from campaigns.models import Campaign, CampaignContent, CampaignKind, CampaignStatus, Delivery
from campaigns.tracking import ACTION_PAGE_URL
from core.accounts import record_audit
from core.extensions import db
from supporters import demo as supporters_demo
from supporters.models import Supporter

FOOTER = {"en": "\n\n[Your preferences]({{preferences_url}}) · [Unsubscribe]({{unsubscribe_url}})\n",
          "de": "\n\n[Deine Einstellungen]({{preferences_url}}) · [Abmelden]({{unsubscribe_url}})\n"}

# (name, kind, days ago, settings, audience filter, {language: (subject, body)}, click rate, act rate)
CAMPAIGNS = [
    ("Spring product news", CampaignKind.ANNOUNCEMENT, 42, None, None, {
        "en": ("What's new this spring, {{first_name}}",
               "Hi {{first_name}},\n\nour new refill station opens in **twelve more shops** this spring. "
               "[See where]({url})."),
        "de": ("Neues im Frühling, {{first_name}}",
               "Hallo {{first_name}},\n\nunsere Nachfüllstation gibt es ab diesem Frühling in **zwölf weiteren "
               "Läden**. [Hier findest du sie]({url})."),
    }, 0.31, 0.0),
    ("Share the refill map", CampaignKind.SHARE, 30, {
        "url": "https://example.org/refill-map",
        "text": {"en": "Refill instead of buying new: find a station near you.",
                 "de": "Nachfüllen statt neu kaufen: finde eine Station in deiner Nähe."},
        "networks": ["facebook", "linkedin", "whatsapp", "email", "copy"],
    }, None, {
        "en": ("Would you share our refill map?",
               "Hi {{first_name}},\n\nevery share helps a neighbour find a refill station. "
               "[Share it in one click]({{action_url}})."),
        "de": ("Teilst du unsere Nachfüllkarte?",
               "Hallo {{first_name}},\n\njedes Teilen hilft, eine Station in der Nähe zu finden. "
               "[Mit einem Klick teilen]({{action_url}})."),
    }, 0.22, 0.45),
    ("Tell others about us", CampaignKind.REVIEW, 21, {
        "destinations": [{"site": "google", "url": "https://example.org/reviews/google"},
                         {"site": "trustpilot", "url": "https://example.org/reviews/trustpilot"}],
    }, {"field": "kind", "op": "in", "value": ["fan", "other"]}, {
        "en": ("How was your experience, {{first_name}}?",
               "Hi {{first_name}},\n\nwhether you loved us or not: an honest review helps others decide. "
               "[Write a review]({{action_url}})."),
        "de": ("Wie zufrieden bist du, {{first_name}}?",
               "Hallo {{first_name}},\n\nob begeistert oder nicht: eine ehrliche Bewertung hilft anderen. "
               "[Bewertung schreiben]({{action_url}})."),
    }, 0.18, 0.35),
    ("Which station next?", CampaignKind.VOTE, 12, {
        "type": "poll", "question": "Where should the next refill station open?",
        "options": ["Hamburg Altona", "Munich Schwabing", "Cologne Ehrenfeld", "Leipzig Plagwitz"],
        "multiple": False,
    }, None, {
        "en": ("You decide: where do we open next?",
               "Hi {{first_name}},\n\nfour neighbourhoods, one new station. [Cast your vote]({{action_url}})."),
        "de": ("Du entscheidest: Wo eröffnen wir als Nächstes?",
               "Hallo {{first_name}},\n\nvier Viertel, eine neue Station. [Jetzt abstimmen]({{action_url}})."),
    }, 0.27, 0.8),
    ("Deposit on refill bottles", CampaignKind.VOTE, 5, {
        "type": "petition", "goal": 500, "comment_max": 500,
        "statement": "We ask the city council to introduce a deposit scheme for refill bottles in all public "
                     "buildings.",
    }, None, {
        "en": ("Sign for a deposit on refill bottles",
               "Hi {{first_name}},\n\nwe are 500 signatures away from the city council's agenda. "
               "[Sign the petition]({{action_url}})."),
        "de": ("Unterschreibe für Pfand auf Nachfüllflaschen",
               "Hallo {{first_name}},\n\nmit 500 Unterschriften kommt es auf die Tagesordnung des Stadtrats. "
               "[Petition unterschreiben]({{action_url}})."),
    }, 0.24, 0.7),
]
COMMENTS = ["Overdue!", "Endlich!", "Good idea, my kids' school needs this.", "Bitte auch in Schulen.", None, None]


def fill_campaigns(rng: random.Random, now: datetime) -> dict[str, int]:
    """Insert the demo campaigns with deliveries and results (no commit: the caller commits)."""
    people = db.session.execute(sa.select(Supporter.id, Supporter.status, Supporter.kind, Supporter.created_at,
                                          Supporter.referred_by_id).order_by(Supporter.id)).all()
    totals = {"campaigns": 0, "deliveries": 0, "clicks": 0, "actions": 0}
    for name, kind, days, settings, audience, contents, click_rate, act_rate in CAMPAIGNS:
        launched = now - timedelta(days=days)
        campaign = Campaign(name=name, kind=kind, status=CampaignStatus.SENT, audience_filter=audience,
                            created_at=launched - timedelta(days=2), updated_at=launched, launched_at=launched,
                            finished_at=launched + timedelta(minutes=25))
        url = "https://example.org/news/spring"
        for language, (subject, body) in contents.items():
            campaign.contents.append(CampaignContent(language=language, subject=subject,
                                                     body=body.replace("{url}", url) + FOOTER[language]))
        db.session.add(campaign)
        db.session.flush()
        # The same validation a manager's campaign goes through (raises if the demo drifts from the rules).
        kinds.apply(campaign, {"settings": settings} if settings else {})
        kinds.check_launchable(campaign)
        audience_kinds = set(audience["value"]) if audience else None
        deliveries = []
        for sid, status, skind, joined, _ in people:
            if joined >= launched or (audience_kinds and skind.value not in audience_kinds):
                continue
            row = {"campaign_id": campaign.id, "supporter_id": sid, "status": "skipped", "skip_reason": None,
                   "attempts": 0, "sent_at": None, "error": None}
            if status.value == "pending":
                row["skip_reason"] = "no_consent"
            elif status.value == "unsubscribed":
                row["skip_reason"] = "unsubscribed"
            else:
                roll = rng.random()
                at = launched + timedelta(seconds=rng.randint(5, 1400))
                if roll < 0.02:
                    row["skip_reason"] = "frequency_limit"
                elif roll < 0.035:
                    row.update(status="bounced", attempts=1, sent_at=at)
                elif roll < 0.04:
                    row.update(status="failed", attempts=1, error="550 5.1.1 mailbox does not exist")
                else:
                    row.update(status="sent", attempts=1 if roll > 0.06 else 2, sent_at=at)
            deliveries.append(row)
        db.session.execute(sa.insert(Delivery), deliveries)
        sent = db.session.execute(sa.select(Delivery.id, Delivery.supporter_id, Delivery.sent_at).where(
            Delivery.campaign_id == campaign.id, Delivery.status == "sent").order_by(Delivery.id)).all()
        link_urls = [(LinkPurpose.MAIL, url)] if kind == CampaignKind.ANNOUNCEMENT else [
            (LinkPurpose.ACTION, ACTION_PAGE_URL)]
        if kind == CampaignKind.SHARE:
            link_urls.append((LinkPurpose.VISIT, settings["url"]))
        db.session.execute(sa.insert(Link), [{"campaign_id": campaign.id, "purpose": p.value, "url": u,
                                              "created_at": launched} for p, u in link_urls])
        link_ids = dict(db.session.execute(sa.select(Link.purpose, Link.id).where(Link.campaign_id == campaign.id)).all())
        main_link = link_ids[link_urls[0][0]]
        clicks, actions, votes, clickers = [], [], [], []
        for delivery_id, sid, sent_at in sent:
            if rng.random() >= click_rate:
                continue
            first = sent_at + timedelta(minutes=rng.expovariate(1 / 240))
            clicks.append({"link_id": main_link, "delivery_id": delivery_id, "count": rng.choice([1, 1, 1, 2, 3]),
                           "first_at": first, "last_at": first + timedelta(minutes=rng.randint(0, 90))})
            clickers.append((delivery_id, sid, first))
        acted = [c for c in clickers if rng.random() < act_rate]
        for delivery_id, sid, first in acted:
            at = first + timedelta(seconds=rng.randint(20, 600))
            base = {"campaign_id": campaign.id, "supporter_id": sid, "delivery_id": delivery_id, "note": None,
                    "created_at": at}
            if kind == CampaignKind.SHARE:
                for network in rng.sample(settings["networks"], rng.choice([1, 1, 1, 2])):
                    actions.append({**base, "kind": "share", "detail": network})
                if rng.random() < 0.5:  # friends visited the shared link
                    clicks.append({"link_id": link_ids[LinkPurpose.VISIT], "delivery_id": delivery_id,
                                   "count": rng.randint(1, 6), "first_at": at + timedelta(hours=1),
                                   "last_at": at + timedelta(hours=rng.randint(2, 72))})
            elif kind == CampaignKind.REVIEW:
                site = rng.choice(["google", "google", "trustpilot"])
                actions.append({**base, "kind": "review", "detail": site})
            elif settings["type"] == "poll":
                actions.append({**base, "kind": "vote", "detail": "cast"})
                votes.append({"campaign_id": campaign.id, "supporter_id": sid, "comment": None,
                              "created_at": at, "updated_at": at})
            else:
                actions.append({**base, "kind": "sign", "detail": "signed"})
                votes.append({"campaign_id": campaign.id, "supporter_id": sid, "comment": rng.choice(COMMENTS),
                              "created_at": at, "updated_at": at})
        for rows, model in ((clicks, Click), (actions, Action), (votes, Vote)):
            if rows:
                db.session.execute(sa.insert(model), rows)
        if kind == CampaignKind.VOTE and settings["type"] == "poll" and votes:
            weights = [34, 27, 22, 17]
            choices = [{"vote_id": vote_id, "campaign_id": campaign.id,
                        "option": rng.choices(range(4), weights=weights)[0]}
                       for (vote_id,) in db.session.execute(sa.select(Vote.id).where(Vote.campaign_id == campaign.id))]
            db.session.execute(sa.insert(VoteChoice), choices)
        if kind == CampaignKind.SHARE:
            # Word of mouth: some of the sharers' referrals are credited to this campaign.
            sharers = {sid for _d, sid, _f in acted}
            referrals = [{"supporter_id": sid, "referrer_id": ref, "campaign_id": campaign.id, "created_at": launched}
                         for sid, status, _k, _j, ref in people
                         if ref in sharers and status.value != "pending" and rng.random() < 0.5]
            if referrals:
                db.session.execute(sa.insert(CampaignReferral), referrals)
        totals["campaigns"] += 1
        totals["deliveries"] += len(deliveries)
        totals["clicks"] += len(clicks)
        totals["actions"] += len(actions)
    return totals


def fill(count: int = 3000, seed: int = 7) -> dict[str, int]:
    """Insert the demo base and its campaigns in one transaction (set-based); the caller commits."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    counts = supporters_demo.fill(rng, now, count)
    return counts | fill_campaigns(rng, now)


@click.command("demo")
@click.option("--is-empty", "is_empty", is_flag=True,
              help="Only check: exit 0 (silently) if there are no supporters, 1 otherwise.")
@click.option("--supporters", "count", default=3000, show_default=True, type=click.IntRange(10, 100_000))
@click.option("--seed", default=7, show_default=True, type=int, help="Random seed (same seed, same base).")
def demo_command(is_empty: bool, count: int, seed: int) -> None:
    """Fill an empty database with demo supporters, tags, consents, referrals and campaigns with results."""
    if is_empty:
        sys.exit(0 if supporters_demo.database_is_empty() else 1)
    if not supporters_demo.database_is_empty():
        click.echo("Error: the database already has supporters; flask demo only fills an empty database.", err=True)
        sys.exit(1)
    counts = fill(count, seed)
    record_audit("demo.fill", actor_type="cli", detail=counts)
    db.session.commit()
    click.echo("Demo data: " + ", ".join(f"{n} {what}" for what, n in counts.items()) + ".")
    click.echo("One campaign of each kind is included with results; their deliveries were written as sent "
               "directly (no mail went out), so the SMTP engine was not involved.")
