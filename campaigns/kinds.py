"""Kind-specific campaign settings: validated at create/update and again at launch.

- share:  {"url": "https://…", "text": "…" | {"en": "…", "de": "…"}, "networks": ["facebook", …]}
- review: {"destinations": [{"site": "google", "url": "https://…"}, …], "incentive": false}
          checked against the rule table (campaigns.review_rules): errors refuse, warnings are returned.
- vote:   {"type": "poll", "question": "…", "options": ["…", …] (2–10), "multiple": false, "closes_at": ISO}
          {"type": "petition", "statement": "…", "goal": 500, "comment_max": 500}
- survey: {"questions": [{"key": "nps", "type": "nps", "label": {"en": "…"}, …}, …], "closes_at": ISO, …}
          (campaigns.survey_def; docs/surveys.md)
Every kind may carry "owner_email": who is told when a petition reaches its goal (default: the
manager who created the campaign).
"""

from __future__ import annotations

from typing import Any

from campaigns import survey_def
from campaigns.actions import CampaignSettings
from campaigns.models import Campaign, CampaignKind
from campaigns.review_rules import ALL_KINDS, SITES, check_review_campaign
from campaigns.setting_values import is_http_url, parse_time  # noqa: F401 - used here and by callers of kinds
from core.db import utcnow
from core.errors import ValidationFailed
from core.extensions import db
from supporters.models import LANGUAGES

NETWORKS = ("facebook", "x", "linkedin", "xing", "whatsapp", "email", "copy")
MAX_SHARE_TEXT = 1000
MAX_OPTIONS, MIN_OPTIONS = 10, 2
MAX_COMMENT = 1000
DEFAULT_COMMENT_MAX = 500
ACTION_KINDS = (CampaignKind.SHARE, CampaignKind.REVIEW, CampaignKind.VOTE, CampaignKind.SURVEY)


class _Errors(dict):
    def add(self, field: str, message: str) -> None:
        self.setdefault(f"settings.{field}" if field else "settings", []).append(message)


def _text(value: Any, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value.strip()) <= limit


def _check_share(cfg: dict, errors: _Errors) -> None:
    if not is_http_url(cfg.get("url")):
        errors.add("url", "an http(s) URL of at most 2000 characters is required")
    text = cfg.get("text")
    if isinstance(text, str):
        if not _text(text, MAX_SHARE_TEXT):
            errors.add("text", f"1 to {MAX_SHARE_TEXT} characters")
    elif isinstance(text, dict) and text:
        for lang, value in text.items():
            if lang not in LANGUAGES:
                errors.add(f"text.{lang}", f"unknown language; use one of {', '.join(LANGUAGES)}")
            elif not _text(value, MAX_SHARE_TEXT):
                errors.add(f"text.{lang}", f"1 to {MAX_SHARE_TEXT} characters")
    else:
        errors.add("text", "a suggested text (a string, or one per language) is required")
    networks = cfg.get("networks", list(NETWORKS))
    if not isinstance(networks, list) or not networks or len(set(networks)) != len(networks):
        errors.add("networks", "a non-empty list without repeats")
    else:
        for n in networks:
            if n not in NETWORKS:
                errors.add("networks", f"unknown network {n!r}; use {', '.join(NETWORKS)}")
    _only(cfg, {"url", "text", "networks"}, errors)


def _check_review(cfg: dict, errors: _Errors) -> list[str]:
    dests = cfg.get("destinations")
    if not isinstance(dests, list) or not 1 <= len(dests) <= 10:
        errors.add("destinations", "a list of 1 to 10 destinations")
        return []
    keys = []
    for i, d in enumerate(dests):
        if not isinstance(d, dict) or not isinstance(d.get("site"), str) or not 0 < len(d["site"]) <= 40:
            errors.add(f"destinations[{i}].site", "a site key such as google, trustpilot, kununu (see docs/review-rules.md)")
            continue
        if not is_http_url(d.get("url")):
            errors.add(f"destinations[{i}].url", "an http(s) URL is required")
        if "name" in d and not _text(d["name"], 80):
            errors.add(f"destinations[{i}].name", "1 to 80 characters")
        if set(d) - {"site", "url", "name"}:
            errors.add(f"destinations[{i}]", f"unknown key(s): {', '.join(sorted(set(d) - {'site', 'url', 'name'}))}")
        keys.append(d["site"])
    if len(set(keys)) != len(keys):
        errors.add("destinations", "each site at most once")
    incentive = cfg.get("incentive", False)
    if not isinstance(incentive, bool):
        errors.add("incentive", "true or false")
    _only(cfg, {"destinations", "incentive"}, errors)
    return keys


