"""Helpers for the dialog tests (no tests here): pages with their CSRF token, API calls, the mail worker."""

from __future__ import annotations

import re

import sqlalchemy as sa

from core.extensions import db
from core.queues import make_worker
from dialog.models import Backing, Notice, Post
from supporters.links import dialog_token

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
DIALOG_RE = re.compile(r"http://supporters\.test(/dialog/[A-Za-z0-9_.\-]+(?:/posts/\d+)?)")


def page_path(supporter_id: int, post_id: int | None = None) -> str:
    base = f"/dialog/{dialog_token(supporter_id)}"
    return f"{base}/posts/{post_id}" if post_id else base


def form_post(client, path: str, data: dict):
    """GET the page for its CSRF token, then POST the form with it."""
    page = client.get(path)
    token = CSRF_RE.search(page.get_data(as_text=True))
    assert token, page.get_data(as_text=True)[:500]
    return client.post(path, data={**data, "csrf_token": token.group(1)})


def make_topic(api, **fields) -> dict:
    body = {"name_en": "Products", "name_de": "Produkte", **fields}
    response = api.post("/dialog/topics", json=body, role="manager")
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def post_for(api, supporter_id: int, topic_id: int, title: str = "Longer opening hours", body: str = "Please open "
             "on Saturdays too, many of us work during the week.", status: int = 201, **extra) -> dict:
    response = api.post("/dialog/posts", json={"supporter_id": supporter_id, "topic_id": topic_id, "kind": "idea",
                                               "title": title, "body": body, **extra}, role="manager")
    assert response.status_code == status, response.get_json()
    return response.get_json()


def set_status(api, post_id: int, status: str, expect: int = 200, **extra):
    response = api.post(f"/dialog/posts/{post_id}/status", json={"status": status, **extra}, role="manager")
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def run_mail_jobs(app) -> None:
    make_worker(app, ["mail", "default"]).work(burst=True)


def counts(post_id: int) -> dict[str, int]:
    db.session.expire_all()
    out = {"backings": db.session.scalar(sa.select(sa.func.count()).select_from(Backing)
                                         .where(Backing.post_id == post_id)),
           "backers": db.session.scalar(sa.select(Post.backers).where(Post.id == post_id)),
           "notices": db.session.scalar(sa.select(sa.func.count()).select_from(Notice).where(Notice.post_id == post_id))}
    db.session.commit()
    return out
