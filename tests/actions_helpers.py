"""Helpers for the share/review/vote tests (no tests here): API calls, the real worker, mail links."""

from __future__ import annotations

import re
from email import message_from_bytes

import sqlalchemy as sa

from campaigns.actions import Action, Click, Vote, VoteChoice
from core.accounts import create_token, create_user
from core.extensions import db
from core.queues import make_worker

ACT_RE = re.compile(r"http://supporters\.test(/act/[A-Za-z0-9_.\-]+)")
R_RE = re.compile(r"http://supporters\.test(/r/[A-Za-z0-9_.\-]+)")
BODY = "Hello {{first_name}},\n\nplease help: [act now]({{action_url}}).\n\nMore: [about us](https://company.example/about)\n"


def auth(role: str = "manager", email: str | None = None) -> dict[str, str]:
    user = create_user(email or f"{role}@example.com", "a long enough password", role)
    db.session.flush()
    _token, raw = create_token(user, "tests")
    db.session.commit()
    return {"Authorization": f"Bearer {raw}"}


def create(client, headers, kind: str, settings: dict, status: int = 201, body: str = BODY, **extra):
    data = {"name": f"{kind} campaign", "kind": kind, "settings": settings,
            "contents": {"en": {"subject": f"Please {kind}", "body": body},
                         "de": {"subject": f"Bitte {kind}", "body": body}}, **extra}
    response = client.post("/api/v1/campaigns", json=data, headers=headers)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def launch(client, headers, campaign_id: int, app) -> None:
    response = client.post(f"/api/v1/campaigns/{campaign_id}/launch", headers=headers)
    assert response.status_code == 202, response.get_json()
    make_worker(app, ["campaigns"]).work(burst=True)


def mails(sink) -> dict[str, dict[str, str]]:
    """{recipient: {"text/plain": …, "text/html": …}} of everything the sink received."""
    out = {}
    for _sender, rcpts, content in sink.messages:
        msg = message_from_bytes(content)
        out[rcpts[0]] = {p.get_content_type(): p.get_payload(decode=True).decode() for p in msg.walk()
                         if not p.is_multipart()}
        out[rcpts[0]]["subject"] = msg["Subject"]
    return out


def act_path(mail: dict[str, str]) -> str:
    return ACT_RE.search(mail["text/plain"]).group(1)


def r_paths(mail: dict[str, str]) -> list[str]:
    return R_RE.findall(mail["text/plain"])


def counts() -> dict[str, int]:
    db.session.expire_all()
    n = {name: db.session.scalar(sa.select(sa.func.count()).select_from(model))
         for name, model in (("actions", Action), ("votes", Vote), ("choices", VoteChoice), ("clicks", Click))}
    db.session.commit()
    return n


def results(client, headers, campaign_id: int) -> dict:
    response = client.get(f"/api/v1/campaigns/{campaign_id}/results", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()
