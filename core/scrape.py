"""`GET /metrics` and the worker's metrics address: every process's counters plus what Redis holds.

What lives in Redis (queue depths, the age of the oldest job, registries, live workers) is read at
scrape time in two pipelined round trips, so no process has to keep it current. `/metrics` exists
only when METRICS_TOKEN is set and answers only `Authorization: Bearer <it>`; a `flask worker` can
serve its host's metrics on WORKER_METRICS_ADDRESS instead (no token: bind it to an internal
address). What to alert on: docs/operations.md.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

from flask import Blueprint, Flask, Response, abort, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from core.queues import QUEUES

# --- what Redis holds ---------------------------------------------------------

class QueueCollector:
    """Depth, oldest job's age and registries per RQ queue, and the live workers: read from Redis
    when Prometheus scrapes (two pipelined round trips), so no process has to keep them current."""

    def __init__(self, connection_factory):
        self.connection_factory = connection_factory

    def collect(self):
        from rq import Queue
        from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
        from rq.worker_registration import REDIS_WORKER_KEYS, WORKERS_BY_QUEUE_KEY

        up = GaugeMetricFamily("sp_redis_up", "1 when the scrape could read the queues from Redis")
        try:
            connection = self.connection_factory()
            names = list(QUEUES)
            with connection.pipeline(transaction=False) as pipe:
                for name in names:
                    queue = Queue(name, connection=connection)
                    pipe.llen(queue.key).lindex(queue.key, 0)
                    pipe.zcard(StartedJobRegistry(name, connection=connection).key)
                    pipe.zcard(FailedJobRegistry(name, connection=connection).key)
                    pipe.zcard(ScheduledJobRegistry(name, connection=connection).key)
                    pipe.scard(WORKERS_BY_QUEUE_KEY % name)
                pipe.smembers(REDIS_WORKER_KEYS)
                answers = pipe.execute()
            per_queue = [answers[i * 6:(i + 1) * 6] for i in range(len(names))]
            workers = sorted(answers[-1])
            with connection.pipeline(transaction=False) as pipe:
                for _depth, oldest, *_rest in per_queue:
                    pipe.hget(Queue.job_class.key_for(oldest.decode()), "enqueued_at") if oldest else pipe.echo("")
                for key in workers:
                    pipe.exists(key)
                second = pipe.execute()
        except Exception:  # noqa: BLE001 - a scrape must answer even when Redis does not
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        families = {
            "depth": GaugeMetricFamily("sp_rq_queue_depth", "Jobs waiting in the RQ queue", labels=["queue"]),
            "age": GaugeMetricFamily("sp_rq_oldest_job_age_seconds",
                                     "Age of the job at the head of the queue (0 when empty)", labels=["queue"]),
            "started": GaugeMetricFamily("sp_rq_started_jobs", "Jobs running now", labels=["queue"]),
            "failed": GaugeMetricFamily("sp_rq_failed_jobs", "Jobs in the failed registry", labels=["queue"]),
            "scheduled": GaugeMetricFamily("sp_rq_scheduled_jobs", "Jobs scheduled for later", labels=["queue"]),
            "workers": GaugeMetricFamily("sp_rq_queue_workers", "Registered workers listening on the queue",
                                         labels=["queue"]),
        }
        now = datetime.now(UTC)
        for name, (depth, _oldest, started, failed, scheduled, listening), enqueued in zip(
                names, per_queue, second, strict=False):
            families["depth"].add_metric([name], depth)
            families["age"].add_metric([name], _age(enqueued, now) if depth else 0.0)
            families["started"].add_metric([name], started)
            families["failed"].add_metric([name], failed)
            families["scheduled"].add_metric([name], scheduled)
            families["workers"].add_metric([name], listening)
        yield from families.values()
        live = GaugeMetricFamily("sp_rq_workers_live", "Workers whose registration has not expired (heartbeats)")
        live.add_metric([], sum(1 for alive in second[len(names):] if alive))
        yield live


def _age(enqueued: bytes | str | None, now: datetime) -> float:
    if not enqueued:
        return 0.0
    from rq.utils import utcparse

    try:
        when = utcparse(enqueued.decode() if isinstance(enqueued, bytes) else enqueued)
    except ValueError:
        return 0.0
    return max(0.0, (now - when.replace(tzinfo=UTC)).total_seconds())


def exposition(multiproc_dir: str | None, connection_factory=None) -> bytes:
    """The text exposition of every process's metrics (and, with a Redis connection, the queues')."""
    if multiproc_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiproc_dir)
    else:
        registry = REGISTRY
    body = generate_latest(registry)
    if connection_factory is not None:
        scrape = CollectorRegistry(auto_describe=False)
        scrape.register(QueueCollector(connection_factory))
        body += generate_latest(scrape)
    return body


# --- GET /metrics -------------------------------------------------------------------------------

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    token = current_app.config["METRICS_TOKEN"]
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not (scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())):
        response = Response("a bearer token is required\n", status=401, mimetype="text/plain")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    from core.redis import get_redis

    body = exposition(current_app.config["PROMETHEUS_MULTIPROC_DIR"], get_redis)
    response = Response(body, content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.before_request
def _only_when_configured() -> None:
    if not current_app.config.get("METRICS_TOKEN"):
        abort(404)


def serve_worker_metrics(app: Flask) -> None:
    """Serve this host's metrics on WORKER_METRICS_ADDRESS (no token: bind it to an internal address)."""
    address = app.config.get("WORKER_METRICS_ADDRESS")
    if not address:
        return
    from prometheus_client import start_http_server

    from core.redis import connect

    class _Exposed:
        def collect(self):
            # The same families as /metrics, parsed back from one exposition.
            from prometheus_client.parser import text_string_to_metric_families

            yield from text_string_to_metric_families(
                exposition(app.config["PROMETHEUS_MULTIPROC_DIR"], lambda: connection).decode())

    connection = connect(app.config["REDIS_URL"])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Exposed())
    start_http_server(address[1], addr=address[0], registry=registry)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
