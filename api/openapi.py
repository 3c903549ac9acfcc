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

import inspect
import re
from http import HTTPStatus

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Response, current_app, json
from marshmallow import Schema
from werkzeug.routing import IntegerConverter

from api import bp
from api.openapi_text import GETTING_STARTED, TAGS, operation_examples, problem_example
from api.schemas import Problem

PROBLEM_JSON = "application/problem+json"
# Functions that add to the finished document (e.g. api.webhooks documents the event bodies).
DOCUMENT_HOOKS: list = []
_RULE_ARG = re.compile(r"<(?:(?P<conv>[^:<>]+):)?(?P<name>\w+)>")


def doc(summary: str, *, tag: str, description: str | None = None, query: type[Schema] | None = None,
        body: type[Schema] | None = None, response: type[Schema] | None = None, status: int = 200,
        errors: tuple[int, ...] = (), headers: dict[str, dict] | None = None, public: bool = False,
        idempotent: bool = False, etag: bool = False, body_optional: bool = False,
        form: type[Schema] | None = None, files: tuple[str, ...] = (), media: dict[str, dict] | None = None):
    """Describe an operation for the OpenAPI document; applied outside `require`.

    Every operation with a body also documents 413 (beyond MAX_CONTENT_LENGTH) and 422 (a field
    with control characters, among others); `body_optional`: no body means the schema's defaults.
    `description` is Markdown (the view's docstring when not given). `form` and `files`: a
    multipart/form-data body (those form fields and file uploads) instead of JSON; `media`: a
    success body that is not JSON, as {media type: schema}. Examples come from api/examples.json.
    """

    def decorate(view):
        view.api_doc = {"summary": summary, "tag": tag, "description": description, "query": query,
                        "body": body, "response": response, "status": status, "errors": errors,
                        "headers": headers or {}, "public": public, "idempotent": idempotent, "etag": etag,
                        "body_optional": body_optional, "form": form, "files": files, "media": media}
        return view

    return decorate


def _problem(status: int) -> dict:
    return {"description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": Problem, "example": problem_example(status)}}}


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
    description = meta["description"] or _docstring_body(view)
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
    example = operation_examples().get(view.__name__, {})
    if meta["body"] is not None:
        op["requestBody"] = {"required": not meta.get("body_optional"), "content": {
            "application/json": _with_example({"schema": _body_schema(meta["body"], method)}, example, "request")}}
    if meta.get("form") is not None:
        op["requestBody"] = {"required": True, "content": {"multipart/form-data": _with_example(
            {"schema": _form_schema(meta["form"], meta.get("files", ()))}, example, "form")}}
    status = meta["status"]
    success: dict = {"description": HTTPStatus(status).phrase}
    if meta["response"] is not None:
        success["content"] = {"application/json": _with_example({"schema": meta["response"]}, example, "response")}
    for media_type, schema in (meta.get("media") or {}).items():
        success.setdefault("content", {})[media_type] = _with_example({"schema": schema}, example, "response")
    response_headers = dict(meta["headers"])
    if meta["etag"] and method == "get":
        response_headers["ETag"] = {"schema": {"type": "string"}}
    if response_headers:
        success["headers"] = response_headers
    op["responses"][str(status)] = success

    codes = set(meta["errors"]) | {400}
    if meta["body"] is not None or meta.get("form") is not None:
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
    op["responses"]["default"] = {"description": "Any other error", "content": {PROBLEM_JSON: {
        "schema": Problem, "example": problem_example("default")}}}
    return op


def _body_schema(schema: type[Schema], method: str) -> type[Schema] | Schema:
    """A PATCH loads its body partially (fields given replace): then no field is required."""
    if method == "patch" and any(f.required for f in schema._declared_fields.values()):
        return schema(partial=True)
    return schema


def _docstring_body(view) -> str:
    """The Markdown under a view docstring's first line (the summary), if any."""
    lines = (view.__doc__ or "").strip().splitlines()
    return inspect.cleandoc("\n".join(lines[1:])) if len(lines) > 1 else ""


def _with_example(media: dict, example: dict, key: str) -> dict:
    if key in example:
        media["example"] = example[key]
    return media


def _form_schema(form: type[Schema], files: tuple[str, ...]) -> dict:
    """A multipart body: the form schema's fields as strings (booleans as true/false), plus the files."""
    properties: dict[str, dict] = {name: {"type": "string", "format": "binary"} for name in files}
    for name, field in form._declared_fields.items():
        kind = {"Boolean": "boolean", "List": "array"}.get(type(field).__name__, "string")
        properties[name] = {"type": kind, **({"items": {"type": "string"}} if kind == "array" else {})}
    return {"type": "object", "properties": properties, "required": list(files)}


def build_spec(app) -> dict:
    spec = APISpec(
        title="Supporter platform API", version="1", openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": GETTING_STARTED},
        servers=[{"url": "/"}],
    )
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer",
                                                   "description": "An API token (`spk_…`), from `flask tokens create` or POST /api/v1/tokens."})
    spec.components.security_scheme("sessionCookie", {"type": "apiKey", "in": "cookie", "name": "session",
                                                      "description": "After POST /api/v1/session; writes also need the X-CSRF-Token header."})
    spec.components.schema("Problem", schema=Problem)
    for name, text in TAGS:
        spec.tag({"name": name, "description": text})
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.endpoint.startswith(f"{bp.name}."):
            continue
        view = app.view_functions[rule.endpoint]
        if getattr(view, "api_hidden", False):
            continue
        path, params = _path_and_parameters(rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            body = (getattr(view, "api_doc", None) or {}).get("body")
            partial = _body_schema(body, method.lower()) if body is not None else None
            name = body.__name__.removesuffix("Schema") + "Patch" if body is not None else ""
            if isinstance(partial, Schema) and name not in spec.components.schemas:
                spec.components.schema(name, schema=partial)  # a partial body gets its own name
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
