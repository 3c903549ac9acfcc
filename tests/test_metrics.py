"""GET /metrics: off without a token, closed without the right one, and counting what happened.

Counters live for the whole test process, so every assertion compares a scrape before with one after.
"""

from __future__ import annotations

import pytest

from campaigns import services
from core.scrape import exposition
from supporters import links
from tests.engine_helpers import make_campaign, run_worker
from tests.factories import make_supporter
from tests.jobs import write_audit
from tests.metrics_helpers import AUTH, TOKEN, samples, scrape, total, value
from tests.test_join_support import post_join, run_mail_worker


@pytest.fixture
def settings(migrated):
    return {**migrated, "METRICS_TOKEN": TOKEN}


def test_metrics_do_not_exist_without_a_token(migrated):
    from wsgi import create_app

    app = create_app(migrated)
    client = app.test_client()
    for method in ("GET", "HEAD", "OPTIONS", "POST"):
        response = client.open("/metrics", method=method, headers=AUTH)
        assert response.status_code in (404, 405), method
        assert b"sp_http_requests_total" not in response.data


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer ", f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}",
    "Bearer " + "ü" * 40, "Bearer " + "a" * 100_000, f"Bearer {TOKEN}\x00",
])
def test_metrics_answer_only_the_right_bearer_token(client, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"sp_" not in response.data


def test_head_and_options_on_metrics_reveal_nothing(client):
    assert client.head("/metrics").status_code == 401
    options = client.options("/metrics")
    assert options.status_code == 200 and options.data == b""


def test_requests_are_counted_by_route_never_by_path(app, client):
    supporter = make_supporter()
    token = links.unsubscribe_token(supporter.id)
    before = samples(scrape(client))
    assert client.get(f"/unsubscribe/{token}").status_code == 200
    assert client.get("/no-such-page/ü\u2028").status_code == 404
    assert client.delete("/healthz").status_code == 405
    text = scrape(client)
    after = samples(text)
    assert token not in text and "no-such-page" not in text
    route = {"route": "/unsubscribe/<token>", "method": "GET", "status": "200"}
    assert value(after, "sp_http_requests_total", **route) == value(before, "sp_http_requests_total", **route) + 1
    for method, status in (("GET", "404"), ("DELETE", "405")):
        labels = {"route": "unmatched", "method": method, "status": status}
        assert value(after, "sp_http_requests_total", **labels) == value(before, "sp_http_requests_total", **labels) + 1
    count = {"route": "/unsubscribe/<token>", "method": "GET"}
    assert (value(after, "sp_http_request_duration_seconds_count", **count)
            == value(before, "sp_http_request_duration_seconds_count", **count) + 1)


def test_joins_confirmations_and_unsubscribes_are_counted_once_each(app, client, db):
    before = samples(scrape(client))
    assert post_join(client, email="new@example.org").status_code == 200
    assert post_join(client, email="NEW@example.org").status_code == 200  # a repeat: same answer
    run_mail_worker(app)
    from supporters.models import Supporter

    supporter = db.session.scalars(db.select(Supporter)).one()
    confirm = f"/confirm/{links.confirm_token(supporter.id)}"
    assert client.post(confirm).status_code in (200, 303)
    assert client.post(confirm).status_code in (200, 303)  # idempotent: not a second confirmation
    unsubscribe = f"/unsubscribe/{links.unsubscribe_token(supporter.id)}"
    one_click = app.test_client(use_cookies=False)
    for _ in range(2):
        assert one_click.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    after = samples(scrape(client))
    for name, labels, delta in (("sp_joins_total", {"outcome": "created"}, 1),
                                ("sp_joins_total", {"outcome": "repeat"}, 1),
                                ("sp_confirmations_total", {}, 1),
                                ("sp_unsubscribes_total", {"method": "one_click"}, 1),
                                # the confirmation, the repeat and its reminder of the pending address
                                ("sp_jobs_total", {"queue": "mail", "outcome": "ok"}, 3)):
        assert value(after, name, **labels) - value(before, name, **labels) == delta, name


def test_bad_join_input_counts_no_join(app, client):
    before = samples(scrape(client))
    assert post_join(client, email="not an address\r\nBcc: x@example.org").status_code == 422
    after = samples(scrape(client))
    assert total(after, "sp_joins_total") == total(before, "sp_joins_total")


def test_deliveries_are_counted_by_outcome_and_reason_when_written(app, client, db, smtp_sink):
    app.config["SMTP"] = {"host": "127.0.0.1", "port": smtp_sink.port, "username": None, "password": None,
                          "ssl": False, "starttls": False, "timeout": 10, "connections": 1}
    people = [make_supporter() for _ in range(4)]
    campaign = make_campaign()
    services.launch(campaign.id)
    # Leaves after the launch: the engine skips them at send time, with the reason.
    one_click = app.test_client(use_cookies=False)
    one_click.post(f"/unsubscribe/{links.unsubscribe_token(people[0].id)}", data={"List-Unsubscribe": "One-Click"})
    before = samples(scrape(client))
    run_worker(app)
    after = samples(scrape(client))
    assert len(smtp_sink.messages) == 3
    sent = value(after, "sp_deliveries_total", outcome="sent", reason="") - \
        value(before, "sp_deliveries_total", outcome="sent", reason="")
    skipped = value(after, "sp_deliveries_total", outcome="skipped", reason="unsubscribed") - \
        value(before, "sp_deliveries_total", outcome="skipped", reason="unsubscribed")
    assert (sent, skipped) == (3, 1)


def test_queue_depth_age_and_workers_are_read_from_redis_at_scrape_time(app, client):
    write_audit.enqueue_many([("a",), ("b",), ("c",)])
    text = scrape(client)
    assert value(text, "sp_redis_up") == 1
    assert value(text, "sp_rq_queue_depth", queue="default") == 3
    assert value(text, "sp_rq_queue_depth", queue="mail") == 0
    assert value(text, "sp_rq_oldest_job_age_seconds", queue="default") > 0
    assert value(text, "sp_rq_oldest_job_age_seconds", queue="mail") == 0
    assert value(text, "sp_rq_workers_live") == 0
    from core.queues import make_worker

    make_worker(app, ["default"]).work(burst=True)
    text = scrape(client)
    assert value(text, "sp_rq_queue_depth", queue="default") == 0
    assert value(text, "sp_rq_oldest_job_age_seconds", queue="default") == 0


def test_a_scrape_answers_when_redis_does_not(app):
    from core.redis import connect
    from tests.servers import free_port

    dead = connect(f"redis://127.0.0.1:{free_port()}/0")
    text = exposition(None, lambda: dead).decode()
    assert value(text, "sp_redis_up") == 0
    assert "sp_rq_queue_depth" not in text
    assert "sp_http_requests_total" in text  # the process's own metrics are still there


def test_a_sweep_is_counted_with_what_it_recovered(app, client):
    from campaigns.sweeper import sweep

    before = samples(scrape(client))
    sweep()
    after = samples(scrape(client))
    assert value(after, "sp_sweeper_runs_total") == value(before, "sp_sweeper_runs_total") + 1


def test_export_and_import_rows_are_counted(app, client, runner, tmp_path):
    for i in range(3):
        make_supporter(f"exp{i}@example.org")
    before = samples(scrape(client))
    out = tmp_path / "out.csv"
    assert runner.invoke(args=["export", "supporters", "-o", str(out)]).exit_code == 0
    source = tmp_path / "in.csv"
    source.write_text("email,name\nnew1@example.org,Ny\nnot-an-address,X\nexp0@example.org,Old\n", encoding="utf-8")
    result = runner.invoke(args=["import", "supporters", str(source), "--consent-note", "paper form",
                                 "--consented-at", "2025-06-30"])
    assert result.exit_code == 0, result.output
    after = samples(scrape(client))

    def delta(**labels):
        return value(after, "sp_transfer_rows_total", **labels) - value(before, "sp_transfer_rows_total", **labels)

    assert delta(direction="export", outcome="written") == 3
    assert delta(direction="import", outcome="inserted") == 1
    assert delta(direction="import", outcome="rejected") == 1
    assert delta(direction="import", outcome="existing") == 1
