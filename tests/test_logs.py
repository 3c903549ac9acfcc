"""Request ids (answered, carried into jobs, logged by workers) and JSON log lines."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from core import logs
from core.queues import get_queue
from tests.test_join_support import post_join, run_mail_worker

HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def json_lines():
    """Every log record of the test as a JSON line, through the formatter LOG_FORMAT=json uses."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def read() -> list[dict]:
        text = stream.getvalue()
        return [json.loads(line) for line in text.splitlines()]

    yield read
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.mark.parametrize("given", ["abc-123", "lb.7f3a:0001", "A" * 64])
def test_a_sane_incoming_request_id_is_kept_and_answered(client, given):
    assert client.get("/healthz", headers={"X-Request-ID": given}).headers["X-Request-ID"] == given


@pytest.mark.parametrize("given", ["", " ", "A" * 65, "ü-umlaut", "a b", "<script>", "x;y", "1,2", "a\tb", "\u2028"])
def test_an_insane_request_id_is_replaced_by_a_new_one(client, given):
    answered = client.get("/healthz", headers={"X-Request-ID": given}).headers["X-Request-ID"]
    assert answered != given and HEX32.fullmatch(answered)


def test_every_request_without_an_id_gets_a_fresh_one_on_every_method(client):
    seen = set()
    for method in ("GET", "HEAD", "OPTIONS", "POST", "DELETE"):
        response = client.open("/healthz", method=method)
        assert response.status_code < 500
        seen.add(response.headers["X-Request-ID"])
    assert len(seen) == 5 and all(HEX32.fullmatch(s) for s in seen)


def test_the_request_id_rides_in_the_jobs_the_request_enqueues_and_the_worker_logs_it(app, client, json_lines):
    assert post_join(client, email="ada@example.org", headers={"X-Request-ID": "signup-42"}).status_code == 200
    [job] = get_queue("mail").jobs
    assert job.meta["request_id"] == "signup-42"
    # A second submission of the same address: its job, and the mail that job queues, keep the id too.
    assert post_join(client, email="ADA@example.org", headers={"X-Request-ID": "repeat-43"}).status_code == 200
    run_mail_worker(app)
    lines = json_lines()
    started = [(line["request_id"], line["message"]) for line in lines
               if line["logger"] == "core.queues" and line["message"].startswith("job started")]
    assert started == [("signup-42", "job started: supporters.mail_jobs.send_confirmation"),
                       ("repeat-43", "job started: supporters.join.repeat_join"),
                       ("repeat-43", "job started: supporters.mail_jobs.send_confirmation")]
    # RQ's own lines while the job runs carry the ids as well (its "dequeued" line comes before we know the job).
    rq_lines = [line for line in lines if line["logger"] == "rq.worker" and "Successfully completed" in line["message"]]
    assert len(rq_lines) == 3
    assert rq_lines and all(line.get("request_id") in ("signup-42", "repeat-43") and line.get("job_id")
                            for line in rq_lines)
    assert logs.current_request_id() is None  # nothing leaks out of the job


def test_a_request_id_in_a_job_meta_is_checked_again_by_the_worker(app, json_lines):
    from tests.jobs import write_audit

    write_audit.enqueue("x", meta={"request_id": "evil\r\nid"})
    from core.queues import make_worker

    make_worker(app, ["default"]).work(burst=True)
    started = [line for line in json_lines() if line["message"].startswith("job started")]
    assert started and "request_id" not in started[0]


def test_a_json_line_is_one_line_whatever_the_message_holds_and_tokens_are_redacted(app):
    from supporters import links

    token = links.unsubscribe_token(7)
    record = logging.LogRecord("x", logging.WARNING, __file__, 1,
                               "visit %s and %s\r\nnext\x00line ü \u2028 %s", (f"/unsubscribe/{token}",
                               f"/api/v1/jobs/1/download?token={token}", "spk_abcdef_secret"), None)
    record.detail = f"/act/{token}"
    try:
        raise RuntimeError(f"boom /confirm/{token}")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line and "\r" not in line and token not in line and "secret" not in line
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["logger"] == "x" and "ü" in entry["message"]
    assert "/unsubscribe/[redacted]" in entry["message"] and "token=[redacted]" in entry["message"]
    assert entry["detail"] == "/act/[redacted]" and "/confirm/[redacted]" in entry["exc"]
    assert entry["ts"].endswith("Z")


def test_log_settings_are_validated():
    import config

    with pytest.raises(config.ConfigError, match="LOG_FORMAT"):
        config.load({"APP_ENV": "testing", "LOG_FORMAT": "xml"})
    with pytest.raises(config.ConfigError, match="LOG_LEVEL"):
        config.load({"APP_ENV": "testing", "LOG_LEVEL": "loud"})
    assert config.load({"APP_ENV": "testing", "LOG_FORMAT": " JSON "})["LOG_FORMAT"] == "json"


@pytest.mark.parametrize("variable, raw", [
    ("METRICS_TOKEN", "short"), ("METRICS_TOKEN", "with space in the middle!"), ("METRICS_TOKEN", "ü" * 20),
    ("METRICS_TOKEN", "a" * 20 + "\r\n"), ("WORKER_METRICS_ADDRESS", "9200"), ("WORKER_METRICS_ADDRESS", "host:99999"),
    ("WORKER_METRICS_ADDRESS", ":9200"), ("PROMETHEUS_MULTIPROC_DIR", "/proc/no/such/dir"),
])
def test_metrics_settings_are_validated(variable, raw):
    import config

    with pytest.raises(config.ConfigError, match=variable):
        config.load({"APP_ENV": "testing", variable: raw})


def test_the_metrics_directory_is_created(tmp_path):
    import config

    target = tmp_path / "a" / "b"
    assert config.load({"APP_ENV": "testing", "PROMETHEUS_MULTIPROC_DIR": str(target)})[
        "PROMETHEUS_MULTIPROC_DIR"] == str(target)
    assert target.is_dir()
