"""The words of the OpenAPI document: the getting-started text, the tags in reading order, and the
example of each error status. Markdown (CommonMark), as Swagger UI renders it on /api/v1/docs."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

GETTING_STARTED = """\
The campaign managers' REST API: supporters, tags, segments, campaigns and their results.
JSON in, JSON out; errors are `application/problem+json` (RFC 9457) and name the offending field.

## Getting started

1. **Get a token.** An operator creates one on the server (the token is printed once; only its
   hash is stored):

   ```bash
   .venv/bin/flask users create you@example.org --role manager      # prompts for a password
   .venv/bin/flask tokens create --user you@example.org --name "my script"
   ```

   Admins can also create tokens here, with `POST /api/v1/tokens`.
2. **Call the API** with the token in the `Authorization` header:

   ```bash
   curl -H "Authorization: Bearer spk_…" https://supporters.example.org/api/v1/campaigns
   ```
3. **Try it on this page.** Click **Authorize**, paste the token under `bearerAuth`, then open an
   operation, **Try it out** and **Execute**. Or sign in with `POST /api/v1/session` (email and
   password): this page then sends the session cookie, and adds the `X-CSRF-Token` header that
   cookie-authenticated writes need by itself.

## Conventions

- **Roles**: `viewer` reads; `manager` also writes supporters, tags, segments and campaigns;
  `admin` also manages users and tokens and reads the audit trail. Each operation names its role.
- **Lists** page with a cursor: follow `next` (or `next_after`) until it is `null`.
- **Retries**: send an `Idempotency-Key` header on a POST and a retry replays the first answer.
- **Concurrent edits**: send the `ETag` you read as `If-Match`; a stale write gets `412`.
- **Rate limit**: `API_RATE_LIMIT` per token (default 600 a minute); over it, `429` with `Retry-After`.
- **Results as charts**: `GET /api/v1/campaigns/{id}/charts/{name}.svg` (and, for people, the
  results pages under `/manage/campaigns`).

The machine-readable contract is [`/api/v1/openapi.json`](/api/v1/openapi.json); the conventions in
full are in `docs/api.md` of the repository.
"""

# Reading order: what a campaign manager does first comes first.
TAGS = [
    ("Session", "Who am I; sign in and out with a session cookie (for browsers)."),
    ("Campaigns", "Create, preview, test and launch campaigns; pause, resume, cancel; delivery figures."),
    ("Campaign results", "What a campaign achieved: funnel, per-kind figures, actions, charts as SVG, "
                         "a petition's official answer, a survey's text answers, follow-ups and export."),
    ("Dialog", "Ideas and concerns from supporters: topics, posts, backing, triage, status changes and answers."),
    ("Supporters", "The people: create with consent evidence, read, change, tag, export, erase."),
    ("Tags", "Labels on supporters; public tags are interests on the join form."),
    ("Segments", "Saved audience filters in the segment language; count and preview before use."),
    ("Jobs", "Long exports and imports as background jobs with an expiring download link."),
    ("Webhooks", "Outgoing signed webhooks: endpoints, secret rotation, the delivery log, replay and test events."),
    ("Settings", "The organisation's identity shown in every mail."),
    ("Users and tokens", "Admin users, their roles and API tokens (admins only)."),
    ("Audit", "Who did what, when (admins only)."),
    ("Meta", "This documentation and the OpenAPI document."),
]

_PROBLEMS = {
    400: ("Malformed JSON", "/api/v1/problems/malformedjson", "the body is not valid JSON: Expecting value"),
    401: ("Unauthorized", "about:blank", "the token is unknown, revoked or expired"),
    403: ("Forbidden", "about:blank", "this needs the manager role; you have viewer"),
    404: ("Not found", "/api/v1/problems/notfound", "campaign 7 does not exist"),
    409: ("Conflict", "/api/v1/problems/conflict", "the campaign is sent; only a draft can be changed"),
    410: ("Gone", "about:blank", "the download link expired; start the export again"),
    412: ("Precondition failed", "/api/v1/problems/preconditionfailed",
          "the resource changed since you read it; GET it again and reapply your change"),
    413: ("Request Entity Too Large", "about:blank", "The data value transmitted exceeds the capacity limit."),
    415: ("Unsupported media type", "/api/v1/problems/unsupportedmediatype",
          "send the body as JSON with 'Content-Type: application/json'"),
    429: ("Too Many Requests", "about:blank", "600 per 1 minute"),
    502: ("Bad Gateway", "about:blank", "the mail server refused the test message: 550 5.7.1 relaying denied"),
}


def problem_example(status: int | str) -> dict:
    """An example problem body for an error status (a validation failure for 422)."""
    if status == 422:
        return {"type": "/api/v1/problems/validation", "title": "Validation failed", "status": 422,
                "detail": "name: must not contain control characters or line breaks (found U+000A)",
                "errors": [{"field": "name",
                            "message": "must not contain control characters or line breaks (found U+000A)"}]}
    if status == "default":
        return {"type": "about:blank", "title": "Internal server error", "status": 500,
                "detail": "The error was logged; nothing was changed."}
    title, type_, detail = _PROBLEMS.get(int(status), ("Error", "about:blank", None))
    body = {"type": type_, "title": title, "status": int(status)}
    if detail:
        body["detail"] = detail
    return body


@cache
def operation_examples() -> dict[str, dict]:
    """operationId → {"request", "form", "response", "status"}: api/examples.json, made by
    scripts/harvest_api_examples.py from real answers and checked by tests/test_api_examples.py."""
    return json.loads((Path(__file__).with_name("examples.json")).read_text(encoding="utf-8"))
