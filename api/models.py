"""Tables the HTTP edge needs for itself: stored responses for `Idempotency-Key` replays."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import BigIntPK, utcnow
from core.extensions import db


class IdempotencyKey(db.Model):
    """One POST per (caller, key): the first response is stored and replayed for 24 hours."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    scope: Mapped[str] = mapped_column(sa.String(40))  # "token:12" or "user:3": keys are per caller
    key: Mapped[str] = mapped_column(sa.String(200))
    request_hash: Mapped[str] = mapped_column(sa.String(64))  # method, path and body
    status_code: Mapped[int | None] = mapped_column(sa.SmallInteger)  # NULL while the first request runs
    response_body: Mapped[str | None] = mapped_column(sa.Text)
    location: Mapped[str | None] = mapped_column(sa.String(300))
    # The response carried a secret (a new API token): `response_body` holds it without the secret,
    # and a replay answers 410 instead of showing the secret a second time.
    secret_withheld: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    __table_args__ = (sa.UniqueConstraint("scope", "key", name="uq_idempotency_keys_scope_key"),)
