"""Who is asking, on every public page: the organisation's name, logo, privacy and imprint links
(the same settings as the mail layout, core.org_settings), a landing page at `/` and a favicon."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)

from core.org_settings import Org, current_org
from supporters.i18n import negotiate, t

bp = Blueprint("pages", __name__, template_folder="templates")
STATIC = Path(__file__).resolve().parent / "static"


def page_org() -> Org:
    """The organisation as pages show it; read once per request."""
    if "page_org" not in g:
        g.page_org = current_org()
    return g.page_org


def image_sources() -> str:
    """CSP `img-src` for a page: ours, data: URLs, and the logo's origin when one is set and shown."""
    org = g.get("page_org")
    if org is not None and org.logo_url:
        parts = urlsplit(org.logo_url)
        return f"'self' data: {parts.scheme}://{parts.netloc}"
    return "'self' data:"


def page_csp(form_action: str = "'self'", frame_ancestors: str = "'self'") -> str:
    """The Content-Security-Policy of a public page: nothing inline, nothing from elsewhere but the logo."""
    return (f"default-src 'self'; img-src {image_sources()}; style-src 'self'; script-src 'self'; "
            f"form-action {form_action}; base-uri 'none'; object-src 'none'; frame-ancestors {frame_ancestors}")


@bp.get("/")
def home():
    """A small landing page (who we are, join, privacy), or a redirect to the company's own site."""
    target = current_app.config.get("HOME_REDIRECT_URL")
    if target:
        return redirect(target, 302)
    lang = negotiate(request.args.get("lang"), request.accept_languages)
    g.lang = lang
    return render_template("supporters/home.html", lang=lang, languages=(),
                           _=lambda key, **values: t(key, lang, **values),
                           join_url=url_for("supporters.join", lang=lang))


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask for /favicon.ico on every page; answer with the SVG icon instead of a 404."""
    return send_from_directory(STATIC, "favicon.svg", mimetype="image/svg+xml", max_age=7 * 86400)


@bp.after_request
def _headers(response):
    if request.endpoint == "pages.home":
        response.headers["Content-Security-Policy"] = page_csp()
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        response.vary.add("Accept-Language")
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.context_processor
    def _branding() -> dict:
        return {"page_org": page_org}
