"""The supporters' dialog pages, reached from the personal link in every campaign mail and on the
preferences page: /dialog/<token> (post, see one's posts, read and back what others raised) and
/dialog/<token>/posts/<id> (one post: back, withdraw a backing, withdraw one's own post).

No accounts: the signed, purpose-bound token is the credential; the forms carry a CSRF token
too. GET, HEAD and OPTIONS only show; every change is a POST. Rate limits: per IP
(DIALOG_RATE_LIMIT) and per supporter (DIALOG_SUPPORTER_RATE_LIMIT) on every POST.

A supporter's own changes (a post submitted or withdrawn, a backing given or withdrawn) are in
the audit trail like a manager's, written in the same transaction: actor `supporter` with the
supporter's id, the post as object, `{"via": "page"}` as detail. No text of the post, no
address, no IP (a supporter's IP is personal data the trail has no use for); erasure removes the
supporter's id from these rows (dialog.privacy).
"""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, g, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import TooManyRequests

from core.accounts import record_audit
from core.errors import DomainError, NotFound
from core.extensions import db, limiter
from core.signing import ExpiredToken, InvalidToken, read_token
from dialog import backing, digest, posts, text
from dialog.i18n import t
from dialog.models import Post, PostKind, PostStatus, Topic
from dialog.rules import DialogConflict, DialogForbidden, DialogInvalid
from supporters.i18n import negotiate
from supporters.models import LANGUAGES

bp = Blueprint("dialog", __name__, template_folder="templates")


def _ip_limit() -> str:
    return current_app.config["DIALOG_RATE_LIMIT"]


def _supporter_limit() -> str:
    return current_app.config["DIALOG_SUPPORTER_RATE_LIMIT"]


def _supporter_key() -> str:
    """The per-supporter rate-limit key: the supporter the (signed) token names."""
    try:
        payload = read_token("dialog", (request.view_args or {}).get("token", ""))
        return f"dialog-supporter:{int(payload['s'])}"
    except (InvalidToken, TypeError, KeyError, ValueError):
        return "dialog-supporter:invalid"


def _audit(action: str, supporter, post_id: int) -> None:
    """The supporter's own change, in its transaction (see the module docstring)."""
    record_audit(action, actor_type="supporter", actor_id=supporter.id, object_type="dialog_post",
                 object_id=post_id, detail={"via": "page"})


@bp.before_request
def _language() -> None:
    requested = request.args.get("lang")
    g.lang = requested if requested in LANGUAGES else negotiate(None, request.accept_languages)


@bp.context_processor
def _helpers() -> dict:
    return {"_": lambda key, **values: t(key, g.get("lang", "en"), **values), "languages": LANGUAGES,
            "to_html": text.to_html}


def _page(template: str, status: int = 200, **context):
    return render_template(f"dialog/{template}", lang=g.lang, **context), status


def _supporter(token: str):
    """The supporter of the link, or a page saying why the link does not work."""
    from dialog.links import supporter_from_token

    try:
        supporter = supporter_from_token(token)
    except ExpiredToken:
        return None, _page("problem.html", 410, expired=True)
    except InvalidToken:
        return None, _page("problem.html", 400)
    g.lang = request.args.get("lang") if request.args.get("lang") in LANGUAGES else supporter.language
    return supporter, None


def _problem_text(exc: DomainError) -> tuple[str, str]:
    """(field, translated message) for a rule's refusal."""
    if isinstance(exc, DialogInvalid):
        field, code = next(iter(exc.codes.items()))
        return field, t(f"dialog.error.{code}", g.lang)
    code = getattr(exc, "code", "invalid")
    return getattr(exc, "field", None) or "form", t(f"dialog.error.{code}", g.lang)


def _home(supporter, token: str, status: int = 200, problems: dict | None = None, form: dict | None = None,
          sent: bool = False):
    topics = posts.topics_for(supporter)
    open_topics = [topic for topic in topics if topic.is_open]
    listed = {topic.id: posts.listed_posts(topic.id, 20) for topic in topics if topic.visibility.value == "public"}
    return _page("home.html", status, supporter=supporter, token=token, topics=topics, open_topics=open_topics,
                 listed=listed, mine=posts.own_posts(supporter.id), problems=problems or {}, form=form or {},
                 kinds=[k.value for k in PostKind], sent=sent, digest_on=digest.subscribed(supporter.id))


