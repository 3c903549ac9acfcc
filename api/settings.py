"""The organisation settings every mail's layout and footer show: GET for all, PUT for admins."""

from __future__ import annotations

from flask import jsonify
from marshmallow import fields

from api import bp
from api.auth import require
from api.conventions import audit, load_json
from api.openapi import doc
from api.schemas import ApiSchema
from core import org_settings
from core.extensions import db

_DESCRIPTIONS = {
    "organisation_name": "who sends the mails (default: the display name of MAIL_FROM)",
    "postal_address": "postal address / imprint shown in every footer; line breaks allowed",
    "privacy_url": "link to the privacy policy (https only)",
    "logo_url": "link to a logo shown above the content (https only; optional)",
    "accent_color": "#rrggbb for links and buttons (default #1f5c99)",
    "reply_to": "Reply-To of every mail (default: none, replies go to the sender)",
    "campaign_sender": "From of campaign mails (default MAIL_FROM); a campaign's own sender wins",
    "transactional_sender": "From of confirmations and notices (default MAIL_FROM)",
}


def _field(name: str, **kwargs) -> fields.String:
    limit = org_settings.FIELDS[name][1]
    return fields.String(allow_none=True, metadata={"description": _DESCRIPTIONS[name], "maxLength": limit},
                         **kwargs)


# Fields given replace the stored value; null (or an empty string) resets one to its default.
SettingsIn = ApiSchema.from_dict({name: _field(name) for name in org_settings.FIELDS}, name="SettingsIn")
EffectiveSettings = ApiSchema.from_dict({name: _field(name, required=True) for name in org_settings.FIELDS},
                                        name="EffectiveSettings")
SettingsOut = ApiSchema.from_dict({
    **{name: _field(name, required=True) for name in org_settings.FIELDS},
    "updated_at": fields.DateTime(allow_none=True, required=True),
    "effective": fields.Nested(EffectiveSettings, required=True,
                               metadata={"description": "what mails use: the stored values with defaults filled in"}),
    "warnings": fields.List(fields.String(), required=True,
                            metadata={"description": "settings an operator should still make"}),
}, name="SettingsOut")


def _out() -> dict:
    values = org_settings.stored()
    org = org_settings.current_org(values)
    effective = {"organisation_name": org.name, "postal_address": org.postal_address or None,
                 "privacy_url": org.privacy_url, "logo_url": org.logo_url, "accent_color": org.accent_color,
                 "reply_to": org.reply_to, "campaign_sender": org.campaign_sender,
                 "transactional_sender": org.transactional_sender}
    updated = values.pop("updated_at")
    return {**values, "updated_at": updated.isoformat() if updated else None, "effective": effective,
            "warnings": org.missing()}


@bp.get("/settings")
@doc("The organisation settings shown in every mail", tag="Settings", response=SettingsOut)
@require("viewer")
def get_settings():
    return jsonify(_out())


@bp.put("/settings")
@doc("Change organisation settings (fields given replace; null resets to the default)", tag="Settings",
     body=SettingsIn, response=SettingsOut)
@require("admin")
def put_settings():
    changed = org_settings.update_settings(load_json(SettingsIn()))
    if changed:
        audit("settings.update", "settings", 1, {"fields": changed})
    db.session.commit()
    return jsonify(_out())
