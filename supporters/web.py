"""The public supporter pages: /join, /confirm/<token>, /preferences/<token>, /unsubscribe/<token>.

Server-rendered, usable without JavaScript, German and English. A GET never changes state (mail
scanners follow links); confirming and unsubscribing happen on POST. The rules live in
supporters.join, supporters.confirm and supporters.preferences; this module only translates between
HTTP and those services.
"""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import TooManyRequests

from core.errors import ValidationFailed
from core.extensions import csrf, db, limiter
from core.signing import ExpiredToken, InvalidToken, is_test_token
from supporters import confirm as confirm_service
from supporters import join as join_service
from supporters import links
from supporters import preferences as prefs_service
from supporters.consent import Requester, consent_text
from supporters.forms import HONEYPOT, JoinForm, NewLinkForm, PreferencesForm
from supporters.i18n import negotiate, t
from supporters.models import LANGUAGES, Supporter, SupporterKind, SupporterStatus
from supporters.pages import page_csp
from supporters.signals import supporter_joined

bp = Blueprint("supporters", __name__, template_folder="templates", static_folder="static",
               static_url_path="/supporters/static")

# Pages other sites may frame (the join form and what it answers with); everything else,
# especially preferences with its "leave" button, may only be framed by ourselves.
# The join form and what follows it in the frame (Post/Redirect/Get: "check your inbox", a resend).
EMBEDDABLE_ENDPOINTS = {"supporters.join", "supporters.joined", "supporters.new_link_sent", "supporters.static"}


def _join_limit() -> str:
    return current_app.config["JOIN_RATE_LIMIT"]


def _requester() -> Requester:
    return Requester(ip=request.remote_addr, user_agent=request.headers.get("User-Agent"))


def _page_language(fallback: str | None = None) -> str:
    requested = request.args.get("lang")
    if requested in LANGUAGES:
        return requested
    if fallback in LANGUAGES:
        return fallback
    return negotiate(None, request.accept_languages)


@bp.before_request
def _language() -> None:
    g.lang = _page_language()


@bp.before_app_request
def _test_links_change_nothing():
    """A POST through a link from a test mail (campaigns.samples: the sample supporter's links, with
    the test flag) changes nothing on any page, whoever clicks it: it answers with a page that says
    so (200, which RFC 8058 one-click clients expect). GET, HEAD and OPTIONS change nothing anyway."""
    if request.method != "POST":
        return None
    token = (request.view_args or {}).get("token")
    if not isinstance(token, str) or not is_test_token(token, links.ACTING_PURPOSES):
        return None
    # Any blueprint's route may land here, so the supporter pages' translations are passed along.
    g.lang = _page_language()
    return render_template("supporters/test_link.html", lang=g.lang, **_translations()), 200


@bp.context_processor
def _translations() -> dict:
    lang = g.get("lang", "en")
    return {"_": lambda key, **values: t(key, g.get("lang", lang), **values), "languages": LANGUAGES}


def _page(template: str, status: int = 200, **context):
    return render_template(f"supporters/{template}", lang=g.lang, **context), status


# --- join ----------------------------------------------------------------------------------------

def _tag_choices() -> list[tuple[str, str]]:
    return [(tag.name, (tag.label_de if g.lang == "de" else tag.label_en) or tag.name)
            for tag in join_service.public_tags()]


def _join_page(form: JoinForm, status: int = 200, referred: bool = False):
    text = consent_text(g.lang)
    return _page("join.html", status, form=form, kinds=[k.value for k in SupporterKind],
                 interest_choices=_tag_choices(), consent=text, referred=referred, honeypot=HONEYPOT)


@bp.route("/join", methods=["GET", "POST"])
@limiter.limit(_join_limit, methods=["POST"])
def join():
    if request.method != "POST":  # GET and HEAD show; only POST acts
        ref = request.args.get("ref")
        well_formed = confirm_service.is_referral_code(ref)
        form = JoinForm(formdata=None, data={"language": g.lang, "ref": ref if well_formed else ""})
        return _join_page(form, referred=confirm_service.is_known_referral_code(ref))
    form = JoinForm()
    if not form.check(g.lang, page_language=g.lang):
        return _join_page(form, 422)
    data = form.cleaned
    tag_ids = join_service.public_tag_ids(data["interests"])
    if len(tag_ids) != len(data["interests"]):
        form.fail("interests", t("error.interests.invalid", g.lang))
        return _join_page(form, 422)
    try:
        join_service.join(email=data["email"], name=data["name"], kind=data["kind"], language=data["language"],
                     consent_language=g.lang, consent_version=data["consent_version"],
                     interest_ids=sorted(tag_ids.values()), ref=data["ref"], requester=_requester())
    except ValidationFailed:  # an interest was withdrawn while the form was open
        form.fail("interests", t("error.interests.invalid", g.lang))
        return _join_page(form, 422)
    # Issue 6: campaigns/ credits the campaign whose share link brought a newcomer.
    supporter_joined.send(current_app._get_current_object(), email_normalized=data["email"].strip().lower(),
                          ref=data["ref"], campaign_hint=request.form.get("c"))
    # The same answer whatever the outcome: nobody learns whether an address is already known.
    # Post/Redirect/Get: a reload shows the page again instead of joining again.
    session["joined_email"] = data["email"]
    return redirect(url_for("supporters.joined", lang=g.lang), 303)