def _check_vote(cfg: dict, errors: _Errors) -> None:
    kind = cfg.get("type")
    if kind == "poll":
        if not _text(cfg.get("question"), 300):
            errors.add("question", "1 to 300 characters")
        options = cfg.get("options")
        if not isinstance(options, list) or not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
            errors.add("options", f"a list of {MIN_OPTIONS} to {MAX_OPTIONS} options")
        else:
            for i, o in enumerate(options):
                if not _text(o, 200):
                    errors.add(f"options[{i}]", "1 to 200 characters")
            if len({o.strip().lower() for o in options if isinstance(o, str)}) != len(options):
                errors.add("options", "options must differ")
        if not isinstance(cfg.get("multiple", False), bool):
            errors.add("multiple", "true or false")
        closes = cfg.get("closes_at")
        if closes is not None and parse_time(closes) is None:
            errors.add("closes_at", "an ISO 8601 time with a time zone, e.g. 2026-12-01T18:00:00+01:00")
        _only(cfg, {"type", "question", "options", "multiple", "closes_at"}, errors)
    elif kind == "petition":
        if not _text(cfg.get("statement"), 2000):
            errors.add("statement", "1 to 2000 characters")
        goal = cfg.get("goal")
        if goal is not None and (not isinstance(goal, int) or isinstance(goal, bool) or not 1 <= goal <= 10_000_000):
            errors.add("goal", "a whole number from 1 to 10,000,000")
        cmax = cfg.get("comment_max", DEFAULT_COMMENT_MAX)
        if not isinstance(cmax, int) or isinstance(cmax, bool) or not 0 <= cmax <= MAX_COMMENT:
            errors.add("comment_max", f"a whole number from 0 (no comments) to {MAX_COMMENT}")
        _only(cfg, {"type", "statement", "goal", "comment_max"}, errors)
    else:
        errors.add("type", "'poll' or 'petition'")


def _only(cfg: dict, allowed: set[str], errors: _Errors) -> None:
    for key in sorted(set(cfg) - allowed):
        errors.add(key, "unknown setting")


# --- the audience's possible supporter kinds, for the review rule table -------------------------

def _kinds_of(node: Any) -> frozenset[str] | None:
    """The supporter kinds a filter node can match, if it constrains the kind (else None)."""
    if not isinstance(node, dict):
        return None
    if node.get("field") == "kind":
        value, op = node.get("value"), node.get("op")
        values = frozenset(value if isinstance(value, list) else [value])
        return {"eq": values, "in": values, "ne": ALL_KINDS - values, "not_in": ALL_KINDS - values}.get(op)
    if "all" in node and isinstance(node["all"], list):
        found = [k for k in map(_kinds_of, node["all"]) if k is not None]
        return frozenset.intersection(*found) if found else None
    if "any" in node and isinstance(node["any"], list):
        found = list(map(_kinds_of, node["any"]))
        return None if not found or any(k is None for k in found) else frozenset.union(*found)
    if "not" in node:
        inner = _kinds_of(node["not"])
        return None if inner is None else ALL_KINDS - inner
    return None


def audience_kinds(audience_filter: Any, exclude_filter: Any) -> frozenset[str]:
    kinds = _kinds_of(audience_filter) if audience_filter is not None else None
    kinds = ALL_KINDS if kinds is None else kinds & ALL_KINDS
    excluded = _kinds_of(exclude_filter) if exclude_filter is not None else None
    # Only an exclusion that is purely about kinds removes kinds for certain.
    if excluded is not None and isinstance(exclude_filter, dict) and exclude_filter.get("field") == "kind":
        kinds = kinds - excluded
    return kinds


# --- validation --------------------------------------------------------------------------------

