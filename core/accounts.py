"""Admin users, API tokens and the audit trail, with the services that create and check them."""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import BigIntPK, str_enum, utcnow
from core.errors import Conflict, NotFound, ValidationFailed
from core.extensions import db, login_manager

_hasher = PasswordHasher()
TOKEN_PREFIX = "spk_"  # recognisable in secret scanners
PREFIX_LENGTH = 12  # hex characters of the public lookup prefix
MIN_PASSWORD_LENGTH = 12


class Role(enum.StrEnum):
    VIEWER = "viewer"
    MANAGER = "manager"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return {"viewer": 1, "manager": 2, "admin": 3}[self.value]

    def allows(self, needed: Role | str) -> bool:
        return self.rank >= Role(needed).rank


class AdminUser(UserMixin, db.Model):
    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)  # stored normalised (lower case)
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[Role] = mapped_column(str_enum(Role, "admin_role"), default=Role.VIEWER)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    # Part of every session's id (`get_id`): raising it ends all of the user's sessions server-side
    # (sign-out, password change), since a signed session cookie cannot be recalled otherwise.
    session_version: Mapped[int] = mapped_column(sa.Integer, default=1, server_default="1")

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version or 1}"

    def end_sessions(self) -> None:
        """Make every session cookie issued so far for this user worthless."""
        self.session_version = (self.session_version or 1) + 1

    def set_password(self, password: str) -> None:
        check_password_strength(password, self.email)
        if self.password_hash:  # a change, not the first password: sessions made with the old one end
            self.end_sessions()
        self.password_hash = _hasher.hash(password)

    def check_password(self, password: str) -> bool:
        try:
            ok = _hasher.verify(self.password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        if ok and _hasher.check_needs_rehash(self.password_hash):
            self.password_hash = _hasher.hash(password)
        return ok



@login_manager.user_loader
def _load_user(session_id: str) -> AdminUser | None:
    """The user of a session id `<user id>:<session version>`; None once that version has ended."""
    user_id, _, version = session_id.partition(":")
    if not (user_id.isdigit() and version.isdigit()) or len(user_id) > 10:
        return None
    user = db.session.get(AdminUser, int(user_id))
    if user is None or not user.active or user.session_version != int(version):
        return None
    return user

class ApiToken(db.Model):
    """A bearer token: only its SHA-256 is stored; the prefix finds the row without a scan."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("admin_users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    prefix: Mapped[str] = mapped_column(sa.String(16), unique=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64))
    role: Mapped[Role] = mapped_column(str_enum(Role, "token_role"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[AdminUser] = relationship(back_populates="tokens")

    @property
    def effective_role(self) -> Role:
        """A token never has more rights than its user has now."""
        return self.role if self.user.role.allows(self.role) else self.user.role

    def is_usable(self, now: datetime | None = None) -> bool:
        now = now or utcnow()
        return (self.revoked_at is None and self.user.active
                and (self.expires_at is None or self.expires_at > now))


class AuditEvent(db.Model):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_type: Mapped[str] = mapped_column(sa.String(20))  # user, token, cli, system, supporter
    actor_id: Mapped[int | None] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"))
    actor_label: Mapped[str | None] = mapped_column(sa.String(254))
    action: Mapped[str] = mapped_column(sa.String(60), index=True)  # e.g. supporter.erase
    object_type: Mapped[str | None] = mapped_column(sa.String(40))
    object_id: Mapped[str | None] = mapped_column(sa.String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    ip: Mapped[str | None] = mapped_column(sa.String(45))

    __table_args__ = (sa.Index("ix_audit_events_object", "object_type", "object_id"),
                      sa.Index("ix_audit_events_actor", "actor_type", "actor_id"))


# --- services -------------------------------------------------------------------------------

_COMMON_PASSWORDS = {"password1234", "123456789012", "qwertyuiopas", "letmein12345", "administrator"}


def check_password_strength(password: str, email: str = "") -> None:
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"must be at least {MIN_PASSWORD_LENGTH} characters")
    elif len(set(password)) < 5 or password.lower() in _COMMON_PASSWORDS:
        problems.append("is too easy to guess")
    elif email and email.split("@")[0].lower() in password.lower():
        problems.append("must not contain the email address")
    if len(password) > 1024:
        problems.append("must be at most 1024 characters")
    if problems:
        raise ValidationFailed({"password": problems})


def create_user(email: str, password: str, role: Role | str = Role.VIEWER) -> AdminUser:
    from email_validator import EmailNotValidError, validate_email

    try:
        address = validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed({"email": [str(exc)]}) from None
    try:
        role = Role(role)
    except ValueError:
        raise ValidationFailed({"role": [f"must be one of {', '.join(r.value for r in Role)}"]}) from None
    if db.session.scalar(sa.select(AdminUser.id).where(AdminUser.email == address)) is not None:
        raise Conflict(f"a user with the email {address} already exists")
    user = AdminUser(email=address, role=role)
    user.set_password(password)
    db.session.add(user)
    return user


@functools.cache
def _dummy_hash() -> str:
    """Verifying against a real hash when the address is unknown keeps the timing the same.

    Made on first use, not at import: an argon2 hash takes 64 MB and ~0.1 s, which every process
    loading the app (each `flask` command, each web worker) would otherwise pay at start-up.
    """
    return _hasher.hash("not-a-password-of-anyone")


def authenticate(email: str, password: str) -> AdminUser | None:
    """The active user with this email and password, or None (the same work for an unknown address)."""
    user = db.session.scalar(sa.select(AdminUser).where(AdminUser.email == email.strip().lower()))
    if user is None:
        try:
            _hasher.verify(_dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            pass
        return None
    if not user.check_password(password) or not user.active:
        return None
    return user


def find_user(email: str) -> AdminUser:
    user = db.session.scalar(sa.select(AdminUser).where(AdminUser.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"no user with the email {email.strip().lower()}")
    return user


def _hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(user: AdminUser, name: str, role: Role | str | None = None,
                 expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a token and return it with its secret; the secret is never stored or shown again."""
    role = Role(role) if role else user.role
    if not user.role.allows(role):
        raise ValidationFailed({"role": [f"a {user.role.value} cannot hold a {role.value} token"]})
    if not user.active:
        raise Conflict(f"user {user.email} is deactivated")
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)  # 48 bits for lookup
    raw = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"  # + 256 secret bits
    token = ApiToken(user=user, name=name.strip()[:100] or "token", prefix=prefix,
                     token_hash=_hash_token(raw), role=role, expires_at=expires_at)
    db.session.add(token)
    return token, raw


