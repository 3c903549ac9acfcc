"""Join: a pending supporter with the consent grant, then the confirmation mail; the public interests.

The public supporter flow lives in four modules (no `request` in any of them): join (here),
confirm (supporters.confirm), preferences and leaving (supporters.preferences), and the mail jobs
(supporters.mail_jobs). Status semantics other parts rely on: `active` means effective consent
for the purpose "campaigns" (set on confirmation); withdrawing (preferences or unsubscribe) sets
`unsubscribed` and `unsubscribed_at`. The ConsentEvent ledger is the proof of each step.
Unsubscribing does not touch the suppression list: joining again through a new double opt-in
stays possible.
"""

from __future__ import annotations

import enum
import functools
import logging
from dataclasses import dataclass
from datetime import datetime

import redis
import sqlalchemy as sa
from rq import Retry
from sqlalchemy.exc import IntegrityError

from core import events, metrics
from core.db import utcnow
from core.errors import ValidationFailed
from core.events import outbox_ctes
from core.extensions import db
from core.queues import job
from supporters import consent
from supporters.confirm import is_referral_code
from supporters.consent import Requester
from supporters.mail_jobs import enqueue_mail, send_already_active, send_confirmation, throttle_once
from supporters.models import (
    LANGUAGES,
    ConsentAction,
    ConsentEvent,
    Supporter,
    SupporterKind,
    SupporterStatus,
    Tag,
    normalize_email,
    supporter_tags,
)
from supporters.privacy import export_section, on_erase

log = logging.getLogger(__name__)
PURPOSE = consent.PURPOSE
MAX_INTERESTS = 50


class JoinOutcome(enum.StrEnum):
    CREATED = "created"
    PENDING_AGAIN = "pending_again"  # still unconfirmed: the confirmation goes out again (throttled)
    REJOINED = "rejoined"  # had left: a new double opt-in starts
    ALREADY_ACTIVE = "already_active"  # gets a "you are already with us" mail instead of a second row
    REPEAT = "repeat"  # a known address: sorted out in the background (repeat_join), like the three above


@dataclass(frozen=True)
class JoinResult:
    outcome: JoinOutcome
    supporter_id: int | None  # None for a repeat: the request does not look the address up
    mail_enqueued: bool


# --- join ----------------------------------------------------------------------------------------

def join(*, email: str, kind: str, language: str, consent_language: str, consent_version: str | None = None,
         name: str | None = None,
         interest_ids: list[int] | None = None, ref: str | None = None,
         requester: Requester = Requester()) -> JoinResult:
    """Store a pending supporter with the consent grant, commit, then enqueue the confirmation.

    The caller has validated the input (supporters.forms); the checks here keep the service honest
    for other callers. The answer shown to the person must not depend on the outcome.
    """
    _check_join_input(email, kind, language, name)
    normalized = normalize_email(email)
    # Record the text the page showed: the version it carried, if that is one we know.
    version = consent_version if consent_version in consent.TEXTS else consent.CURRENT_VERSION
    text = consent.consent_text(consent_language, version)
    ref = ref if is_referral_code(ref) else None
    now = utcnow()
    supporter_row = {"email": email.strip(), "email_normalized": normalized, "name": (name or "").strip() or None,
                     "kind": SupporterKind(kind), "language": language, "status": SupporterStatus.PENDING,
                     "source": "web_form", "joined_with_ref": ref, "created_at": now, "updated_at": now,
                     # explicit: SQLAlchemy does not fill this default inside the statement with the outbox CTEs
                     "engagement_score": 0.0}
    grant_row = {"purpose": PURPOSE, "action": ConsentAction.GRANTED, "text_version": text.version,
                 "text_hash": text.hash, "method": "web_form", "occurred_at": now, "ip": requester.ip,
                 "user_agent": (requester.user_agent or "")[:400] or None}
    # The outbox event rides in the same statement on PostgreSQL (one round trip, still atomic alone).
    event = {"kind": supporter_row["kind"].value, "language": language, "source": "web_form"} \
        if events.wanted("supporter.joined") else None
    try:
        # New addresses are the common case: insert first and let the unique index find duplicates
        # (this is also what makes two concurrent submits of one address create one supporter).
        supporter_id = _insert_pending(supporter_row, grant_row, atomic_alone=not interest_ids, event=event)
    except IntegrityError:
        db.session.rollback()
        # A known address: here the same work as for a new one (one INSERT, one enqueue), the rest
        # in the background, so neither the answer nor its timing tells whether it is known.
        enqueued = _enqueue_repeat(normalized, text, ref, requester, now)
        metrics.JOINS.labels("repeat").inc()
        return JoinResult(JoinOutcome.REPEAT, None, enqueued)
    if interest_ids:
        try:
            db.session.execute(supporter_tags.insert(),
                               [{"tag_id": tag_id, "supporter_id": supporter_id} for tag_id in interest_ids])
        except IntegrityError:  # an interest was withdrawn while the form was open: nothing is kept
            db.session.rollback()
            raise ValidationFailed({"interests": ["an interest is no longer offered; please choose again"]}) from None
    db.session.commit()
    metrics.JOINS.labels("created").inc()
    return JoinResult(JoinOutcome.CREATED, supporter_id, enqueue_mail(send_confirmation, supporter_id))


