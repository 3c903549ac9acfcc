"""Only POST changes state: every route of the URL map, every other method, valid tokens, no row changes.

Mail scanners and link checkers send GET, HEAD and OPTIONS (and sometimes stranger methods) to every
link in a mail; none of them may confirm, unsubscribe, sign, vote or save preferences. The API's
PATCH and DELETE are authenticated writes by design and are left to the API's own tests.
"""

from __future__ import annotations

import hashlib
import re

import pytest
import sqlalchemy as sa
from werkzeug.exceptions import MethodNotAllowed

from supporters import links
from supporters.models import SupporterStatus
from tests.actions_helpers import act_path, auth, create, launch, mails, r_paths
from tests.factories import make_supporter
from tests.test_vote_actions import PETITION, POLL

SHARE = {"url": "https://company.example/story", "text": {"en": "A story worth reading"}, "networks": ["x", "copy"]}
METHODS = ("GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE", "POST")
# What a body could carry to make a write branch act, were any method to reach it.
FORM = {"action": "leave", "List-Unsubscribe": "One-Click", "comment": "signed by a scanner", "option": "1",
        "network": "x", "text": "shared", "site": "google", "name": "Scanner", "language": "en",
        "asks_per_month": "1", "email": "scanner@example.org", "consent": "y", "kind": "fan"}
# A GET of an action page or a tracked link counts a click (the funnel's "clicked"; never an action; a
# HEAD is a scanner and counts nothing), and reading a supporter's export through the API (GET or HEAD)
# is recorded in the audit trail.
MAY_TOUCH = {("GET", "actions.act"): {"clicks", "links"}, ("GET", "actions.follow"): {"clicks", "links"},
             ("GET", "api.export"): {"audit_events"}, ("HEAD", "api.export"): {"audit_events"}}


@pytest.fixture
def settings(migrated, smtp_sink):
    return {**migrated, "SMTP_URL": smtp_sink.url, "RATELIMIT_ENABLED": "0"}


def _snapshot(db) -> dict[str, str]:
    """A checksum of every row of every table."""
    db.session.expire_all()
    out = {}
    for table in db.metadata.sorted_tables:
        rows = sorted(repr(tuple(row)) for row in db.session.execute(sa.select(table)))
        out[table.name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    db.session.commit()
    return out


@pytest.fixture
def tokens(app, client, db, smtp_sink):
    """Valid tokens for every token-taking route: one value per kind of page behind it."""
    manager = auth("manager")
    active = make_supporter("active@example.org")
    pending = make_supporter("pending@example.org", status=SupporterStatus.PENDING)
    values: dict[str, list[str]] = {
        "supporters.unsubscribe": [links.unsubscribe_token(active.id)],
        "supporters.preferences": [links.preferences_token(active.id)],
        "supporters.confirm": [links.confirm_token(pending.id)],
        "actions.act": [], "actions.follow": [],
    }
    for kind, config in (("vote", PETITION), ("vote", POLL), ("share", SHARE)):
        smtp_sink.messages.clear()
        campaign = create(client, manager, kind, config)
        launch(client, manager, campaign["id"], app)
        mail = mails(smtp_sink)[active.email]
        values["actions.act"].append(act_path(mail).rsplit("/", 1)[1])
        values["actions.follow"].extend(p.rsplit("/", 1)[1] for p in r_paths(mail))
    # Dialog pages (issue 14): the supporter's page and a published post on it.
    values["dialog.home"] = [links.dialog_token(active.id)]
    values["dialog.post_page"] = [f"/dialog/{links.dialog_token(active.id)}/posts/{_dialog_post(db)}"]
    assert all(values.values()), values
    return {"values": values, "manager": manager}


def _dialog_post(db) -> int:
    from dialog import moderation, posts
    from dialog.models import PostStatus, Topic

    topic = Topic(name_en="Products")
    db.session.add(topic)
    db.session.commit()
    post = posts.create_post(make_supporter("author@example.org"), {
        "topic_id": topic.id, "kind": "idea", "title": "Saturdays", "body": "Please open on Saturdays too."})
    moderation.change_status(post, PostStatus.PUBLISHED)
    return post.id


def _paths(app, rule, values) -> list[str]:
    """Concrete paths for a rule: its tokens, or 1 for every other argument."""
    if rule.endpoint in values:  # a token for every argument, or a whole path
        return [token if token.startswith("/") else re.sub(r"<[^>]+>", token, rule.rule)
                for token in values[rule.endpoint]]
    path = re.sub(r"<path:[^>]+>", "supporters.css", rule.rule)
    return [re.sub(r"<[^>]+>", "1", path)]


def _routed(app, path: str, method: str) -> bool:
    """Whether any rule takes this method here (/confirm/new also matches GET /confirm/<token>)."""
    try:
        app.url_map.bind("supporters.test").match(path, method)
    except MethodNotAllowed:
        return False
    return True


def test_no_method_but_post_changes_anything_on_any_route(app, client, db, tokens):
    before = _snapshot(db)
    checked = 0
    for rule in app.url_map.iter_rules():
        headers = tokens["manager"] if rule.endpoint.startswith("api.") else {}
        for path in _paths(app, rule, tokens["values"]):
            for method in METHODS:
                routed = _routed(app, path, method)
                if method == "POST" and routed:
                    continue
                if rule.endpoint.startswith("api.") and routed and method in ("PATCH", "DELETE"):
                    continue  # the API's authenticated writes
                response = client.open(path, method=method, data=FORM, headers=headers)
                where = f"{method} {path}"
                assert response.status_code < 500, where
                if not routed:
                    assert response.status_code == 405, where
                after = _snapshot(db)
                changed = {name for name in after if after[name] != before[name]}
                changed -= MAY_TOUCH.get((method, rule.endpoint), set())
                assert not changed, f"{where} changed {sorted(changed)}"
                before = after
                checked += 1
    assert checked > 400


def test_a_head_request_neither_unsubscribes_nor_signs(app, client, db, tokens):
    from campaigns.actions import Action, Click

    unsubscribe, petition = tokens["values"]["supporters.unsubscribe"][0], tokens["values"]["actions.act"][0]
    assert client.head(f"/unsubscribe/{unsubscribe}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert client.head(f"/act/{petition}", data={"comment": "hi"}).status_code == 200
    assert client.head(f"/r/{tokens['values']['actions.follow'][0]}").status_code == 302
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Action)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Click)) == 0
    from supporters.models import Supporter

    assert db.session.scalar(sa.select(Supporter.status).where(Supporter.email == "active@example.org")) \
        is SupporterStatus.ACTIVE
