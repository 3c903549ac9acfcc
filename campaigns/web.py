"""Action pages `GET|POST /act/<token>` and the tracked-link redirect `GET /r/<token>`.

Server-rendered, no JavaScript needed, German and English, one or two taps on a phone. A GET only
shows (and counts the open as a click); POST acts. The signed, purpose-bound token in the URL is
the credential (as for confirm/unsubscribe), so these forms need no CSRF cookie. The rules live in
campaigns.acting; this module translates between HTTP and those services.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, url_for
from werkzeug.exceptions import TooManyRequests

from campaigns import acting, kinds, survey_answering, survey_page, tracking
from campaigns.i18n import t
from campaigns.render import fill_placeholders
from campaigns.review_rules import needs_disclosure
from core.errors import ValidationFailed
from core.extensions import csrf, limiter
from core.signing import InvalidToken, is_test_token
from supporters.i18n import negotiate
from supporters.models import LANGUAGES
from supporters.pages import page_csp
from supporters.signals import supporter_joined

bp = Blueprint("actions", __name__, template_folder="templates")


def _act_limit() -> str:
    # Public petition signatures (and every other POST here) are rate limited per address.
    return current_app.config.get("ACT_RATE_LIMIT", "30 per minute;300 per hour")


@bp.before_request
def _language() -> None:
    requested = request.args.get("lang")
    g.lang = requested if requested in LANGUAGES else negotiate(None, request.accept_languages)


@bp.context_processor
def _translations() -> dict:
    return {"_": lambda key, **values: t(key, g.get("lang", "en"), **values), "languages": LANGUAGES}


def _problem(status: int, message_key: str, errors: dict | None = None):
    return render_template("actions/problem.html", lang=g.lang, message=t(message_key, g.lang),
                           errors=errors or {}), status


def _set_language(ctx: acting.ActContext) -> None:
    requested = request.args.get("lang")
    g.lang = requested if requested in LANGUAGES else (ctx.supporter.language if ctx.supporter.language in LANGUAGES
                                                       else "en")


def _page(ctx: acting.ActContext, token: str, status: int = 200, errors: dict | None = None, **extra):
    campaign, cfg = ctx.campaign, ctx.config
    content = campaign.content_for(ctx.supporter.language) or (campaign.contents[0] if campaign.contents else None)
    context = {"lang": g.lang, "token": token, "heading": _heading(ctx, content.subject if content else campaign.name),
               "errors": errors or {}, "config": cfg, **extra}
    if campaign.kind.value == "share":
        context.update(template="share", networks=cfg.get("networks", list(kinds.NETWORKS)),
                       text=extra.get("text") or acting.share_text(ctx, g.lang), shared_page=cfg.get("url"),
                       shared_host=urlsplit(cfg.get("url") or "").hostname)
    elif campaign.kind.value == "review":
        kind = ctx.supporter.kind.value
        context.update(template="review", destinations=acting.review_destinations(ctx),
                       disclosure=needs_disclosure(kind), supporter_kind=kind)
    elif campaign.kind.value == "survey":
        context.update(template="survey", **survey_page.context(ctx, g.lang, {**extra, "errors": errors or {}}))
    elif acting.is_petition(ctx):
        vote, _options = acting.current_vote(ctx)
        context.update(template="petition", signed=vote is not None, comment=vote.comment if vote else None,
                       count=acting.signature_count(campaign.id), goal=cfg.get("goal"),
                       comment_max=cfg.get("comment_max", kinds.DEFAULT_COMMENT_MAX))
    else:
        vote, options = acting.current_vote(ctx)
        closes = kinds.parse_time(cfg.get("closes_at"))
        context.update(template="poll", voted=vote is not None, chosen=extra.get("chosen", options),
                       closed=kinds.poll_closed(campaign, cfg), closes=closes.strftime("%Y-%m-%d %H:%M UTC")
                       if closes else None, multiple=bool(cfg.get("multiple")))
    return render_template(f"actions/{context['template']}.html", **context), status


DONE_OUTCOMES = ("cast", "changed", "unchanged", "completed", "saved", "reply")  # what acting.vote etc. return


def _done(token: str, outcome: str | None):
    """Post/Redirect/Get: a reload of the result page shows it again instead of posting again."""
    return redirect(url_for("actions.act", token=token, lang=g.lang, done=outcome or "1"), 303)


def _heading(ctx: acting.ActContext, subject: str) -> str:
    """The mail's subject as the page title, with {{first_name}} filled and other placeholders dropped."""
    first = (ctx.supporter.name or "").split(" ")[0]
    return fill_placeholders(subject, {"first_name": first}, ctx.supporter.language).strip()


