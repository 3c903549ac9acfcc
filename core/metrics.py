"""Prometheus metrics: the catalogue and the request instrumentation (`GET /metrics`: core.scrape).

Events are counted where they are committed, one counter increment each (the sending engine adds
its outcomes per checkpoint). With PROMETHEUS_MULTIPROC_DIR set, prometheus-client keeps every
process's values in memory-mapped files in that directory (gunicorn's workers and the host's
`flask worker`s alike) and `/metrics` adds them up. Metric names and what to alert on:
docs/operations.md.
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import Counter, Histogram

# --- the catalogue (docs/operations.md) ----------------------------------------------------------

REQUESTS = Counter("sp_http_requests", "HTTP requests by route (the URL rule, not the path), method and status",
                   ["route", "method", "status"])
REQUEST_SECONDS = Histogram("sp_http_request_duration_seconds", "Time to answer an HTTP request, by route and method",
                            ["route", "method"],
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
JOINS = Counter("sp_joins", "Join form submissions stored, by outcome (created: a new address; repeat: a known one)",
                ["outcome"])
CONFIRMATIONS = Counter("sp_confirmations", "Supporters who confirmed their address (double opt-in)")
UNSUBSCRIBES = Counter("sp_unsubscribes", "Consent withdrawals, by method (one_click, unsubscribe_page, "
                                          "preferences_page, complaint)", ["method"])
DELIVERIES = Counter("sp_deliveries", "Campaign deliveries settled by the engine, by outcome (sent, failed, deferred, "
                                      "skipped) and reason", ["outcome", "reason"])
BOUNCES = Counter("sp_bounces", "Bounces of sent campaign mail, by type (hard, soft)", ["type"])
COMPLAINTS = Counter("sp_complaints", "Spam complaints (feedback reports) attributed to a supporter")
SWEEPS = Counter("sp_sweeper_runs", "Sweeps run (one per CAMPAIGN_SWEEP_SECONDS across all workers)")
RECOVERIES = Counter("sp_sweeper_recoveries", "What sweeps did, by kind: reclaimed (expired leases), requeued (lost "
                                              "jobs), confirmations (lost opt-in mails), started, finished", ["kind"])
TRANSFER_ROWS = Counter("sp_transfer_rows", "Rows of exports and imports, by direction and outcome",
                        ["direction", "outcome"])
JOBS = Counter("sp_jobs", "RQ jobs run by this platform's workers, by queue and outcome (ok, failed)",
               ["queue", "outcome"])
JOB_SECONDS = Histogram("sp_job_duration_seconds", "Time an RQ job ran, by queue", ["queue"],
                        buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0))

METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


# --- requests ------------------------------------------------------------------------------------

def _started() -> None:
    g._metrics_started = time.perf_counter()


# (route, method, status) -> its counter and histogram children: labels() costs as much as the
# increment itself, and the combinations are few (URL rules × methods × statuses).
_children: dict[tuple[str, str, int], tuple] = {}


def _observe(response: Response) -> Response:
    rule = request.url_rule
    route = rule.rule if rule is not None else "unmatched"  # 404, 405: no rule, and no raw paths
    method = request.method if request.method in METHODS else "other"
    key = (route, method, response.status_code)
    children = _children.get(key)
    if children is None:
        children = _children[key] = (REQUESTS.labels(route, method, str(response.status_code)),
                                     REQUEST_SECONDS.labels(route, method))
    children[0].inc()
    started = g.get("_metrics_started")
    if started is not None:
        children[1].observe(time.perf_counter() - started)
    return response


def init_app(app: Flask) -> None:
    """Register before the other extensions: the timer starts first and the count sees the final status."""
    app.before_request(_started)
    app.after_request(_observe)
