"""Absolute URLs come from PUBLIC_BASE_URL only: a forged `Host` never makes a link to another site."""

import pytest

from tests.api_support import ApiCaller
from tests.factories import make_supporter, make_tag

EVIL = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}


@pytest.fixture
def api(app, db):
    return ApiCaller(app, db)


def _no_evil(response):
    text = response.get_data(as_text=True) + " ".join(f"{k}: {v}" for k, v in response.headers.items())
    assert "evil.example" not in text


def test_next_links_use_the_public_base_url_whatever_the_host_header(api):
    for _ in range(3):
        make_supporter()
    make_tag("a"), make_tag("b")
    for path in ("/supporters?limit=1&status=active", "/tags?limit=1", "/users?limit=1", "/tokens?limit=1"):
        api.token("admin")
        if path.startswith("/users"):
            api.token("viewer")
        if path.startswith("/tokens"):
            api.token("manager")
        r = api.get(path, headers=EVIL)
        assert r.status_code == 200, r.get_json()
        assert r.get_json()["next"].startswith("http://supporters.test/api/v1/"), r.get_json()["next"]
        _no_evil(r)


def test_download_links_and_locations_use_the_public_base_url(api, app):
    from supporters.transfer_jobs import TransferStatus

    r = api.post("/exports/consents", {}, headers=EVIL)
    assert r.status_code == 202
    _no_evil(r)
    from core.queues import make_worker

    make_worker(app, ["default"]).work(burst=True)
    job = api.get(r.headers["Location"].removeprefix("/api/v1"), headers=EVIL)
    assert job.get_json()["status"] == TransferStatus.DONE.value, job.get_json()
    assert job.get_json()["download"]["url"].startswith("http://supporters.test/api/v1/jobs/")
    _no_evil(job)
    created = api.post("/tags", {"name": "fresh"}, headers=EVIL)
    assert created.status_code == 201
    _no_evil(created)
