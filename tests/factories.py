"""Small factories for tests: real rows in the real database, with sensible defaults."""

from __future__ import annotations

import itertools
import secrets

from core.extensions import db
from supporters.models import ConsentAction, ConsentEvent, Supporter, SupporterKind, SupporterStatus, Tag

_seq = itertools.count(1)


def make_supporter(email: str | None = None, *, status: SupporterStatus | str = SupporterStatus.ACTIVE,
                   kind: SupporterKind | str = SupporterKind.FAN, language: str = "en", consent: bool = True,
                   commit: bool = True, **fields) -> Supporter:
    n = next(_seq)
    email = email or f"supporter{n}@example.org"
    supporter = Supporter(email=email, email_normalized=email.strip().lower(), name=fields.pop("name", f"Supporter {n}"),
                          status=SupporterStatus(status), kind=SupporterKind(kind), language=language,
                          referral_code=fields.pop("referral_code", secrets.token_urlsafe(6)), **fields)
    db.session.add(supporter)
    if consent:
        db.session.add(ConsentEvent(supporter=supporter, purpose="campaigns", action=ConsentAction.GRANTED,
                                    method="test", text_version="test"))
    if commit:
        db.session.commit()
    return supporter


def make_tag(name: str, public: bool = False, commit: bool = True) -> Tag:
    tag = Tag(name=name, public=public, label_en=name.title(), label_de=name.title())
    db.session.add(tag)
    if commit:
        db.session.commit()
    return tag
