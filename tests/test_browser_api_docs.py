"""/api/v1/docs in Debian's chromium (Playwright): Swagger UI loads from this server alone (every
request is watched), under its strict policy (no violation reported), renders the getting-started
Markdown and the tags in order, and "Try it out" performs authenticated calls: with a bearer token
from the Authorize dialog, and with the session cookie after signing in, where the page adds the
CSRF header that a write needs."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from api.openapi_text import TAGS
from core.accounts import create_token, create_user
from tests.screenshots import shot
from tests.servers import free_port
from tests.test_browser_join import CHROMIUM, LiveServer, browser  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(), reason="no chromium")]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def live(app, db, settings):
    from wsgi import create_app

    user = create_user("manager@example.org", PASSWORD, "manager")
    db.session.flush()
    _token, secret = create_token(user, "docs test")
    db.session.commit()
    port = free_port()
    web = create_app({**settings, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"})
    with LiveServer(web, port) as server:
        yield f"http://127.0.0.1:{server.port}", secret


def _watch(page, base: str) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {"requests": [], "violations": [], "errors": []}
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("console", lambda m: seen["violations"].append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    return seen


def _open_operation(page, tag: str, operation_id: str):
    block = page.locator(f"#operations-{tag.replace(' ', '_')}-{operation_id}")
    block.locator(".opblock-summary").first.click()
    block.get_by_role("button", name="Try it out").click()
    return block


def _execute(block) -> tuple[int, dict]:
    block.locator("button.execute").click()
    status = block.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    text = block.locator(".live-responses-table tbody .response-col_description .highlight-code").first.inner_text()
    body = text[text.find("{"):] if "{" in text else "{}"  # after the "Download" button's label
    return int(status.inner_text().strip()), json.loads(body)


def test_the_docs_load_from_this_server_only_and_render_markdown_and_tags_in_order(browser, live):  # noqa: F811
    base, _secret = live
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen = _watch(page, base)
    page.goto(f"{base}/api/v1/docs")
    page.locator(".swagger-ui .info .title").wait_for()
    page.locator(".opblock-tag").first.wait_for()
    shot(page, "api-docs")

    assert seen["requests"] and all(url.startswith(base + "/") for url in seen["requests"]), seen["requests"]
    assert seen["violations"] == [] and seen["errors"] == []
    description = page.locator(".swagger-ui .info .description")
    assert description.locator("h2", has_text="Getting started").is_visible()
    assert description.locator("code", has_text="Authorization").count() >= 1
    assert "`" not in description.inner_text()  # Markdown rendered, not shown raw
    shown = [t.strip() for t in page.locator(".opblock-tag").evaluate_all("els => els.map(e => e.dataset.tag)")]
    assert shown == [name for name, _ in TAGS if name in shown] and shown[:2] == ["Session", "Campaigns"]

    # An operation shows its request example (a real campaign, not a schema with unresolved $refs).
    block = page.locator("#operations-Campaigns-create_campaign")
    block.locator(".opblock-summary").first.click()
    example = block.locator(".opblock-section-request-body .highlight-code").first
    example.wait_for()
    assert '"Summer meet-up"' in example.inner_text() and "$ref" not in block.inner_text()
    shot(page, "api-docs-operation")


def test_try_it_out_with_a_bearer_token(browser, live):  # noqa: F811
    base, secret = live
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen = _watch(page, base)
    page.goto(f"{base}/api/v1/docs")
    page.locator("button.authorize").first.click()
    dialog = page.locator(".auth-container", has_text="bearerAuth")
    dialog.locator("input").fill(secret)
    dialog.get_by_role("button", name="Authorize").click()
    page.locator(".dialog-ux button.close-modal").click()

    block = _open_operation(page, "Session", "who_am_i")
    status, body = _execute(block)
    assert status == 200 and body["via"] == "token" and body["email"] == "manager@example.org"
    shot(page, "api-docs-try-it-out")
    assert all(url.startswith(base + "/") for url in seen["requests"]) and seen["violations"] == []


def test_try_it_out_with_the_session_cookie_adds_the_csrf_header_to_writes(browser, live, db):  # noqa: F811
    from supporters.models import Tag

    base, _secret = live
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{base}/api/v1/docs")

    block = _open_operation(page, "Session", "sign_in")
    block.locator(".body-param textarea").fill(json.dumps({"email": "manager@example.org", "password": PASSWORD}))
    status, body = _execute(block)
    assert status == 200 and body["via"] == "user"

    # The cookie alone cannot write: the header is what the page adds.
    raw = page.evaluate("""async () => (await fetch('/api/v1/tags', {method: 'POST', credentials: 'same-origin',
        headers: {'Content-Type': 'application/json'}, body: JSON.stringify({name: 'without-header'})})).status""")
    assert raw == 403

    block = _open_operation(page, "Tags", "create_tag")
    block.locator(".body-param textarea").fill(json.dumps({"name": "from-the-docs"}))
    status, body = _execute(block)
    assert status == 201 and body["name"] == "from-the-docs"
    db.session.expire_all()
    assert db.session.scalars(sa.select(Tag.name)).all() == ["from-the-docs"]
