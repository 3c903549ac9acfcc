"""End to end in a real browser: join, the mail through a real worker and SMTP server, confirm,
preferences, unsubscribe; and the form inside a third-party iframe. Debian's chromium, driven by
Playwright; the app served by a real HTTP server on loopback."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from supporters.models import Supporter, SupporterStatus
from tests.servers import free_port
from tests.test_join_support import header, parts, run_mail_worker, trail

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
]


class LiveServer:
    """A WSGI app on a free loopback port, served from a thread."""

    def __init__(self, wsgi_app, port: int | None = None):
        self.port = port or free_port()
        self.server = make_server("127.0.0.1", self.port, wsgi_app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.thread.join(10)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def supporter_row(db) -> Supporter:
    db.session.expire_all()
    [row] = db.session.scalars(sa.select(Supporter)).all()
    return row


def test_a_person_joins_confirms_chooses_and_leaves_in_a_real_browser(app, db, settings, smtp_sink, browser):
    from wsgi import create_app

    port = free_port()
    web = create_app({**settings, "SMTP_URL": smtp_sink.url, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"})
    with LiveServer(web, port) as server:
        base = f"http://127.0.0.1:{server.port}"
        page = browser.new_page(locale="de-DE")

        # 1. The form, in German from the browser's language, filled like a person would.
        page.goto(f"{base}/join")
        assert page.locator("html").get_attribute("lang") == "de"
        page.get_by_label("E-Mail-Adresse").fill("Ada@Example.org")
        page.get_by_label("Name (freiwillig)").fill("Ada <Lovelace>")
        page.get_by_label("Ehemalige:r Mitarbeiter:in").check()
        page.locator("#consent").check()
        page.get_by_role("button", name="Mitmachen").click()
        page.wait_for_selector("text=Fast geschafft")
        row = supporter_row(db)
        assert (row.status, row.email_normalized, row.kind.value, row.language) == \
            (SupporterStatus.PENDING, "ada@example.org", "former_employee", "de")
        assert trail(db, row.id) == [("granted", "web_form")]

        # 2. A real RQ worker sends the mail to a real SMTP server on loopback.
        run_mail_worker(web)
        [mail] = smtp_sink.handler.parsed()
        assert "Ada <Lovelace>" in parts(mail)["text/plain"]
        confirm_url = re.search(rf"{re.escape(base)}/confirm/\S+", parts(mail)["text/plain"]).group(0)

        # 3. Following the link shows a button and changes nothing; the click confirms.
        page.goto(confirm_url)
        page.wait_for_selector("#confirm-button")
        assert supporter_row(db).status is SupporterStatus.PENDING
        page.click("#confirm-button")
        page.wait_for_selector("text=Willkommen!")
        row = supporter_row(db)
        assert row.status is SupporterStatus.ACTIVE and row.referral_code
        assert page.input_value("#referral-link") == f"{base}/join?ref={row.referral_code}"
        assert trail(db, row.id) == [("granted", "web_form"), ("confirmed", "confirm_link")]

        # 4. Preferences: ask at most once a month, in English, paused for a while.
        page.click("#preferences-link")
        page.wait_for_selector("#save")
        page.select_option("#asks_per_month", "1")
        page.select_option("#language", "en")
        page.fill("#paused_until", "2099-01-01")  # too far ahead: the field gets a message
        page.click("#save")
        page.wait_for_selector("#paused_until-error")
        assert supporter_row(db).asks_per_month is None
        page.fill("#paused_until", "")
        page.click("#save")
        page.wait_for_selector("#saved")
        assert "Your preferences are saved." in page.inner_text("#saved")
        row = supporter_row(db)
        assert (row.asks_per_month, row.language, row.status) == (1, "en", SupporterStatus.ACTIVE)
        assert trail(db, row.id) == [("granted", "web_form"), ("confirmed", "confirm_link")]

        # 5. Unsubscribe through the link every mail carries: one click.
        unsubscribe_url = header(mail, "List-Unsubscribe").strip("<>")
        page.goto(unsubscribe_url)
        page.click("#unsubscribe-button")
        page.wait_for_selector("text=You have left")
        row = supporter_row(db)
        assert row.status is SupporterStatus.UNSUBSCRIBED and row.unsubscribed_at is not None
        assert trail(db, row.id) == [("granted", "web_form"), ("confirmed", "confirm_link"),
                                     ("withdrawn", "unsubscribe_page")]
        page.close()


def company_site(frame_url: str):
    """The company's own site on another origin, embedding the join form."""
    def site(environ, start_response):
        body = (f'<!doctype html><title>Company</title><h1>Our shop</h1>'
                f'<iframe id="join" src="{frame_url}" width="600" height="1400"></iframe>').encode()
        start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))])
        return [body]
    return site


def test_the_form_works_inside_an_iframe_on_the_companys_site(app, db, settings, browser):
    from wsgi import create_app

    port = free_port()
    shop_port = free_port()
    # localhost and 127.0.0.1 are different sites: the frame is a third-party context.
    web = create_app({**settings, "EMBED_ALLOWED_ORIGINS": f"http://localhost:{shop_port}"})
    with LiveServer(web, port), LiveServer(company_site(f"http://127.0.0.1:{port}/join?lang=en"), shop_port):
        page = browser.new_page()
        page.goto(f"http://localhost:{shop_port}/")
        frame = page.frame_locator("#join")
        frame.get_by_label("Email address").fill("framed@example.org")
        frame.get_by_label("Customer or fan").check()
        frame.locator("#consent").check()
        frame.get_by_role("button", name="Join").click()
        frame.locator("text=Almost there").wait_for()
        row = supporter_row(db)
        assert (row.email, row.status) == ("framed@example.org", SupporterStatus.PENDING)

        # A site that is not allowed gets no form: the browser refuses to frame it.
        other = free_port()
        with LiveServer(company_site(f"http://127.0.0.1:{port}/join"), other):
            blocked = browser.new_page()
            blocked.goto(f"http://localhost:{other}/")
            blocked.wait_for_timeout(500)
            frame = blocked.frame(url=re.compile(r".*/join.*"))
            assert frame is None or frame.locator("#email").count() == 0
            blocked.close()
        page.close()
