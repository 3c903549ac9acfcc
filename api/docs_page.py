"""/api/v1/docs: Swagger UI over the OpenAPI document, served from this server alone.

The assets come from the `swagger-ui-bundle` wheel (no CDN); the page has no inline script or
style, so its Content-Security-Policy allows scripts and styles from this origin only. Its start-up
script (api/static/docs.js) adds the X-CSRF-Token header to cookie-authenticated writes, so "Try it
out" works with a bearer token (Authorize) or after signing in with POST /api/v1/session.
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from flask import Blueprint, Response, abort, render_template_string, send_from_directory, url_for

from api import bp
from api.openapi import doc

SWAGGER_DIR = Path(swagger_ui_bundle.swagger_ui_path)
OWN_DIR = Path(__file__).with_name("static")
# Only what the page needs: nothing else of either folder is served.
ASSETS = {"swagger-ui-bundle.js": SWAGGER_DIR, "swagger-ui.css": SWAGGER_DIR, "favicon-32x32.png": SWAGGER_DIR,
          "docs.js": OWN_DIR, "docs.css": OWN_DIR}
POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
          "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

# Not under the `api` blueprint: the assets are no API operations (and stay out of the document).
assets = Blueprint("api_docs", __name__, url_prefix="/api/v1/docs/assets")
BLUEPRINTS = (assets,)  # registered by api.init_app

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Supporter platform API</title>
<link rel="icon" type="image/png" href="{{ url_for('api_docs.asset', name='favicon-32x32.png') }}">
<link rel="stylesheet" href="{{ url_for('api_docs.asset', name='swagger-ui.css') }}">
<link rel="stylesheet" href="{{ url_for('api_docs.asset', name='docs.css') }}">
</head>
<body>
<main>
<noscript><p class="noscript">This page needs JavaScript for the interactive documentation. Without it,
read the contract at <a href="{{ spec_url }}">{{ spec_url }}</a>.</p></noscript>
<div id="swagger-ui" data-spec-url="{{ spec_url }}" data-session-url="{{ session_url }}"></div>
</main>
<script src="{{ url_for('api_docs.asset', name='swagger-ui-bundle.js') }}"></script>
<script src="{{ url_for('api_docs.asset', name='docs.js') }}"></script>
</body>
</html>
"""


@bp.get("/docs")
@doc("This API as interactive documentation (Swagger UI, served offline)", tag="Meta", public=True,
     media={"text/html": {"type": "string"}})
def openapi_page():
    """Every operation with its Markdown description, request and response examples and "Try it out"."""
    page = render_template_string(PAGE, spec_url=url_for("api.openapi_document"), session_url=url_for("api.who_am_i"))
    response = Response(page, mimetype="text/html")
    response.headers["Content-Security-Policy"] = POLICY
    response.headers["X-Frame-Options"] = "DENY"
    return response


@assets.get("/<name>")
def asset(name: str):
    folder = ASSETS.get(name)
    if folder is None:
        abort(404)
    return send_from_directory(folder, name, max_age=3600)
