"""The OpenAPI document describes every operation the app serves, with its security and errors."""

import re

from api.openapi import build_spec

MY_MODULES = {"api.supporters", "api.tags", "api.segments", "api.users", "api.audit", "api.session", "api.openapi",
              "api.settings", "api.docs_page"}


def test_the_document_lists_every_api_route_with_security_and_problem_responses(app, client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer",
                                     "description": schemes["bearerAuth"]["description"]}
    assert schemes["sessionCookie"]["in"] == "cookie"
    operations = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api."):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (method, path) in operations, (method, path)
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and op["operationId"] and "default" in op["responses"], (method, path)
            for code, response in op["responses"].items():
                if code.startswith(("4", "5")) or code == "default":
                    assert "application/problem+json" in response["content"], (method, path, code)
            if op.get("security") == []:
                continue  # public: sign-in, sign-out, this document
            assert {"401", "403", "429"} <= set(op["responses"]), (method, path)
            if "{" in path:
                assert "404" in op["responses"] and op["parameters"][0]["schema"]["type"] == "integer"
            if "requestBody" in op:
                assert {"415", "422"} <= set(op["responses"])


def test_bodies_forbid_unknown_fields_and_ids_are_bounded(client):
    document = client.get("/api/v1/openapi.json").get_json()
    create = document["components"]["schemas"]["SupporterCreate"]
    assert create["additionalProperties"] is False and create["required"] == ["email"]
    tag_id = document["paths"]["/api/v1/tags/{tag_id}"]["get"]["parameters"][0]["schema"]
    assert tag_id == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}


def test_operations_added_later_by_other_modules_are_picked_up(app):
    from flask import Flask

    import api

    other = Flask("other")
    other.register_blueprint(api.bp)

    def list_widgets():
        """List widgets."""

    other.add_url_rule("/api/v1/widgets/<int:widget_id>", endpoint="api.list_widgets", view_func=list_widgets)
    document = build_spec(other)
    op = document["paths"]["/api/v1/widgets/{widget_id}"]["get"]
    assert op["summary"] == "List widgets."
    assert op["parameters"][0]["name"] == "widget_id" and "404" in op["responses"]


def test_the_docs_page_loads_swagger_ui_from_this_server_only(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "//" not in text.replace("<!doctype html>", "")  # no other origin, not even protocol-relative
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", text, re.S)
    assert scripts and all('src="/api/v1/docs/assets/' in attrs and not body.strip() for attrs, body in scripts)
    assert "<style" not in text and "style=" not in text
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    for src in re.findall(r'(?:src|href)="(/api/v1/docs/assets/[^"]+)"', text):
        asset = client.get(src)
        assert asset.status_code == 200 and asset.content_length > 100, src
    assert client.get("/api/v1/docs/assets/swagger-ui-bundle.js").mimetype == "text/javascript"
    for name in ("index.html", "swagger-initializer.js", "..%2Fopenapi.py", "docs_page.py"):
        assert client.get(f"/api/v1/docs/assets/{name}").status_code == 404, name


def test_my_views_all_carry_documentation(app):
    for endpoint, view in app.view_functions.items():
        if endpoint.startswith("api.") and view.__module__ in MY_MODULES:
            assert getattr(view, "api_doc", None), endpoint
