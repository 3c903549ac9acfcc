"""The OpenAPI 3 document, built from the routes themselves at `/api/v1/openapi.json`.

Every `api.*` endpoint of the app is described, whichever module added it: the path and its
parameters come from the URL rule, the security from `require(role)`, and the schemas from the
`@doc(...)` decorator (query, body, response). An endpoint without `@doc` still appears, with its
path parameters, its security and the problem+json error shape. Usage (outermost after the route):

    @bp.get("/tags")
    @doc("List tags", tag="Tags", query=TagQuery, response=page_of(TagOut))
    @require("viewer")
    def list_tags(): ...
"""

from __future__ import annotations

import re
from http import HTTPStatus

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Response, current_app, json
from marshmallow import Schema
from werkzeug.routing import IntegerConverter

from api import bp
from api.schemas import Problem

PROBLEM_JSON = "application/problem+json"
# Functions that add to the finished document (e.g. api.webhooks documents the event bodies).
DOCUMENT_HOOKS: list = []
_RULE_ARG = re.compile(r"<(?:(?P<conv>[^:<>]+):)?(?P<name>\w+)>")


def doc(summary: str, *, tag: str, description: str | None = None, query: type[Schema] | None = None,
        body: type[Schema] | None = None, response: type[Schema] | None = None, status: int = 200,
        errors: tuple[int, ...] = (), headers: dict[str, dict] | None = None, public: bool = False,
        idempotent: bool = False, etag: bool = False, body_optional: bool = False):
    """Describe an operation for the OpenAPI document; applied outside `require`.

    Every operation with a body also documents 413 (beyond MAX_CONTENT_LENGTH) and 422 (a field
    with control characters, among others); `body_optional`: no body means the schema's defaults.
    """

    def decorate(view):
        view.api_doc = {"summary": summary, "tag": tag, "description": description, "query": query,
                        "body": body, "response": response, "status": status, "errors": errors,
                        "headers": headers or {}, "public": public, "idempotent": idempotent, "etag": etag,
                        "body_optional": body_optional}
        return view

    return decorate


def _problem(status: int) -> dict:
    return {"description": HTTPStatus(status).phrase, "content": {PROBLEM_JSON: {"schema": Problem}}}


def _path_and_parameters(rule) -> tuple[str, list[dict]]:
    params = []
    for name, converter in rule._converters.items():
        schema: dict = {"type": "string"}
        if isinstance(converter, IntegerConverter):
            schema = {"type": "integer"}
            if converter.min is not None:
                schema["minimum"] = converter.min
            if converter.max is not None:
                schema["maximum"] = converter.max
        params.append({"in": "path", "name": name, "required": True, "schema": schema})
    path = _RULE_ARG.sub(lambda m: "{" + m.group("name") + "}", rule.rule)
    return path, params


def _operation(view, method: str, path_params: list[dict]) -> dict:
    meta = getattr(view, "api_doc", None) or {
        "summary": view.__doc__.strip().splitlines()[0] if view.__doc__ else view.__name__.replace("_", " "),
        "tag": "Other", "description": None, "query": None, "body": None, "response": None, "status": 200,
        "errors": (), "headers": {}, "public": False, "idempotent": False, "etag": False}
    role = getattr(view, "required_role", None)
    op: dict = {"summary": meta["summary"], "tags": [meta["tag"]], "operationId": view.__name__,
                "parameters": list(path_params), "responses": {}}
    description = meta["description"] or ""
    if role is not None:
        description = (description + f"\n\nRequires the `{role.value}` role or higher.").strip()
    if description:
        op["description"] = description
    if meta["query"] is not None:
        op["parameters"].append({"in": "query", "schema": meta["query"]})
    if meta["idempotent"]:
        op["parameters"].append({"in": "header", "name": "Idempotency-Key", "required": False,
                                 "description": "Retry-safe POST: the first response is replayed for 24 h.",
                                 "schema": {"type": "string", "pattern": r"^[!-~]{1,200}$", "maxLength": 200}})
    if meta["etag"] and method in ("patch", "put", "delete"):
        op["parameters"].append({"in": "header", "name": "If-Match", "required": False,
                                 "description": "The ETag you read; a changed resource gives 412.",
                                 "schema": {"type": "string", "maxLength": 200}})
    if meta["body"] is not None:
        op["requestBody"] = {"required": not meta.get("body_optional"),
                             "content": {"application/json": {"schema": meta["body"]}}}
    status = meta["status"]
    success: dict = {"description": HTTPStatus(status).phrase}
    if meta["response"] is not None:
        success["content"] = {"application/json": {"schema": meta["response"]}}
    response_headers = dict(meta["headers"])
    if meta["etag"] and method == "get":
        response_headers["ETag"] = {"schema": {"type": "string"}}
    if response_headers:
        success["headers"] = response_headers
    op["responses"][str(status)] = success

    codes = set(meta["errors"]) | {400}
    if meta["body"] is not None:
        codes |= {413, 415, 422}
    if meta["query"] is not None:
        codes.add(422)
    if path_params:
        codes.add(404)
    if meta["etag"] and method != "get":
        codes.add(412)
    if meta["idempotent"]:
        codes |= {409, 422}
    if meta["public"]:
        op["security"] = []
    else:
        codes |= {401, 403, 429}
    for code in sorted(codes):
        op["responses"][str(code)] = _problem(code)
    op["responses"]["default"] = {"description": "Any other error", "content": {PROBLEM_JSON: {"schema": Problem}}}
    return op


