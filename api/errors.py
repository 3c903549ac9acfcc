"""RFC 9457 problem details for every error under /api/ (never an HTML page, never a bare 500)."""

from __future__ import annotations

import logging

from flask import Flask, Response, json, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from core.errors import DomainError, ValidationFailed

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


def problem(status: int, title: str, detail: str | None = None, *, type_: str = "about:blank",
            errors: list[dict[str, str]] | None = None, headers: dict[str, str] | None = None,
            **extra) -> Response:
    body = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def flatten_marshmallow(messages, prefix: str = "") -> list[dict[str, str]]:
    """Turn marshmallow's nested messages into a flat list of {field, message}."""
    out: list[dict[str, str]] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            field = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                field = prefix or "body"
            out.extend(flatten_marshmallow(value, field))
    elif isinstance(messages, list):
        for item in messages:
            if isinstance(item, str):
                out.append({"field": prefix or "body", "message": item})
            else:
                out.extend(flatten_marshmallow(item, prefix))
    else:
        out.append({"field": prefix or "body", "message": str(messages)})
    return out


def validation_problem(errors: list[dict[str, str]], detail: str | None = None) -> Response:
    first = errors[0] if errors else {"field": "body", "message": "invalid"}
    return problem(422, "Validation failed", detail or f"{first['field']}: {first['message']}",
                   type_="/api/v1/problems/validation", errors=errors)


def _is_api() -> bool:
    return request.path.startswith("/api/")


def init_app(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        if isinstance(exc, ValidationFailed):
            return validation_problem(exc.as_list(), exc.detail)
        slug = type(exc).__name__.lower()
        return problem(exc.status, exc.title, exc.detail, type_=f"/api/v1/problems/{slug}")

    @app.errorhandler(ValidationError)
    def _marshmallow(exc: ValidationError):
        return validation_problem(flatten_marshmallow(exc.messages))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if not _is_api():
            return exc
        headers = {}
        if exc.code == 405 and exc.valid_methods:
            headers["Allow"] = ", ".join(exc.valid_methods)
        if exc.code == 429:
            response = exc.get_response()
            retry = response.headers.get("Retry-After")
            if retry:
                headers["Retry-After"] = retry
        return problem(exc.code or 500, exc.name, exc.description, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return _http(exc)
        log.exception("unhandled error on %s %s", request.method, request.path)
        if _is_api():
            return problem(500, "Internal server error", "The error was logged; nothing was changed.")
        return Response("Internal server error", status=500, mimetype="text/plain")
