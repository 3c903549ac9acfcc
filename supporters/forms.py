"""The public forms (Flask-WTF) and their validation, with messages in the page's language.

CSRF is checked for every POST by the app-wide CSRFProtect (before the view runs), so the forms
themselves do not check it a second time; templates render `csrf_token()`.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectMultipleField, StringField

from supporters.i18n import t
from supporters.models import LANGUAGES, SupporterKind

EMAIL_MAX = 254
NAME_MAX = 200
KINDS = tuple(k.value for k in SupporterKind)
HONEYPOT = "website"  # humans never see it; bots fill in every field


class _Form(FlaskForm):
    class Meta:
        csrf = False  # checked app-wide by CSRFProtect

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.problems: dict[str, str] = {}

    def fail(self, field: str, message: str) -> None:
        self.problems.setdefault(field, message)


def clean_name(form: _Form, raw: str | None, lang: str) -> str | None:
    name = (raw or "").strip()
    if len(name) > NAME_MAX:
        form.fail("name", t("error.name.too_long", lang, max=NAME_MAX))
    elif any(unicodedata.category(c) in ("Cc", "Cs", "Co", "Zl", "Zp") for c in name):  # names reach mail headers
        form.fail("name", t("error.name.invalid", lang))
    return name or None


class JoinForm(_Form):
    email = StringField()
    name = StringField()
    kind = StringField()  # radio buttons, rendered by the template
    language = StringField()
    interests = SelectMultipleField(validate_choice=False)
    consent = BooleanField()
    ref = HiddenField()
    consent_version = HiddenField()  # the version of the text the page showed
    website = StringField()  # the honeypot

    def check(self, lang: str, page_language: str) -> bool:
        """Validate and fill `self.cleaned`; messages go to `self.problems` by field."""
        email = (self.email.data or "").strip()
        normalized = None
        if not email:
            self.fail("email", t("error.email.required", lang))
        elif len(email) > EMAIL_MAX:
            self.fail("email", t("error.email.too_long", lang, max=EMAIL_MAX))
        else:
            try:
                normalized = validate_email(email, check_deliverability=False).normalized
            except EmailNotValidError:
                self.fail("email", t("error.email.invalid", lang))
            else:
                if len(normalized) > EMAIL_MAX:
                    self.fail("email", t("error.email.too_long", lang, max=EMAIL_MAX))
        name = clean_name(self, self.name.data, lang)
        kind = self.kind.data
        if not kind:
            self.fail("kind", t("error.kind.required", lang))
        elif kind not in KINDS:
            self.fail("kind", t("error.kind.invalid", lang))
        language = self.language.data or page_language
        if language not in LANGUAGES:
            self.fail("language", t("error.language.invalid", lang))
        interests = [i for i in (self.interests.data or []) if i]
        if len(interests) > 50 or any(len(i) > 80 for i in interests):
            self.fail("interests", t("error.interests.invalid", lang))
        if not self.consent.data:
            self.fail("consent", t("error.consent.required", lang))
        if (self.website.data or "").strip():
            self.fail(HONEYPOT, t("error.honeypot", lang))
        self.cleaned = {"email": normalized, "name": name, "kind": kind, "language": language,
                        "interests": sorted(set(interests)), "ref": (self.ref.data or "").strip() or None,
                        "consent_version": (self.consent_version.data or "").strip() or None}
        return not self.problems


class PreferencesForm(_Form):
    name = StringField()
    language = StringField()
    interests = SelectMultipleField(validate_choice=False)
    asks_per_month = StringField()
    paused_until = StringField()

    def check(self, lang: str, default_asks: int, today: date | None = None) -> bool:
        today = today or datetime.now(UTC).date()
        name = clean_name(self, self.name.data, lang)
        language = self.language.data
        if language not in LANGUAGES:
            self.fail("language", t("error.language.invalid", lang))
        interests = [i for i in (self.interests.data or []) if i]
        if len(interests) > 50 or any(len(i) > 80 for i in interests):
            self.fail("interests", t("error.interests.invalid", lang))
        raw_asks = (self.asks_per_month.data or "").strip()
        asks = None
        if raw_asks and raw_asks != "default":
            if raw_asks.isdigit() and 1 <= int(raw_asks) <= default_asks:
                asks = int(raw_asks)
            else:
                self.fail("asks_per_month", t("error.asks.invalid", lang))
        raw_pause = (self.paused_until.data or "").strip()
        paused_until = None
        if raw_pause:
            try:
                day = date.fromisoformat(raw_pause) if len(raw_pause) == 10 else None
            except ValueError:
                day = None
            if day is None:
                self.fail("paused_until", t("error.pause.invalid", lang))
            elif day <= today:
                self.fail("paused_until", t("error.pause.past", lang))
            elif day > today + timedelta(days=366):
                self.fail("paused_until", t("error.pause.too_far", lang))
            else:
                # Asks resume on that day: the pause lasts until its start (midnight UTC).
                paused_until = datetime(day.year, day.month, day.day, tzinfo=UTC)
        self.cleaned = {"name": name, "language": language, "interests": sorted(set(interests)),
                        "asks_per_month": asks, "paused_until": paused_until}
        return not self.problems


class NewLinkForm(_Form):
    token = HiddenField()
    email = StringField()
