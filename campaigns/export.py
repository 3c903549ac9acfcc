"""The export of one campaign's deliveries with their outcome, clicks and actions (`flask export campaign`).

It streams through the supporters' export machinery (supporters.transfer): the same CSV/JSON
lines writers, formula defusing and timestamps as every other export.
"""

from __future__ import annotations

from typing import IO, Any

import sqlalchemy as sa

from campaigns.actions import Action, Click, Link
from campaigns.models import Campaign, Delivery
from core.errors import NotFound, ValidationFailed
from core.extensions import db
from supporters.models import Supporter, SupporterStatus
from supporters.transfer import FORMATS, defuse, iso_timestamp, write

CAMPAIGN_FIELDS = ("delivery_id", "supporter_id", "email", "name", "language", "status", "skip_reason", "attempts",
                   "sent_at", "error", "clicks", "links_clicked", "first_click_at", "last_click_at", "actions",
                   "action_kinds")


def campaign_select(campaign_id: int, for_csv: bool) -> sa.Select:
    """One row per delivery: its outcome, the supporter's clicks and actions (aggregated in SQL).

    Clicks are counted per delivery and actions per supporter (an action may have no delivery,
    e.g. a vote changed later), each in one grouped subquery joined once: no per-row queries.
    Erased supporters keep their row (the counts stay honest) but no personal data: their email
    and name are already gone, and the CASE makes sure nothing of them is printed anyway.
    """
    clicks = (sa.select(Click.delivery_id.label("delivery_id"), sa.func.sum(Click.count).label("clicks"),
                        sa.func.count().label("links"), sa.func.min(Click.first_at).label("first_at"),
                        sa.func.max(Click.last_at).label("last_at"))
              .join(Link, Link.id == Click.link_id).where(Link.campaign_id == campaign_id)
              .group_by(Click.delivery_id).subquery("c"))
    label = sa.cast(Action.kind, sa.String) + sa.literal_column("':'", sa.String) + Action.detail
    actions = (sa.select(Action.supporter_id.label("supporter_id"), sa.func.count().label("actions"),
                         sa.func.aggregate_strings(label, ",").label("kinds"))
               .where(Action.campaign_id == campaign_id).group_by(Action.supporter_id).subquery("a"))
    erased = Supporter.status == SupporterStatus.ERASED.value
    personal = {"email": Supporter.email, "name": Supporter.name, "language": Supporter.language}
    exprs: dict[str, tuple[Any, bool]] = {
        "delivery_id": (Delivery.id, False), "supporter_id": (Delivery.supporter_id, False),
        **{n: (sa.case((erased, sa.null()), else_=e), True) for n, e in personal.items()},
        "status": (Delivery.status, False), "skip_reason": (Delivery.skip_reason, False),
        "attempts": (Delivery.attempts, False), "sent_at": (Delivery.sent_at, False),
        "error": (Delivery.error, True),
        "clicks": (sa.func.coalesce(clicks.c.clicks, 0), False),
        "links_clicked": (sa.func.coalesce(clicks.c.links, 0), False),
        "first_click_at": (clicks.c.first_at, False), "last_click_at": (clicks.c.last_at, False),
        "actions": (sa.func.coalesce(actions.c.actions, 0), False),
        "action_kinds": (actions.c.kinds, True),
    }
    columns = []
    for name, (expr, text) in exprs.items():
        if for_csv and name in ("sent_at", "first_click_at", "last_click_at"):
            columns.append(iso_timestamp(expr).label(name))
        elif for_csv and text:
            columns.append(defuse(expr).label(name))
        elif isinstance(expr.type, sa.Enum):
            columns.append(sa.type_coerce(expr, sa.String).label(name))
        else:
            columns.append(expr.label(name))
    return (sa.select(*columns).select_from(Delivery)
            .join(Supporter, Supporter.id == Delivery.supporter_id)
            .outerjoin(clicks, clicks.c.delivery_id == Delivery.id)
            .outerjoin(actions, actions.c.supporter_id == Delivery.supporter_id)
            .where(Delivery.campaign_id == campaign_id).order_by(Delivery.id))


def export_campaign(out: IO[bytes], campaign_id: int, *, fmt: str = "csv", progress=None) -> int:
    """Write one campaign's deliveries with clicks and actions; NotFound for an unknown campaign."""
    if fmt not in FORMATS:
        raise ValidationFailed({"format": [f"must be one of {', '.join(FORMATS)}"]})
    if db.session.get(Campaign, campaign_id) is None:
        raise NotFound(f"no campaign {campaign_id}")
    return write(campaign_select(campaign_id, fmt == "csv"), out, fmt, progress)