def _insert_pending(supporter_row: dict, grant_row: dict, atomic_alone: bool = False,
                    event: dict | None = None) -> int:
    """Insert the supporter and the grant; return the new id.

    This is the hot path of every signup (see bench/join.py), so it uses one prepared Core
    statement, and on PostgreSQL one round trip: a data-modifying CTE inserts the supporter and
    feeds its id to the ledger insert. One statement is atomic by itself, so when nothing else
    belongs to the transaction (`atomic_alone`) it runs in autocommit mode, which saves the BEGIN
    and COMMIT round trips. SQLite (in-process, no round trips) takes two inserts. `event`: the data
    of a `supporter.joined` webhook event to write with it (core.events), when anyone listens.
    """
    params = {**{f"s_{k}": v for k, v in supporter_row.items()}, **{f"g_{k}": v for k, v in grant_row.items()}}
    dialect = db.session.get_bind().dialect.name
    single = dialect == "postgresql"
    statements = _insert_statements(tuple(supporter_row), tuple(grant_row), single, single and event is not None)
    if single and event is not None:
        params.update(events.outbox_params("supporter.joined", event, supporter_row["created_at"]))
    if len(statements) == 1:
        if atomic_alone and not db.session().in_transaction():
            connection = db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            return connection.execute(statements[0], params).scalar_one()
        return db.session.execute(statements[0], params).scalar_one()
    supporter_id = db.session.execute(statements[0], params).scalar_one()
    db.session.execute(statements[1], {**params, "supporter_id": supporter_id})
    if event is not None:
        events.emit("supporter.joined", event, supporter_id, occurred_at=supporter_row["created_at"])
    return supporter_id


@functools.cache
def _insert_statements(supporter_columns: tuple[str, ...], grant_columns: tuple[str, ...],
                       single: bool, with_event: bool = False) -> tuple[sa.Insert, ...]:
    """Built once per shape (building SQLAlchemy statements per request costs more than the SQL)."""
    supporters, events = Supporter.__table__, ConsentEvent.__table__
    insert_supporter = sa.insert(supporters).values(
        {c: sa.bindparam(f"s_{c}", type_=supporters.c[c].type) for c in supporter_columns}
    ).returning(supporters.c.id)
    grant_values = [sa.bindparam(f"g_{c}", type_=events.c[c].type) for c in grant_columns]
    if not single:
        insert_grant = sa.insert(events).values(
            {"supporter_id": sa.bindparam("supporter_id"), **dict(zip(grant_columns, grant_values, strict=True))})
        return insert_supporter, insert_grant
    new = insert_supporter.cte("new_supporter")
    insert_both = (sa.insert(events)
                   .from_select(["supporter_id", *grant_columns], sa.select(new.c.id, *grant_values),
                                include_defaults=False)
                   .returning(events.c.supporter_id).add_cte(new, nest_here=True))
    if with_event:
        insert_both = insert_both.add_cte(*outbox_ctes(new.c.id), nest_here=True)
    return (insert_both,)


def _enqueue_repeat(normalized: str, text: consent.ConsentText, ref: str | None, requester: Requester,
                    now: datetime) -> bool:
    try:
        repeat_join.enqueue(normalized, text.language, text.version, ref, requester.ip,
                            (requester.user_agent or "")[:400] or None, now.isoformat())
    except redis.exceptions.RedisError:  # the person can submit again; nothing was written
        log.exception("could not queue the repeated join of a known address")
        return False
    return True


