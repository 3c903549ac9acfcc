"""/manage: sign in with the admin user's email and password (the API's session), then look at the
campaigns and their results. Read-only; no JavaScript; printable. Any role may look (viewers read
the same figures through the API)."""

from __future__ import annotations

from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError

import reports.charts as charts
from campaigns import results
from campaigns.models import Campaign
from core.accounts import authenticate, record_audit
from core.db import utcnow
from core.errors import DomainError
from core.extensions import db, limiter
from core.headers import unsafe_characters

bp = Blueprint("reports", __name__, url_prefix="/manage", template_folder="templates",
               static_folder="static", static_url_path="/static")
POLICY = ("default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; base-uri 'none'; "
          "frame-ancestors 'none'")
PAGE_SIZE = 50


@bp.after_request
def _headers(response):
    response.headers["Content-Security-Policy"] = POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "reports.static":
        response.headers["Cache-Control"] = "no-store"  # results are not for shared caches
    return response


def _signed_in() -> bool:
    return bool(current_user.is_authenticated)


def _to_sign_in():
    return redirect(url_for("reports.sign_in", next=request.full_path.rstrip("?")))


def _safe_next(value: str | None) -> str:
    """Only a path of these pages: never another site (an open redirect), never a scheme-relative URL."""
    parts = urlsplit(value or "")
    if value and not parts.scheme and not parts.netloc and value.startswith("/manage/") and "\\" not in value \
            and not unsafe_characters(value):
        return value
    return url_for("reports.campaigns")


@bp.get("/")
def index():
    return redirect(url_for("reports.campaigns"))


@bp.route("/sign-in", methods=["GET", "POST"])
@limiter.limit("10 per minute", methods=["POST"], key_func=lambda: f"manage-signin:{get_remote_address()}")
def sign_in():
    target = _safe_next(request.values.get("next"))
    if request.method != "POST":  # GET and HEAD show; only POST acts
        if _signed_in():
            return redirect(target)
        return render_template("reports/sign_in.html", errors={}, email="", next=target)
    email = request.form.get("email", "").strip()
    password = request.form.get("password", "")
    errors = {}
    if not 3 <= len(email) <= 254 or "@" not in email:
        errors["email"] = "Enter the email address of your account."
    elif unsafe_characters(email):
        errors["email"] = "The address must not contain control characters or line breaks."
    if not 1 <= len(password) <= 1024 or "\x00" in password:
        errors["password"] = "Enter your password (at most 1024 characters)."
    user = authenticate(email, password) if not errors else None
    if user is None and not errors:
        errors["form"] = "Wrong email or password."
    if errors:
        shown = "" if "email" in errors else email
        return render_template("reports/sign_in.html", errors=errors, email=shown, next=target), 422
    user.last_login_at = utcnow()
    login_user(user)
    record_audit("session.sign_in", actor_type="user", actor_id=user.id, actor_label=user.email,
                 object_type="user", object_id=user.id, ip=request.remote_addr)
    db.session.commit()
    return redirect(target, 303)  # Post/Redirect/Get: a reload does not post again


@bp.post("/sign-out")
def sign_out():
    if _signed_in():
        current_user.end_sessions()  # every copy of the cookie ends, as with DELETE /api/v1/session
        db.session.commit()
    logout_user()
    return redirect(url_for("reports.sign_in"), 303)


@bp.get("/campaigns")
def campaigns():
    if not _signed_in():
        return _to_sign_in()
    before = request.args.get("before", "")
    if before and (not before.isdigit() or len(before) > 10):
        abort(404)
    query = sa.select(Campaign).order_by(Campaign.id.desc()).limit(PAGE_SIZE)  # newest first
    if before:
        query = query.where(Campaign.id < int(before))
    rows = db.session.scalars(query).all()
    items = [(c, results.results(c.id)) for c in rows]
    return render_template("reports/campaigns.html", items=items,
                           next_before=rows[-1].id if len(rows) == PAGE_SIZE else None)


@bp.get("/campaigns/<int:campaign_id>")
def campaign(campaign_id: int):
    if not _signed_in():
        return _to_sign_in()
    bucket = request.args.get("bucket", "hour")  # a campaign's first days, hour by hour
    if bucket not in results.BUCKETS:
        bucket = "hour"
    item = db.session.get(Campaign, campaign_id)
    if item is None:
        abort(404)
    stats = charts.stats_for(campaign_id, bucket)
    return render_template("reports/campaign.html", campaign=item, stats=stats, bucket=bucket,
                           buckets=results.BUCKETS, charts=charts.charts_for(stats, item.kind.value))


@bp.errorhandler(CSRFError)
def _csrf_failed(exc: CSRFError):
    """A stale form (e.g. left open across a restart): show it again with a message, change nothing."""
    if request.endpoint == "reports.sign_in":
        return render_template("reports/sign_in.html", errors={"form": "The form expired; please sign in again."},
                               email="", next=_safe_next(request.values.get("next"))), 400
    return redirect(url_for("reports.sign_in"), 303)


@bp.errorhandler(DomainError)
def _domain(exc: DomainError):
    return render_template("reports/problem.html", detail=exc.detail), exc.status
