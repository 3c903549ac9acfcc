"""The results pages (/manage) and the chart API: for every campaign of the demo data, each chart's
table and its SVG show exactly the numbers of GET /api/v1/campaigns/{id}/stats; the pages are only
for signed-in users, and the sign-in form answers hostile input with a field message, never a 500."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from campaigns import demo
from core.accounts import AdminUser, create_user
from tests.api_support import ApiCaller, assert_problem
from tests.results_helpers import (
    COMMON,
    PASSWORD,
    PER_KIND,
    csrf_from,
    expected_tables,
    kind_of,
    read_page,
    sign_in,
    svg_values,
)

UNORDERED = {"deliveries", "skipped", "networks", "destinations"}


@pytest.fixture
def client(app):
    """A client that shows each redirect itself: these tests check where the forms send people."""
    from flask.testing import FlaskClient

    app.test_client_class = FlaskClient
    return app.test_client()


@pytest.fixture
def api(app, db):
    return ApiCaller(app, db)


@pytest.fixture
def demo_data(app, db):
    demo.fill(400, seed=11)
    db.session.commit()


@pytest.fixture
def manager(db):
    user = create_user("manager@example.org", PASSWORD, "manager")
    db.session.commit()
    return user


def test_each_chart_of_each_demo_campaign_shows_the_numbers_of_the_stats_api(client, api, demo_data, manager):
    assert sign_in(client, "manager@example.org").status_code == 303
    campaigns = api.get("/campaigns", role="viewer").get_json()["items"]
    assert sorted(kind_of(c) for c in campaigns) == sorted(PER_KIND)  # every kind of the demo data
    listing = client.get("/manage/campaigns").get_data(as_text=True)
    for campaign in campaigns:
        kind = kind_of(campaign)
        for bucket in ("hour", "day", "week"):
            stats = api.get(f"/campaigns/{campaign['id']}/stats?bucket={bucket}", role="viewer").get_json()
            page = client.get(f"/manage/campaigns/{campaign['id']}?bucket={bucket}")
            assert page.status_code == 200
            tables, images = read_page(page.get_data(as_text=True))
            expected = expected_tables(stats, kind)
            assert list(tables) == COMMON + PER_KIND[kind], kind
            for name, rows in expected.items():
                shown = tables[name]
                if name in UNORDERED:  # JSON objects in the API: the page orders them its own way
                    assert sorted(shown) == sorted(rows), (kind, name)
                else:
                    assert shown == rows, (kind, name)
                svg = client.get(images[name].replace("&amp;", "&"))
                assert svg.status_code == 200 and svg.mimetype == "image/svg+xml", (kind, name)
                drawn = svg_values(svg.get_data(as_text=True))
                by_column = [row[i] for i in range(1, len(shown[0])) for row in shown] if shown else []
                # Bars are drawn top-down in the table's order: pygal lists them bottom-up.
                assert drawn == (by_column if name == "activity" else by_column[::-1]), (kind, name)
        res = stats["results"]
        # The new figures agree with the funnel: activity adds up to it, generation 1 is the newcomers.
        for column in ("sent", "clicked", "acted"):
            assert sum(a[column] for a in res["activity"]) == res["funnel"][column], (kind, column)
        assert (res["referral_generations"] or [0])[0] == res["funnel"]["newcomers"]
        assert res["funnel"]["sent"] > 0 and (kind == "announcement" or res["funnel"]["acted"] > 0)
        # The list shows the same key figures.
        assert f'data-campaign-id="{campaign["id"]}"' in listing
        for step in ("audience", "sent", "clicked", "acted", "newcomers"):
            assert f'data-figure="{step}">{res["funnel"][step]}<' in listing.split(
                f'data-campaign-id="{campaign["id"]}"')[1].split("</tr>")[0]


def test_the_share_campaign_has_newcomers_and_a_k_factor(client, api, demo_data, manager):
    share = next(c for c in api.get("/campaigns", role="viewer").get_json()["items"] if c["kind"] == "share")
    res = api.get(f"/campaigns/{share['id']}/results", role="viewer").get_json()
    assert res["funnel"]["newcomers"] > 0 and res["k_factor"] > 0 and res["referral_depth"] >= 1
    sign_in(client, "manager@example.org")
    page = client.get(f"/manage/campaigns/{share['id']}").get_data(as_text=True)
    assert f"k-factor {res['k_factor']:g}" in page and f"referral depth {res['referral_depth']}" in page


def test_the_chart_api_needs_a_token_and_names_the_charts_a_campaign_has(client, api, demo_data):
    announcement = next(c for c in api.get("/campaigns").get_json()["items"] if c["kind"] == "announcement")
    path = f"/campaigns/{announcement['id']}/charts"
    assert_problem(api.get(f"{path}/funnel.svg", role=None), 401)
    ok = api.get(f"{path}/funnel.svg", role="viewer")
    assert ok.status_code == 200 and "<script" not in ok.get_data(as_text=True)
    assert "script-src" not in ok.headers["Content-Security-Policy"] and "default-src 'none'" in \
        ok.headers["Content-Security-Policy"]
    body = assert_problem(api.get(f"{path}/networks.svg", role="viewer"), 404)
    assert "funnel" in body["detail"] and "networks" not in body["detail"].split("it has:")[1]
    assert_problem(api.get(f"{path}/no-such-chart.svg", role="viewer"), 404)
    assert_problem(api.get(f"{path}/funnel.svg?bucket=year", role="viewer"), 422, "bucket")
    assert_problem(api.get("/campaigns/999999/charts/funnel.svg", role="viewer"), 404)
    assert api.call("HEAD", f"{path}/funnel.svg", role="viewer").status_code == 200


def test_the_pages_send_strangers_to_the_sign_in_page(client, demo_data):
    for path in ("/manage/campaigns", "/manage/campaigns/1", "/manage/campaigns/1?bucket=week"):
        for method in ("GET", "HEAD"):
            response = client.open(path, method=method)
            assert response.status_code == 302, (method, path)
            assert response.headers["Location"].startswith("/manage/sign-in?next=")
    assert client.get("/manage/").status_code == 302
    options = client.options("/manage/campaigns")
    assert options.status_code == 200 and "GET" in options.headers["Allow"]


def test_signing_in_redirects_after_the_post_and_only_within_these_pages(client, manager):
    done = sign_in(client, "MANAGER@example.org ", next_="/manage/campaigns/3?bucket=week")
    assert done.status_code == 303 and done.headers["Location"] == "/manage/campaigns/3?bucket=week"
    client.post("/manage/sign-out", data={"csrf_token": csrf_from(client.get("/manage/campaigns").get_data(as_text=True))})
    for target in ("https://evil.example/", "//evil.example/manage/", "/\\evil.example", "/api/v1/tags",
                   "/manage/\r\nX: y", "javascript:alert(1)"):
        response = sign_in(client, "manager@example.org", next_=target)
        assert response.headers["Location"] == "/manage/campaigns", target
        client.post("/manage/sign-out", data={"csrf_token": csrf_from(client.get("/manage/campaigns").get_data(as_text=True))})


@pytest.mark.parametrize(("email", "password", "field"), [
    ("manager@example.org", "wrong password", "form"),
    ("nobody@example.org", PASSWORD, "form"),
    ("manager@example.org\r\nBcc: x@example.org", PASSWORD, "email"),
    ("manager@example.org\x00", PASSWORD, "email"),
    ("", PASSWORD, "email"),
    ("manager@example.org", "", "password"),
    ("manager@example.org", "x" * 5000, "password"),
    ("mänäger@exämple.org", "pässwört\u2028", "form"),
    ("a" * 300 + "@example.org", PASSWORD, "email"),
])
def test_bad_sign_ins_get_a_message_beside_the_field_and_no_session(client, db, manager, email, password, field):
    response = sign_in(client, email, password)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'id="{field}-error"' in page
    if field != "form":
        assert f'aria-describedby="{field}-error"' in page
    assert client.get("/manage/campaigns").status_code == 302
    db.session.expire_all()
    assert db.session.scalar(sa.select(AdminUser.last_login_at)) is None


def test_a_form_without_its_csrf_token_changes_nothing(client, manager):
    response = client.post("/manage/sign-in", data={"email": "manager@example.org", "password": PASSWORD})
    assert response.status_code == 400 and 'id="form-error"' in response.get_data(as_text=True)
    assert client.get("/manage/campaigns").status_code == 302
    # Signing out needs the token too (a cross-site form cannot sign anyone out).
    sign_in(client, "manager@example.org")
    assert client.post("/manage/sign-out").status_code == 303
    assert client.get("/manage/campaigns").status_code == 200


def test_signing_out_ends_every_copy_of_the_session(app, client, manager):
    sign_in(client, "manager@example.org")
    copy = app.test_client()
    copy.set_cookie("session", client.get_cookie("session").value)
    assert copy.get("/manage/campaigns").status_code == 200
    token = csrf_from(client.get("/manage/campaigns").get_data(as_text=True))
    assert client.post("/manage/sign-out", data={"csrf_token": token}).status_code == 303
    assert copy.get("/manage/campaigns").status_code == 302


def test_a_huge_sign_in_body_is_refused_before_it_is_read(client, manager):
    response = client.post("/manage/sign-in", data={"email": "x" * 2_000_000, "password": "y"})
    assert response.status_code == 413


def test_the_pages_keep_a_strict_policy_and_no_inline_code(client, demo_data, manager):
    sign_in(client, "manager@example.org")
    for path in ("/manage/sign-in", "/manage/campaigns", "/manage/campaigns/2"):
        response = client.get(path)
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "unsafe-inline" not in policy and "script-src" not in policy
        text = response.get_data(as_text=True)
        assert "<script" not in text and "style=" not in text and "<style" not in text
        assert response.headers["Cache-Control"] == "no-store"
    assert client.get("/manage/campaigns/999999").status_code == 404
    assert client.get("/manage/campaigns?before=x").status_code == 404