@bp.route("/dialog/<token>", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
@limiter.limit(_supporter_limit, methods=["POST"], key_func=_supporter_key)
def home(token: str):
    supporter, problem = _supporter(token)
    if problem:
        return problem
    if request.method != "POST":
        return _home(supporter, token)
    action = request.form.get("action", "post")
    if action in ("digest_on", "digest_off"):
        try:
            digest.set_subscription(supporter, action == "digest_on")
        except DomainError as exc:
            field, message = _problem_text(exc)
            return _home(supporter, token, 409, problems={"digest": message})
        return _home(supporter, token)
    raw_topic = (request.form.get("topic_id") or "").strip()
    form = {"title": request.form.get("title", ""), "body": request.form.get("body", ""),
            "kind": request.form.get("kind", ""), "topic_id": raw_topic, "show_name": bool(request.form.get("show_name"))}
    data = {**form, "topic_id": int(raw_topic) if raw_topic.isdigit() and len(raw_topic) < 10 else raw_topic or None}
    try:
        posts.create_post(supporter, data, record=lambda post: _audit("dialog.post.create", supporter, post.id))
    except DialogInvalid as exc:
        problems = {field: t(f"dialog.error.{code}", g.lang) for field, code in exc.codes.items()}
        return _home(supporter, token, 422, problems=problems, form=form)
    except (DialogConflict, DialogForbidden) as exc:
        field, message = _problem_text(exc)
        return _home(supporter, token, exc.status, problems={field: message}, form=form)
    return _home(supporter, token, sent=True)


@bp.route("/dialog/<token>/posts/<int:post_id>", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
@limiter.limit(_supporter_limit, methods=["POST"], key_func=_supporter_key)
def post_page(token: str, post_id: int):
    supporter, problem = _supporter(token)
    if problem:
        return problem
    post = db.session.get(Post, post_id)
    if post is None or not posts.visible_to(post, supporter):
        return _page("problem.html", 404, missing=True)
    status, message, done = 200, None, None
    if request.method == "POST":
        action = request.form.get("action")
        try:
            if action == "back":
                post = backing.back(supporter, post_id, record=lambda: _audit("dialog.post.back", supporter, post_id))
            elif action == "unback":
                post = backing.unback(supporter, post_id,
                                      record=lambda: _audit("dialog.post.unback", supporter, post_id))
            elif action == "withdraw":
                post = posts.withdraw_post(supporter, post_id,
                                           record=lambda: _audit("dialog.post.withdraw", supporter, post_id))
                done = t("dialog.withdrawn", g.lang)
            else:
                status, message = 422, t("dialog.error.invalid", g.lang)
        except (DialogConflict, DialogForbidden, DialogInvalid, NotFound) as exc:
            status, message = exc.status, _problem_text(exc)[1]
    topic = db.session.get(Topic, post.topic_id)
    return _page("post.html", status, supporter=supporter, token=token, post=post, topic=topic, message=message,
                 done=done, backed=posts.backs(supporter.id, post.id), author=posts.author_label(post, g.lang),
                 is_author=post.supporter_id == supporter.id, PostStatus=PostStatus,
                 backable=post.status in backing.BACKABLE and post.supporter_id != supporter.id)


@bp.errorhandler(TooManyRequests)
def _too_many(exc: TooManyRequests):
    g.lang = g.get("lang") or "en"
    response = exc.get_response()
    body, _status = _page("problem.html", 429, limited=True)
    response.set_data(body)
    response.mimetype = "text/html"
    return response


@bp.errorhandler(CSRFError)
def _csrf_failed(exc: CSRFError):
    g.lang = g.get("lang") or "en"
    return _page("problem.html", 400, csrf=True)


@bp.after_request
def _headers(response):
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'self'")
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"  # the URL holds the token
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("Cookie")
    return response


def init_app(app: Flask) -> None:
    from dialog import privacy  # noqa: F401 - registers the export section and the eraser

    app.register_blueprint(bp)
