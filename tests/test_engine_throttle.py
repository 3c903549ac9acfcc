import threading
import time

from core.throttle import Limit, Throttle


def test_workers_sharing_a_limit_never_exceed_it_together(app):
    redis = app.extensions["redis"]
    limit = [Limit("test:throttle:global", per_second=20)]
    taken = []

    def worker():
        throttle = Throttle(redis)  # each worker has its own client object, the keys are shared
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if throttle.try_acquire(limit) == 0:
                taken.append(time.monotonic())
            else:
                time.sleep(0.005)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 10 <= len(taken) <= 22  # at most 20 per second (+1 at the start), however many workers ask


def test_a_limit_that_says_wait_takes_nothing(app):
    throttle = Throttle(app.extensions["redis"])
    domain = Limit("test:throttle:domain:example.org", per_second=1)
    other = Limit("test:throttle:global2", per_second=1000, burst=2)
    assert throttle.try_acquire([domain, other]) == 0
    wait = throttle.try_acquire([domain, other])
    assert 0.9 <= wait <= 1.0
    # the refused attempt did not use up the other limit's capacity
    assert throttle.try_acquire([other]) == 0


def test_the_engine_builds_the_global_campaign_and_domain_limits(app):
    throttle = Throttle(app.extensions["redis"])
    limits = throttle.limits(7, "Example.ORG", global_per_second=100, campaign_per_minute=60, domain_per_minute=30)
    assert [(limit.key.rsplit(":", 2)[-2:], limit.per_second) for limit in limits] == [
        (["throttle", "global"], 100), (["campaign", "7"], 1.0), (["domain", "example.org"], 0.5)]
    assert throttle.limits(7, "x.org", 0, None, 0) == []