@job("mail", retry=Retry(max=3, interval=[10, 60, 300]))
def repeat_join(normalized: str, consent_language: str, text_version: str, ref: str | None, ip: str | None,
                user_agent: str | None, occurred_at: str) -> str:
    """A known address joined again: a notice for the active, the confirmation again for the
    pending (at most once per RESEND_THROTTLE_SECONDS, and only then a new grant in the ledger, so
    a flood of repeats writes nothing), a new double opt-in for someone who had left.

    Safe to run twice: the grant and the mail it queues are guarded by the same throttle key.
    """
    supporter = db.session.scalar(
        sa.select(Supporter).where(Supporter.email_normalized == normalized).with_for_update())
    if supporter is None:  # erased meanwhile
        db.session.rollback()
        return "gone"
    supporter_id = supporter.id
    if supporter.status is SupporterStatus.ACTIVE:
        db.session.rollback()
        if throttle_once(f"notice:{supporter_id}"):
            enqueue_mail(send_already_active, supporter_id)
        return JoinOutcome.ALREADY_ACTIVE.value
    pending = supporter.status is SupporterStatus.PENDING
    mail = throttle_once(f"confirm:{supporter_id}")
    if pending and not mail:
        db.session.rollback()
        return "throttled"
    # The person ticked the consent box again: the ledger records that grant too.
    text = consent.consent_text(consent_language, text_version)
    db.session.add(ConsentEvent(supporter=supporter, purpose=PURPOSE, action=ConsentAction.GRANTED,
                                text_version=text.version, text_hash=text.hash, method="web_form",
                                occurred_at=datetime.fromisoformat(occurred_at), ip=ip, user_agent=user_agent))
    supporter.status = SupporterStatus.PENDING
    if ref and supporter.joined_with_ref is None and supporter.referred_by_id is None:
        supporter.joined_with_ref = ref
    if not pending:  # had left: joins again (a pending one repeating the form is no news)
        events.emit("supporter.joined", {"kind": supporter.kind.value, "language": supporter.language,
                                         "source": "web_form", "rejoined": True}, supporter_id)
    events.emit("consent.changed", {"purpose": PURPOSE, "action": "granted", "method": "web_form"}, supporter_id)
    db.session.commit()
    if mail:
        enqueue_mail(send_confirmation, supporter_id)
    return (JoinOutcome.PENDING_AGAIN if pending else JoinOutcome.REJOINED).value


def _check_join_input(email: str, kind: str, language: str, name: str | None) -> None:
    errors = {}
    if not email or len(email.strip()) > 254 or "@" not in email:
        errors["email"] = ["must be a valid email address of at most 254 characters"]
    if kind not in {k.value for k in SupporterKind}:
        errors["kind"] = [f"must be one of {', '.join(k.value for k in SupporterKind)}"]
    if language not in LANGUAGES:
        errors["language"] = [f"must be one of {', '.join(LANGUAGES)}"]
    if name is not None and len(name.strip()) > 200:
        errors["name"] = ["must be at most 200 characters"]
    if errors:
        raise ValidationFailed(errors)


def public_tags() -> list[Tag]:
    return list(db.session.scalars(sa.select(Tag).where(Tag.public.is_(True)).order_by(Tag.name)))


def public_tag_ids(names: list[str]) -> dict[str, int]:
    """Map the given names to public tag ids; names that are not public tags are left out."""
    if not names:
        return {}
    rows = db.session.execute(sa.select(Tag.name, Tag.id).where(Tag.public.is_(True), Tag.name.in_(names)))
    return dict(rows.all())


# --- data protection -----------------------------------------------------------------------------

@export_section("join")
def _export_join(supporter: Supporter) -> dict:
    return {"joined_with_referral_code": supporter.joined_with_ref,
            "confirmation_sent_at": supporter.confirmation_sent_at.isoformat()
            if supporter.confirmation_sent_at else None}


@on_erase
def _erase_join(supporter: Supporter) -> None:
    supporter.joined_with_ref = None


# RQ finds a job by the dotted path it was queued under: jobs queued as `supporters.join.…` before
# the mail jobs moved to supporters.mail_jobs (and callers that still queue by that path) land here.
from supporters.mail_jobs import send_confirmations, sweep_unsent_confirmations  # noqa: E402, F401
