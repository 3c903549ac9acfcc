"""Schemathesis against the live OpenAPI document: every operation, generated inputs, real database.

Checks: no server errors, responses conform to the documented schemas (status, content type, body),
and authentication is not ignored (each operation is retried without and with a wrong token).
`SCHEMATHESIS_EXAMPLES` sets the examples per operation (default 100; e.g. 10 for a quick run).
"""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from supporters.models import Segment
from tests.api_support import ApiCaller
from tests.factories import make_supporter, make_tag

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "100"))
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, ignored_auth]


def _document() -> dict:
    """The OpenAPI document of the API blueprint, built on a bare Flask app at collection time
    (the live document is the same code; a test below checks they are equal)."""
    import importlib
    import pkgutil

    from flask import Flask

    import api
    from api.openapi import build_spec

    for module in pkgutil.iter_modules(api.__path__):
        importlib.import_module(f"api.{module.name}")
    from wsgi import BoundedIntConverter

    bare = Flask("openapi")
    bare.url_map.converters["int"] = BoundedIntConverter  # as create_app() does
    bare.register_blueprint(api.bp)
    return build_spec(bare)


DOCUMENT = _document()
class _CurrentApp:
    """A WSGI app that forwards to the current test's app (schemathesis binds its app at collection)."""

    target = None

    def __call__(self, environ, start_response):
        return self.target(environ, start_response)


CURRENT_APP = _CurrentApp()
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.app = CURRENT_APP
schema.config.update(base_url="http://localhost")  # requests go to the WSGI app, not the network


def test_the_live_document_is_the_one_fuzzed(client):
    assert client.get("/api/v1/openapi.json").get_json() == DOCUMENT


@pytest.fixture
def fuzz_app(app, db):
    app.config["API_RATE_LIMIT"] = "1000000/minute"  # the fuzzer is one caller sending thousands of requests
    caller = ApiCaller(app, db)
    app.config["SCHEMATHESIS_TOKEN"] = caller.token("admin")
    # A few rows, so that generated ids sometimes hit something (ids start at 1 in every test).
    make_tag("press", public=True)
    person = make_supporter("fuzz@example.org")
    make_supporter("friend@example.org", referred_by_id=person.id)
    db.session.add(Segment(name="fans", definition={"field": "kind", "op": "eq", "value": "fan"}))
    db.session.commit()
    CURRENT_APP.target = app
    return app


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_api_survives_generated_requests(case, fuzz_app):
    headers = {"Authorization": f"Bearer {fuzz_app.config['SCHEMATHESIS_TOKEN']}"}
    case.call_and_validate(headers=headers, checks=CHECKS)