def verify_token(raw: str) -> ApiToken | None:
    """Return the usable token for a bearer secret, or None; constant-time hash comparison."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    prefix, sep, _secret = raw[len(TOKEN_PREFIX):].partition("_")
    if not sep or len(prefix) != PREFIX_LENGTH:
        return None
    token = db.session.scalar(sa.select(ApiToken).where(ApiToken.prefix == prefix))
    if token is None or not hmac.compare_digest(token.token_hash, _hash_token(raw)):
        return None
    return token if token.is_usable() else None


def revoke_token(token_id_or_prefix: str) -> ApiToken:
    """Revoke by prefix (12 hex characters, which may be all digits) or by numeric id."""
    key = str(token_id_or_prefix).strip()
    if len(key) == PREFIX_LENGTH:
        condition = ApiToken.prefix == key
    elif key.isdigit() and len(key) < 10:
        condition = ApiToken.id == int(key)
    else:
        raise NotFound(f"no token {key}")
    token = db.session.scalar(sa.select(ApiToken).where(condition))
    if token is None:
        raise NotFound(f"no token {token_id_or_prefix}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def record_audit(action: str, *, actor_type: str, actor_id: int | None = None, actor_label: str | None = None,
                 object_type: str | None = None, object_id: Any = None, detail: dict | None = None,
                 ip: str | None = None) -> AuditEvent:
    """Add an audit event to the current transaction (it commits with the change it describes)."""
    event = AuditEvent(action=action, actor_type=actor_type, actor_id=actor_id, actor_label=actor_label,
                       object_type=object_type, object_id=None if object_id is None else str(object_id),
                       detail=detail, ip=ip)
    db.session.add(event)
    return event