def validate(kind: CampaignKind, cfg: Any, audience_filter: Any = None, exclude_filter: Any = None,
             languages: tuple[str, ...] = ()) -> list[str]:
    """Raise ValidationFailed for settings the kind cannot run with; return warnings for the manager.

    `languages`: the campaign's content languages (a survey needs every label in each of them).
    """
    errors = _Errors()
    warnings: list[str] = []
    if kind == CampaignKind.ANNOUNCEMENT:
        if cfg:
            errors.add("", "announcements take no settings")
        if errors:
            raise ValidationFailed(dict(errors))
        return warnings
    if not isinstance(cfg, dict) or not cfg:
        raise ValidationFailed({"settings": [f"{kind.value} campaigns need settings (see docs/actions.md)"]})
    if kind == CampaignKind.SHARE:
        _check_share(cfg, errors)
    elif kind == CampaignKind.REVIEW:
        keys = _check_review(cfg, errors)
        if survey_def.mentions_survey_answers(audience_filter) or survey_def.mentions_survey_answers(exclude_filter):
            # Asking only the satisfied (or leaving out the unhappy) is review gating, at any depth.
            errors.setdefault("audience", []).append(
                "the audience of a review campaign must not depend on survey answers: " + survey_def.REVIEW_GATING)
        if not errors:
            check = check_review_campaign(keys, audience_kinds(audience_filter, exclude_filter),
                                          incentive=bool(cfg.get("incentive")))
            for message in check.errors:
                errors.add("destinations", message)
            warnings += check.warnings
    elif kind == CampaignKind.VOTE:
        _check_vote(cfg, errors)
    elif kind == CampaignKind.SURVEY:
        survey_def.check(cfg, errors.add, languages)
        site = (cfg.get("review_invite") or {}).get("site") if isinstance(cfg.get("review_invite"), dict) else None
        if not errors and site:  # the thank-you page's review invitation obeys the site's rules too
            check = check_review_campaign([site], audience_kinds(audience_filter, exclude_filter))
            for message in check.errors:
                errors.add("review_invite.site", message)
            warnings += check.warnings
    if errors:
        raise ValidationFailed(dict(errors))
    return warnings


def get_settings(campaign_id: int) -> CampaignSettings | None:
    return db.session.get(CampaignSettings, campaign_id)


def apply(campaign: Campaign, data: dict[str, Any], owner_email: str | None = None) -> list[str]:
    """Validate and store the campaign's settings (campaign flushed; no commit); return warnings.

    Called on create and on every update, since a change of audience can break a review rule.
    """
    row = get_settings(campaign.id)
    if "settings" in data:
        cfg = dict(data["settings"] or {})
    else:
        cfg = dict(row.config) if row is not None else {}
    owner = cfg.pop("owner_email", None)
    if owner is not None and (not isinstance(owner, str) or "@" not in owner or len(owner) > 254):
        raise ValidationFailed({"settings.owner_email": ["an email address"]})
    warnings = validate(campaign.kind, cfg, campaign.audience_definition(), campaign.exclude_filter,
                        content_languages(campaign))
    if campaign.kind == CampaignKind.ANNOUNCEMENT and row is None:
        return warnings
    if row is None:
        row = CampaignSettings(campaign_id=campaign.id, config=cfg, owner_email=owner or owner_email)
        db.session.add(row)
    else:
        row.config = cfg
        if owner is not None:
            row.owner_email = owner
    campaign.rule_warnings = warnings  # shown once in the API's answer
    return warnings


def check_launchable(campaign: Campaign) -> None:
    """A share/review/vote campaign needs valid settings and a {{action_url}} in every content."""
    if campaign.kind not in ACTION_KINDS:
        return
    row = get_settings(campaign.id)
    validate(campaign.kind, row.config if row else None, campaign.audience_definition(), campaign.exclude_filter,
             content_languages(campaign))
    missing = [c.language for c in campaign.contents if "action_url" not in c.body]
    if missing:
        raise ValidationFailed({"contents": [f"the body must link to the action page with {{{{action_url}}}} "
                                             f"(missing in: {', '.join(missing)})"]})


def describe(campaign: Campaign) -> dict[str, Any]:
    """The settings part of the API's campaign document."""
    row = get_settings(campaign.id)
    settings = dict(row.config) if row else None
    if row is not None and row.owner_email:
        settings["owner_email"] = row.owner_email
    warnings = getattr(campaign, "rule_warnings", None)
    if warnings is None and row is not None and campaign.kind == CampaignKind.REVIEW:
        try:
            warnings = validate(campaign.kind, row.config, campaign.audience_definition(), campaign.exclude_filter)
        except ValidationFailed as exc:
            warnings = [m for msgs in exc.errors.values() for m in msgs]
    return {"settings": settings, "warnings": warnings or []}


def content_languages(campaign: Campaign) -> tuple[str, ...]:
    return tuple(c.language for c in campaign.contents)


def poll_closed(campaign: Campaign, cfg: dict) -> bool:
    closes = parse_time(cfg.get("closes_at"))
    return (closes is not None and closes <= utcnow()) or campaign.status.value == "cancelled"


def site_name(key: str) -> str:
    site = SITES.get(key)
    return site.name if site else key

