"""What the survey page shows: the questions for the answers so far, the values, the thank-you page."""

from __future__ import annotations

from typing import Any

from campaigns import kinds, survey_def
from campaigns.acting import ActContext
from campaigns.review_rules import accepts, needs_disclosure
from campaigns.survey_answering import closed, current, field, may_ask_reply
from campaigns.tracking import ensure_links, link_url
from core.extensions import db
from supporters import links


def _in(texts: Any, lang: str, fallback: str) -> Any:
    if not isinstance(texts, dict):
        return texts
    return texts.get(lang) or texts.get(fallback) or texts.get("en") or next(iter(texts.values()))


def _question(q: dict, lang: str, fallback: str) -> dict[str, Any]:
    out = {"key": q["key"], "type": q["type"], "required": bool(q.get("required")),
           "label": _in(q["label"], lang, fallback)}
    if q["type"] in survey_def.SCALES:
        lo, hi = survey_def.SCALES[q["type"]]
        out["scale"] = list(range(lo, hi + 1))
    elif q["type"] in survey_def.CHOICE_TYPES:
        out["options"] = _in(q["options"], lang, fallback)
    else:
        out["limit"] = survey_def.text_limit(q)
    return out


def _as_strings(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def context(ctx: ActContext, lang: str, extra: dict[str, Any]) -> dict[str, Any]:
    cfg, fallback = ctx.config, ctx.supporter.language
    response, answers = current(ctx)
    form = extra.get("form")
    shown = survey_def.visible(cfg["questions"], answers)
    if form is not None:  # a refused POST: the same questions again, with what was typed
        keys = {q["key"] for q in shown} | set(form.getlist("shown")) | {f[2:] for f in extra.get("errors", {})}
        shown = [q for q in cfg["questions"] if q["key"] in keys]
        values = {q["key"]: form.getlist(field(q["key"])) for q in shown}
    else:
        values = {k: _as_strings(v) for k, v in answers.items()}
    closes = kinds.parse_time(cfg.get("closes_at"))
    out: dict[str, Any] = {
        "questions": [_question(q, lang, fallback) for q in shown], "values": values,
        "labels": {field(q["key"]): _in(q["label"], lang, fallback) for q in cfg["questions"]},
        "answered": response is not None, "closed": closed(ctx), "supporter_kind": ctx.supporter.kind.value,
        "closes": closes.strftime("%Y-%m-%d %H:%M UTC") if closes else None,
    }
    if extra.get("done"):
        unhappy = response is not None and may_ask_reply(ctx, answers)
        out.update(thank_you=_in(cfg.get("thank_you"), lang, fallback) if cfg.get("thank_you") else None,
                   may_ask_reply=unhappy,
                   # The same people may raise it in the dialog instead (issue 14), where others can back it.
                   dialog_url=links.dialog_url(ctx.supporter.id) if unhappy else None,
                   reply_requested=response is not None and response.reply_requested_at is not None,
                   review_invite=_review_invite(ctx, lang, fallback) if response is not None else None)
    db.session.commit()
    return out


def _review_invite(ctx: ActContext, lang: str, fallback: str) -> dict[str, Any] | None:
    """The same invitation for every respondent: nothing here looks at the answers (docs/surveys.md)."""
    invite = ctx.config.get("review_invite")
    if not invite:
        return None
    kind = ctx.supporter.kind.value
    if invite.get("site") and not accepts(invite["site"], kind):
        return None  # the site bars this relationship (e.g. staff on Google): by kind, never by answer
    ids = ensure_links(ctx.campaign.id, [invite["url"]])
    return {"url": link_url(ctx.delivery.id, ids[invite["url"]]),
            "text": _in(invite.get("text"), lang, fallback) or "", "disclose": needs_disclosure(kind)}