@bp.get("/join/sent")
def joined():
    """"Check your inbox", naming the address this browser just entered (and a resend button)."""
    return _page("joined.html", email=session.get("joined_email"))


# --- confirm -------------------------------------------------------------------------------------

def _link_problem(exc: InvalidToken, token: str | None = None, offer_new_link: bool = True):
    """The page for a broken link; confirm links offer to send a new one."""
    if isinstance(exc, ExpiredToken):
        supporter_id = confirm_service.expired_confirm_supporter_id(exc) if token else None
        form = NewLinkForm(formdata=None, data={"token": token if supporter_id else ""})
        return _page("link_problem.html", 410, expired=True, form=form,
                     days=links.CONFIRM_MAX_AGE // 86400)
    if isinstance(exc, confirm_service.ConsentWithdrawn):
        return _page("link_problem.html", 409, withdrawn=True)
    return _page("link_problem.html", 400, form=NewLinkForm(formdata=None) if offer_new_link else None)


def _confirmed_page(supporter, newly: bool):
    referral = links.referral_url(supporter.referral_code) if supporter.referral_code else None
    return _page("confirmed.html", referral_url=referral, preferences_url=links.preferences_url(supporter.id),
                 newly=newly)


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str):
    if request.method == "POST":
        try:
            supporter, newly = confirm_service.confirm(token, _requester())
        except InvalidToken as exc:
            return _link_problem(exc, token)
        return redirect(url_for("supporters.confirm", token=token, welcome="1" if newly else None), 303)
    # GET only shows the button: it changes nothing (mail scanners open every link). The page does
    # not submit itself by script either, since some scanners run scripts.
    try:
        supporter_id, grant_id = confirm_service.read_confirm_token(token)
        supporter = db.session.get(Supporter, supporter_id)
        if supporter is None or supporter.status is SupporterStatus.ERASED:
            raise InvalidToken("no such supporter")
        g.lang = _page_language(supporter.language)
        if supporter.status is SupporterStatus.UNSUBSCRIBED:
            raise confirm_service.ConsentWithdrawn("left")
        if supporter.status is SupporterStatus.ACTIVE:
            return _confirmed_page(supporter, request.args.get("welcome") == "1")
        confirm_service.grant_for_confirmation(supporter, grant_id)
    except InvalidToken as exc:
        return _link_problem(exc, token)
    return _page("confirm.html", token=token, consent=consent_text(supporter.language))


@bp.post("/confirm/new")
@limiter.limit("5 per minute", methods=["POST"])
def new_confirmation_link():
    form = NewLinkForm()
    token = (form.token.data or "").strip()
    supporter_id = None
    if token:
        try:
            confirm_service.read_confirm_token(token)
        except ExpiredToken as exc:
            supporter_id = confirm_service.expired_confirm_supporter_id(exc)
        except InvalidToken:
            supporter_id = None
        else:
            supporter_id = None  # a valid link needs no new one
    email = (form.email.data or "").strip()[:254]
    confirm_service.request_new_confirmation(supporter_id=supporter_id, email=None if supporter_id else email)
    return redirect(url_for("supporters.new_link_sent", lang=g.lang), 303)


@bp.get("/confirm/new/sent")
def new_link_sent():
    return _page("link_resent.html")


# --- preferences ---------------------------------------------------------------------------------

def _prefs_page(supporter, token: str, form: PreferencesForm, status: int = 200, saved: bool = False):
    default = current_app.config["DEFAULT_ASKS_PER_MONTH"]
    referral = links.referral_url(supporter.referral_code) if supporter.referral_code else None
    return _page("preferences.html", status, supporter=supporter, token=token, form=form, saved=saved,
                 default_asks=default, interest_choices=_tag_choices(), referral_url=referral,
                 supporter_status=supporter.status.value, dialog_url=links.dialog_url(supporter.id))


