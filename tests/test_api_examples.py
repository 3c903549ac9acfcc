"""Every operation of the OpenAPI document carries examples, and every example is honest: valid
against its schema in the document (OpenAPI 3.0 semantics: `nullable`, formats, `$ref`s) and, for
request bodies, accepted by the very marshmallow schema the endpoint loads them with."""

from __future__ import annotations

import pytest
from openapi_schema_validator import OAS30Validator

from api.openapi_text import TAGS, operation_examples

JSON = "application/json"


@pytest.fixture
def document(client):
    return client.get("/api/v1/openapi.json").get_json()


def _operations(document):
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            yield path, method, op


def _errors(document, schema, instance) -> list[str]:
    """Validation errors of `instance` against `schema`, whose `$ref`s point into the document."""
    root = {"allOf": [schema], "components": document["components"]}
    validator = OAS30Validator(root, format_checker=OAS30Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def _views(app):
    return {view.__name__: view for endpoint, view in app.view_functions.items()
            if endpoint.startswith("api.") and getattr(view, "api_doc", None)}


def test_every_body_and_response_of_every_operation_has_an_example(document):
    missing = []
    for path, method, op in _operations(document):
        for media, content in op.get("requestBody", {}).get("content", {}).items():
            if "example" not in content:
                missing.append(f"{method.upper()} {path} request {media}")
        for code, response in op["responses"].items():
            for media, content in response.get("content", {}).items():
                if "example" not in content and op["operationId"] != "openapi_document":
                    missing.append(f"{method.upper()} {path} {code} {media}")
    assert missing == []


def test_every_example_is_valid_against_its_schema(document):
    checked, problems = 0, []
    for path, method, op in _operations(document):
        bodies = [("request", m, c) for m, c in op.get("requestBody", {}).get("content", {}).items()]
        bodies += [(code, m, c) for code, r in op["responses"].items() for m, c in r.get("content", {}).items()]
        for where, media, content in bodies:
            if "example" in content:
                checked += 1
                problems += [f"{method.upper()} {path} {where} {media}: {e}"
                             for e in _errors(document, content["schema"], content["example"])]
    assert not problems, "\n".join(problems)
    assert checked > 200  # 57 operations, each with a few error examples besides its own


def test_request_examples_are_accepted_by_the_endpoints_own_schemas(app, document):
    views = _views(app)
    loaded = 0
    for _path, method, op in _operations(document):
        meta = views[op["operationId"]].api_doc
        example = operation_examples().get(op["operationId"], {})
        if meta["body"] is not None:
            meta["body"]().load(example["request"], partial=method == "patch")
            loaded += 1
        if meta.get("form") is not None:
            meta["form"]().load({k: v for k, v in example["form"].items() if k not in meta["files"]})
            loaded += 1
    assert loaded >= 20


def test_a_wrong_example_would_be_caught(document):
    campaign = document["paths"]["/api/v1/campaigns/{campaign_id}"]["get"]["responses"]["200"]["content"][JSON]
    broken = {k: v for k, v in campaign["example"].items() if k != "status"}
    assert any("status" in e for e in _errors(document, campaign["schema"], broken))
    assert _errors(document, campaign["schema"], {**campaign["example"], "id": "seven"})
    assert _errors(document, campaign["schema"], {**campaign["example"], "launched_at": "yesterday"})


def test_the_examples_file_names_only_real_operations(document):
    operation_ids = {op["operationId"] for _p, _m, op in _operations(document)}
    assert set(operation_examples()) - operation_ids == set()


def test_the_document_starts_with_a_getting_started_section_and_orders_its_tags(document):
    description = document["info"]["description"]
    assert "## Getting started" in description and "flask tokens create" in description
    assert "Authorization: Bearer" in description
    assert [t["name"] for t in document["tags"]] == [name for name, _ in TAGS]
    used = {op["tags"][0] for _p, _m, op in _operations(document)}
    assert used <= {name for name, _ in TAGS}, used - {name for name, _ in TAGS}


def test_the_import_is_documented_as_a_multipart_upload(document):
    body = document["paths"]["/api/v1/imports/supporters"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert body["schema"]["properties"]["file"] == {"type": "string", "format": "binary"}
    assert body["schema"]["required"] == ["file"] and body["schema"]["properties"]["tag"]["type"] == "array"
