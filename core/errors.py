"""Domain errors raised by services; the web and API layers map them to HTML or problem+json."""

from __future__ import annotations


class DomainError(Exception):
    status = 400
    title = "Bad request"

    def __init__(self, detail: str | None = None):
        super().__init__(detail or self.title)
        self.detail = detail or self.title


class ValidationFailed(DomainError):
    """Input is invalid; `errors` maps a field (or a JSON path) to its messages."""

    status = 422
    title = "Validation failed"

    def __init__(self, errors: dict[str, list[str]], detail: str | None = None):
        self.errors = errors
        first = next(iter(errors.items()), ("", [""]))
        super().__init__(detail or f"{first[0]}: {first[1][0]}" if first[0] else detail)

    def as_list(self) -> list[dict[str, str]]:
        return [{"field": f, "message": m} for f, msgs in self.errors.items() for m in msgs]


class NotFound(DomainError):
    status = 404
    title = "Not found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"


class UpstreamFailed(DomainError):
    """A server we depend on (the SMTP relay) failed or refused; nothing on our side changed."""

    status = 502
    title = "Bad gateway"
