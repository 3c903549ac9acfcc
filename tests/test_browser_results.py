"""The results pages in Debian's chromium (Playwright): a manager signs in through the form, sees the
campaigns with their key figures, and for every campaign of the demo data every chart is drawn and
its table shows the numbers of the stats API. Nothing loads from elsewhere, no policy is violated,
a reload after signing in posts nothing again, the pages read without JavaScript, fit a 360 px
phone and print without the navigation. Screenshots go to tests/artifacts/screenshots/."""

from __future__ import annotations

import pytest

from campaigns import demo
from core.accounts import create_user
from tests.api_support import ApiCaller
from tests.results_helpers import PASSWORD, PER_KIND, expected_tables, kind_of
from tests.screenshots import shot
from tests.servers import free_port
from tests.test_browser_join import CHROMIUM, LiveServer, browser  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(), reason="no chromium")]

UNORDERED = {"deliveries", "skipped", "networks", "destinations"}


@pytest.fixture
def live(app, db, settings):
    from wsgi import create_app

    demo.fill(400, seed=11)
    create_user("manager@example.org", PASSWORD, "manager")
    db.session.commit()
    port = free_port()
    web = create_app({**settings, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"})
    with LiveServer(web, port) as server:
        yield f"http://127.0.0.1:{server.port}"


def _sign_in(page, base: str) -> None:
    page.goto(f"{base}/manage/campaigns")
    page.get_by_label("Email address").fill("manager@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/manage/campaigns")


def _tables(page) -> dict[str, list[list[str]]]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('section[data-chart]')].map(s =>
        [s.dataset.chart, [...s.querySelectorAll('tbody tr')].map(r =>
            [...r.querySelectorAll('th, td')].map(c => c.textContent.trim()))]))""")


def test_every_chart_of_every_demo_campaign_is_drawn_and_its_table_matches_the_api(app, db, browser, live):  # noqa: F811
    base = live
    api = ApiCaller(app, db)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests, violations = [], []
    page.on("request", lambda r: requests.append((r.method, r.url)))
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)

    page.goto(f"{base}/manage/sign-in")
    shot(page, "results-sign-in")
    _sign_in(page, base)
    posts = [r for r in requests if r[0] == "POST"]
    page.reload()  # Post/Redirect/Get: the reload asks for the list again, it does not sign in again
    assert [r for r in requests if r[0] == "POST"] == posts and len(posts) == 1
    shot(page, "results-campaigns")

    campaigns = api.get("/campaigns", role="viewer").get_json()["items"]
    assert sorted(kind_of(c) for c in campaigns) == sorted(PER_KIND)
    for campaign in campaigns:
        kind = kind_of(campaign)
        page.get_by_role("link", name=campaign["name"], exact=True).click()
        page.wait_for_url(f"{base}/manage/campaigns/{campaign['id']}")
        page.wait_for_load_state("load")
        drawn = page.evaluate("() => [...document.images].map(i => i.complete && i.naturalWidth > 0)")
        assert drawn and all(drawn), kind
        stats = api.get(f"/campaigns/{campaign['id']}/stats?bucket=hour", role="viewer").get_json()
        tables = _tables(page)
        for name, rows in expected_tables(stats, kind).items():
            assert (sorted(tables[name]) == sorted(rows)) if name in UNORDERED else (tables[name] == rows), (kind, name)
        shot(page, f"results-{kind}")
        page.go_back()

    assert all(url.startswith(base + "/") for _m, url in requests), requests
    assert violations == []


def test_the_results_read_without_javascript_fit_a_phone_and_print_without_navigation(browser, live):  # noqa: F811
    base = live
    context = browser.new_context(java_script_enabled=False, viewport={"width": 360, "height": 780})
    page = context.new_page()
    _sign_in(page, base)
    page.get_by_role("link", name="Share the refill map").click()
    page.wait_for_load_state("load")
    assert page.locator("section[data-chart] img").count() == 6
    assert page.locator("section[data-chart='networks'] table").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    shot(page, "results-share-phone-no-js")

    page.select_option("#bucket", "week")  # the bucket form works without a script
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**bucket=week")
    assert "per week" in page.locator("#chart-activity h2").inner_text()

    page.emulate_media(media="print")
    assert not page.locator("nav.toc").is_visible() and not page.locator("form.bucket").is_visible()
    assert page.locator("section[data-chart='funnel'] table").is_visible()
    shot(page, "results-share-print")
    context.close()
