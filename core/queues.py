"""RQ queues with named purposes, a job decorator that binds the connection, and the worker.

Jobs are plain module-level functions that take ids, re-read state and are safe to run twice.
Enqueue only after the rows a job needs are committed: the function that commits enqueues.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import redis
from flask import Flask
from rq import Queue, SimpleWorker, Worker, worker_registration
from rq.job import Job
from rq.scheduler import RQScheduler
from sqlalchemy.orm import configure_mappers

from core import logs, metrics
from core.redis import connect, get_redis

log = logging.getLogger(__name__)

# What a restarting or unreachable Redis raises; a worker waits these out instead of exiting.
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
MAX_BACKOFF = 5.0  # seconds between reconnection attempts, at most (RQ's own default: 60)

# Workers listen in this order, so a confirmation mail never waits behind a campaign's fan-out.
QUEUES = {
    "mail": "transactional mail: confirmations, notices to one person",
    "webhooks": "outgoing webhook deliveries (one job per endpoint, in event order)",
    "campaigns": "campaign delivery batches and the sweeper",
    "default": "exports, imports and other long jobs",
}


def get_queue(name: str) -> Queue:
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=get_redis())


def job(queue: str, **job_options: Any) -> Callable:
    """Mark a function as a job for `queue`; `fn.enqueue(...)`, `fn.enqueue_many(...)` and
    `fn.enqueue_in(delay, ...)` queue it (the last through the workers' scheduler)."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")

    def decorate(func: Callable) -> Callable:
        def enqueue(*args: Any, **kwargs: Any) -> Job:
            return get_queue(queue).enqueue(func, *args, **with_meta({**job_options, **kwargs}))

        def enqueue_many(argument_lists: Iterable[tuple], **kwargs: Any) -> list[Job]:
            # One Redis pipeline for the lot: ~5x faster than enqueue() in a loop.
            q = get_queue(queue)
            options = with_meta({**job_options, **kwargs})
            if "job_timeout" in options:  # enqueue()'s name for what prepare_data() calls timeout
                options["timeout"] = options.pop("job_timeout")
            data = [Queue.prepare_data(func, args=tuple(args), **options) for args in argument_lists]
            return q.enqueue_many(data) if data else []

        def enqueue_in(delay: timedelta, *args: Any, **kwargs: Any) -> Job:
            return get_queue(queue).enqueue_in(delay, func, *args, **with_meta({**job_options, **kwargs}))

        func.queue_name = queue
        func.enqueue = enqueue
        func.enqueue_in = enqueue_in
        func.enqueue_many = enqueue_many
        return func

    return decorate


def with_meta(options: dict[str, Any]) -> dict[str, Any]:
    """`options` with the current request id (or the running job's) in the job's meta (core.logs)."""
    rid = logs.current_request_id()
    if rid and "request_id" not in (options.get("meta") or {}):
        options["meta"] = {**(options.get("meta") or {}), "request_id": rid}
    return options


def wait_for_redis(connection: redis.Redis, what: str, exc: Exception) -> None:
    """Block until Redis answers again, retrying with backoff (1 s doubling to MAX_BACKOFF), logging."""
    log.warning("%s: Redis is unreachable (%s); retrying with backoff", what, exc)
    delay, started = 1.0, time.monotonic()
    while True:
        time.sleep(delay)
        try:
            connection.ping()
        except REDIS_DOWN:
            delay = min(delay * 2, MAX_BACKOFF)
            continue
        log.warning("%s: Redis is back after %.1f s", what, time.monotonic() - started)
        return


class ResilientScheduler(RQScheduler):
    """RQ's scheduler, which exits on the first Redis error; this one waits Redis out and goes on
    (an expired lock is re-acquired by its heartbeat)."""

    def work(self) -> None:
        self._install_signal_handlers()
        while True:
            try:
                self.register_birth()
                break
            except REDIS_DOWN as exc:
                wait_for_redis(self.connection, "scheduler", exc)
        while not self._stop_requested:
            try:
                if self.should_reacquire_locks:
                    self.acquire_locks()
                self.heartbeat()
                self.enqueue_scheduled_jobs()
            except REDIS_DOWN as exc:
                wait_for_redis(self.connection, "scheduler", exc)
                continue
            time.sleep(self.interval)
        try:
            self.stop()
        except REDIS_DOWN:
            pass


class _AppWorkerMixin:
    """Run every job in a fresh application context, so each job starts with a clean session; and
    ride out Redis restarts: RQ's work loop quits on any Redis error outside its dequeue, so each
    step it takes between jobs waits for Redis instead (and re-registers the worker, whose keys a
    restarted Redis may have lost). What a job did is in the database either way."""

    flask_app: Flask
    max_connection_wait_time = MAX_BACKOFF

    def perform_job(self, job: Job, queue: Queue) -> bool:
        # The request that enqueued the job (its id in the meta) follows it into the worker's log
        # lines, and into the meta of any job this one enqueues.
        rid = logs.request_id.set(logs.sane_request_id(job.meta.get("request_id")) or None)
        jid = logs.job_id.set(job.id)
        started, ok = time.perf_counter(), False
        log.info("job started: %s", job.func_name, extra={"queue": queue.name})
        try:
            with self.flask_app.app_context():
                ok = super().perform_job(job, queue)
                return ok
        finally:
            seconds = time.perf_counter() - started
            metrics.JOBS.labels(queue.name, "ok" if ok else "failed").inc()
            metrics.JOB_SECONDS.labels(queue.name).observe(seconds)
            log.info("job %s: %s in %.3f s", "finished" if ok else "failed", job.func_name, seconds,
                     extra={"queue": queue.name})
            logs.job_id.reset(jid)
            logs.request_id.reset(rid)

    def _redis_down(self, exc: Exception) -> None:
        wait_for_redis(self.connection, f"worker {self.name}", exc)
        try:
            if not self.connection.exists(self.key):
                with self.connection.pipeline() as pipe:
                    pipe.hset(self.key, mapping=self.serialize())
                    worker_registration.register(self, pipe)
                    pipe.expire(self.key, self.worker_ttl + 60)
                    pipe.execute()
        except REDIS_DOWN:
            pass  # gone again: the next step waits once more

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            super().execute_job(job, queue)
        except REDIS_DOWN as exc:  # RQ's bookkeeping of this job is lost, not its work
            self._redis_down(exc)

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        while True:
            try:
                return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            except REDIS_DOWN as exc:  # RQ retries connection errors itself, not timeouts
                self._redis_down(exc)

    def heartbeat(self, *args, **kwargs) -> None:
        try:
            super().heartbeat(*args, **kwargs)
        except REDIS_DOWN as exc:
            self._redis_down(exc)

    def check_for_suspension(self, burst: bool) -> None:
        try:
            super().check_for_suspension(burst)
        except REDIS_DOWN as exc:
            self._redis_down(exc)

    def run_maintenance_tasks(self) -> None:
        try:
            super().run_maintenance_tasks()
        except REDIS_DOWN as exc:
            self._redis_down(exc)

    def teardown(self) -> None:
        try:
            super().teardown()
        except REDIS_DOWN as exc:
            log.warning("worker %s: could not register its exit (%s)", self.name, exc)

    def _start_scheduler(self, burst=False, logging_level="INFO", date_format=None, log_format=None) -> None:
        # RQ's own, with the resilient scheduler class (RQ has no setting for it).
        from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT

        self.scheduler = ResilientScheduler(
            self.queues, connection=self.connection, logging_level=logging_level or self.log.level,
            date_format=date_format or DEFAULT_LOGGING_DATE_FORMAT, log_format=log_format or DEFAULT_LOGGING_FORMAT,
            serializer=self.serializer)
        self.scheduler.acquire_locks()
        if self.scheduler.acquired_locks:
            if burst:
                try:
                    self.scheduler.register_birth()
                    self.scheduler.enqueue_scheduled_jobs()
                finally:
                    self.scheduler.release_locks()
                    self.scheduler.register_death()
            else:
                self.scheduler.start()


class AppSimpleWorker(_AppWorkerMixin, SimpleWorker):
    """Runs jobs in the worker process itself: keeps SMTP and database connections open across jobs."""


class AppForkingWorker(_AppWorkerMixin, Worker):
    """Forks a child per job: isolates memory leaks and hangs at the cost of ~15 ms per job."""


def make_worker(app: Flask, queues: Iterable[str] | None = None, fork: bool = False, name: str | None = None) -> Worker:
    names = list(queues or QUEUES)
    for n in names:
        if n not in QUEUES:
            raise ValueError(f"unknown queue {n!r}; known: {', '.join(QUEUES)}")
    # A connection of its own: RQ raises its socket timeout above the blocking dequeue's (minutes),
    # which the application's short-timeout client (stop markers, throttles) must keep.
    connection = connect(app.config["REDIS_URL"])
    cls = AppForkingWorker if fork else AppSimpleWorker
    worker = cls([Queue(n, connection=connection) for n in names], connection=connection, name=name)
    worker.flask_app = app
    # Map every model now, not inside the first job: configuring ~50 mappers takes a few hundred
    # milliseconds that the first send job of each worker would otherwise spend.
    configure_mappers()
    return worker
