"""Helpers for the API tests: callers with a token per role, and problem+json assertions."""

from __future__ import annotations

from core.accounts import create_token, create_user


class ApiCaller:
    """A test client that sends `Authorization: Bearer` for the chosen role."""

    def __init__(self, app, db):
        self.app, self.db = app, db
        self.client = app.test_client()
        self.tokens: dict[str, str] = {}
        self.users: dict[str, object] = {}

    def token(self, role: str) -> str:
        if role not in self.tokens:
            user = create_user(f"{role}@example.com", "correct horse battery staple", role)
            self.db.session.flush()
            _token, secret = create_token(user, f"{role} token")
            self.db.session.commit()
            self.users[role], self.tokens[role] = user, secret
        return self.tokens[role]

    def call(self, method: str, path: str, role: str | None = "admin", headers: dict | None = None, **kwargs):
        headers = dict(headers or {})
        if role is not None:
            headers["Authorization"] = f"Bearer {self.token(role)}"
        return self.client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    def get(self, path, role="admin", **kw):
        return self.call("GET", path, role, **kw)

    def post(self, path, json=None, role="admin", **kw):
        return self.call("POST", path, role, json=json, **kw)

    def patch(self, path, json=None, role="admin", **kw):
        return self.call("PATCH", path, role, json=json, **kw)

    def delete(self, path, role="admin", **kw):
        return self.call("DELETE", path, role, **kw)


def assert_problem(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["title"] and body["type"]
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body