@bp.route("/act/<token>", methods=["GET", "POST"])
@limiter.limit(_act_limit, methods=["POST"])
def act(token: str):
    try:
        ctx = acting.open_page(token)
    except InvalidToken:
        return _problem(404, "problem.link")
    _set_language(ctx)
    if request.method != "POST":
        if request.args.get("copied") and ctx.campaign.kind.value == "share":
            return _page(ctx, token, copied=True, shared_url=acting.shared_url(ctx))
        done = request.args.get("done")
        if done:  # the Get after a Post/Redirect: the result, and a reload posts nothing again
            return _page(ctx, token, done=True, outcome=done if done in DONE_OUTCOMES else None)
        if request.args.get("more") or request.args.get("saved"):
            return _page(ctx, token, more=bool(request.args.get("more")))
        # A click, never an action; a HEAD (link scanners) is not even that, nor a test mail's link.
        if request.method == "GET" and not is_test_token(token, ("act",)):
            acting.record_open(ctx)
        return _page(ctx, token)
    form = request.form
    try:
        kind = ctx.campaign.kind.value
        if kind == "share":
            target = acting.share(ctx, form.get("network", ""), form.get("text"))
            if target is None:  # copy-link: Post/Redirect/Get to the page showing the link
                return redirect(url_for("actions.act", token=token, lang=g.lang, copied="1"), 303)
            return redirect(target, 303)
        if kind == "review":
            acting.confirm_review(ctx, form.get("site", ""), form.get("review_url"))
            return _done(token, "1")
        if kind == "survey":
            if form.get("reply"):
                survey_answering.request_reply(ctx)
                return _done(token, "reply")
            outcome = survey_answering.submit(ctx, form.getlist, form.getlist("shown"),
                                              final=form.get("action") != "save")
            if outcome in ("more", "saved"):  # back to the form: new questions appeared, or saved for later
                return redirect(url_for("actions.act", token=token, lang=g.lang, **{outcome: "1"}), 303)
            return _done(token, outcome)
        if acting.is_petition(ctx):
            acting.sign(ctx, form.get("comment"))
            return _done(token, "1")
        return _done(token, acting.vote(ctx, form.getlist("option")))
    except ValidationFailed as exc:
        return _page(ctx, token, 422, errors=exc.errors, text=form.get("text"),
                     chosen=[int(x) for x in form.getlist("option") if x.isdigit()], form=form)
    except acting.AlreadyDone:  # a second submission (e.g. from an old tab): the page as it is, and why
        return _page(ctx, token, 409, already=True)
    except acting.Closed:
        return _problem(409, "problem.closed")


@bp.get("/r/<token>")
def follow(token: str):
    try:
        target = tracking.follow(token, count=request.method == "GET")  # HEAD: a scanner, not a click
    except InvalidToken:
        return _problem(404, "problem.link")
    return redirect(target, 302)


@bp.errorhandler(TooManyRequests)
def _too_many(exc: TooManyRequests):
    response = exc.get_response()
    body = render_template("actions/problem.html", lang=g.get("lang", "en"), message=t("limit.body", g.get("lang", "en")),
                           errors={})
    response.set_data(body)
    response.mimetype = "text/html"
    return response


@bp.after_request
def _headers(response):
    response.headers["Content-Security-Policy"] = page_csp(form_action="'self' https: mailto:")
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["X-Content-Type-Options"] = "nosniff"
    # The URL carries the supporter's token: never send it to the sites we redirect to.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("Accept-Language")
    return response


def _credit_join(_app: Flask, *, email_normalized: str, ref: str | None, campaign_hint: str | None) -> None:
    """Credit a newcomer who came through a campaign's share link to that campaign (supporters' signal)."""
    acting.note_join(email_normalized, ref, campaign_hint)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    supporter_joined.connect(_credit_join, app)
    csrf.exempt(bp)
    from campaigns.cli_actions import register

    register(app)