def build_spec(app) -> dict:
    spec = APISpec(
        title="Supporter platform API", version="1", openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "The campaign managers' REST API. Conventions: docs/api.md."},
        servers=[{"url": "/"}],
    )
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer",
                                                   "description": "An API token (`spk_…`), from `flask tokens create` or POST /api/v1/tokens."})
    spec.components.security_scheme("sessionCookie", {"type": "apiKey", "in": "cookie", "name": "session",
                                                      "description": "After POST /api/v1/session; writes also need the X-CSRF-Token header."})
    spec.components.schema("Problem", schema=Problem)
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.endpoint.startswith(f"{bp.name}."):
            continue
        view = app.view_functions[rule.endpoint]
        path, params = _path_and_parameters(rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(view, method.lower(), params)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    document["security"] = [{"bearerAuth": []}, {"sessionCookie": []}]
    for hook in DOCUMENT_HOOKS:
        hook(document)
    return document


@bp.get("/openapi.json")
@doc("This OpenAPI document", tag="Meta", public=True)
def openapi_document():
    # Built once per process: the routes do not change after start-up.
    return Response(json.dumps(_document(current_app)), mimetype="application/json")


def _document(app) -> dict:
    document = app.extensions.get("api_openapi")
    if document is None:
        document = app.extensions["api_openapi"] = build_spec(app)
    return document


_PAGE = """<!doctype html><html lang="en"><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}}
h2{{margin-top:2rem;border-bottom:1px solid #ddd}}section{{margin:1rem 0;padding:.5rem 1rem;background:#f7f7f7}}
code,pre{{font:13px ui-monospace,monospace}}pre{{white-space:pre-wrap;background:#fff;padding:.5rem}}
.m{{display:inline-block;min-width:4.5rem;font-weight:bold}}details summary{{cursor:pointer}}</style>
<h1>{title}</h1><p>{description} The machine-readable contract: <a href="openapi.json">openapi.json</a>.</p>
{body}</html>"""


@bp.get("/docs")
@doc("This API, as a readable page (no JavaScript, no CDN)", tag="Meta", public=True)
def openapi_page():
    from markupsafe import escape

    document = _document(current_app)
    schemas = document["components"]["schemas"]
    by_tag: dict[str, list[str]] = {}
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            params = "".join(f"<li><code>{escape(p['name'])}</code> ({escape(p['in'])}"
                             f"{', required' if p.get('required') else ''}) {escape(p.get('description', ''))}</li>"
                             for p in op.get("parameters", []))
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            ref = body.get("$ref", "").rsplit("/", 1)[-1]
            body_html = (f"<details><summary>Body: <code>{escape(ref)}</code></summary><pre>"
                         f"{escape(json.dumps(schemas.get(ref, body), indent=2))}</pre></details>") if body else ""
            codes = ", ".join(escape(c) for c in op["responses"])
            by_tag.setdefault(op["tags"][0], []).append(
                f"<section><p><span class=m>{method.upper()}</span><code>{escape(path)}</code> — "
                f"{escape(op['summary'])}</p><p>{escape(op.get('description', ''))}</p>"
                f"{'<ul>' + params + '</ul>' if params else ''}{body_html}<p>Responses: {codes}</p></section>")
    body = "".join(f"<h2>{escape(tag)}</h2>{''.join(items)}" for tag, items in sorted(by_tag.items()))
    page = _PAGE.format(title=escape(document["info"]["title"]),
                        description=escape(document["info"].get("description", "")), body=body)
    response = Response(page, mimetype="text/html")
    # Its one <style> element is all it loads (core.hygiene adds the other security headers).
    response.headers["Content-Security-Policy"] = ("default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                                                   "form-action 'none'; frame-ancestors 'none'")
    response.headers["X-Frame-Options"] = "DENY"
    return response