@bp.route("/preferences/<token>", methods=["GET", "POST"])
@limiter.limit("30 per minute", methods=["POST"])
def preferences(token: str):
    try:
        supporter = prefs_service.supporter_from_token("preferences", token)
    except InvalidToken as exc:
        return _link_problem(exc, offer_new_link=False)
    g.lang = _page_language(supporter.language)
    if request.method == "POST" and request.form.get("action") == "leave":
        prefs_service.withdraw(supporter.id, method="preferences_page", requester=_requester())
        return redirect(url_for("supporters.preferences", token=token, left="1"), 303)
    if request.method != "POST" and request.args.get("left") and supporter.status is SupporterStatus.UNSUBSCRIBED:
        return _page("unsubscribed.html")
    if request.method != "POST" or supporter.status is SupporterStatus.UNSUBSCRIBED:
        form = PreferencesForm(formdata=None, data=_prefs_data(supporter))
        return _prefs_page(supporter, token, form, saved=request.args.get("saved") == "1")
    form = PreferencesForm()
    default = current_app.config["DEFAULT_ASKS_PER_MONTH"]
    if form.check(g.lang, default):
        tag_ids = join_service.public_tag_ids(form.cleaned["interests"])
        if len(tag_ids) != len(form.cleaned["interests"]):
            form.fail("interests", t("error.interests.invalid", g.lang))
    if form.problems:
        return _prefs_page(supporter, token, form, 422)
    data = form.cleaned
    prefs_service.update_preferences(supporter, name=data["name"], language=data["language"],
                               interest_ids=sorted(tag_ids.values()), asks_per_month=data["asks_per_month"],
                               paused_until=data["paused_until"])
    return redirect(url_for("supporters.preferences", token=token, saved="1"), 303)


def _prefs_data(supporter) -> dict:
    return {"name": supporter.name or "", "language": supporter.language,
            "interests": sorted(tag.name for tag in supporter.tags if tag.public),
            "asks_per_month": str(supporter.asks_per_month) if supporter.asks_per_month else "default",
            "paused_until": supporter.paused_until.date().isoformat() if supporter.paused_until else ""}


# --- unsubscribe ---------------------------------------------------------------------------------

@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe(token: str):
    try:
        supporter = prefs_service.supporter_from_token("unsubscribe", token)
    except InvalidToken as exc:
        return _link_problem(exc, offer_new_link=False)
    g.lang = _page_language(supporter.language)
    if request.method != "POST":  # GET and HEAD (link scanners send both) only show the page
        if supporter.status is SupporterStatus.UNSUBSCRIBED:
            return _page("unsubscribed.html")
        return _page("unsubscribe.html", token=token, preferences_url=links.preferences_url(supporter.id))
    # RFC 8058: mail clients POST "List-Unsubscribe=One-Click" without cookies; the signed token
    # is the credential, so this form needs no CSRF token (see init_app).
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    prefs_service.withdraw(supporter.id, method="one_click" if one_click else "unsubscribe_page",
                           requester=_requester())
    if one_click:  # mail clients (RFC 8058) want a plain answer, not a redirect
        return _page("unsubscribed.html")
    return redirect(url_for("supporters.unsubscribe", token=token), 303)  # the GET shows "you have left"


# --- errors and headers --------------------------------------------------------------------------

@bp.errorhandler(TooManyRequests)
def _too_many(exc: TooManyRequests):
    g.lang = g.get("lang") or _page_language()
    response = exc.get_response()
    body, _status = _page("limited.html", 429)
    response.set_data(body)
    response.mimetype = "text/html"
    return response


@bp.errorhandler(CSRFError)
def _csrf_failed(exc: CSRFError):
    """A missing or stale CSRF token: show the form again (with what was typed) and a message."""
    g.lang = g.get("lang") or _page_language()
    if request.endpoint == "supporters.join":
        form = JoinForm()
        form.fail("csrf", t("error.csrf", g.lang))
        return _join_page(form, 400)
    return _page("link_problem.html", 400, csrf=True)


@bp.after_request
def _headers(response):
    origins = current_app.config.get("EMBED_ALLOWED_ORIGINS") or ()
    embeddable = request.endpoint in EMBEDDABLE_ENDPOINTS
    ancestors = " ".join(("'self'", *origins)) if embeddable else "'self'"
    response.headers["Content-Security-Policy"] = page_csp(frame_ancestors=ancestors)
    if not (embeddable and origins):
        response.headers["X-Frame-Options"] = "SAMEORIGIN"  # for browsers without CSP level 2
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Links carry tokens: never leak them to other sites (same-origin keeps CSRF's referrer check working).
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "supporters.static":
        response.headers["Cache-Control"] = "no-store"
        response.vary.add("Accept-Language")
        response.vary.add("Cookie")
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    # Confirm and unsubscribe are authorised by the signed, purpose-bound token in the URL alone,
    # so they work without cookies (RFC 8058 one-click requires that for unsubscribe).
    csrf.exempt(confirm)
    csrf.exempt(unsubscribe)
    if app.config.get("EMBED_ALLOWED_ORIGINS"):
        # In a third-party iframe the browser sends the session cookie (which holds the CSRF
        # secret) only if it is SameSite=None; Secure. Partitioned (CHIPS) keeps it per embedding
        # site, so it cannot be used to track people across sites. See docs/join.md.
        app.config.update(SESSION_COOKIE_SAMESITE="None", SESSION_COOKIE_SECURE=True,
                          SESSION_COOKIE_PARTITIONED=True)
