from tests.servers import free_port


def test_healthz_reports_database_and_redis_ok(client, app):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["failing"] == []
    assert body["database"] == {"ok": True, "engine": app.config["SQLALCHEMY_DATABASE_URI"].split(":")[0].split("+")[0]}
    assert body["redis"] == {"ok": True}
    assert response.headers["Cache-Control"] == "no-store"


def test_healthz_names_redis_when_redis_is_down(settings):
    from wsgi import create_app

    app = create_app({**settings, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["failing"] == ["redis"]
    assert body["database"]["ok"] is True
    assert body["redis"]["ok"] is False


def test_healthz_names_the_database_when_it_is_down(settings, tmp_path):
    from wsgi import create_app

    if settings["DATABASE_URL"].startswith("postgresql"):
        broken = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    else:
        broken = f"sqlite:///{tmp_path}/missing-dir/x.db"
    app = create_app({**settings, "DATABASE_URL": broken})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["failing"] == ["database"]


def test_integer_url_parts_beyond_32_bits_are_not_found(app):
    @app.get("/probe/<int:n>")
    def probe(n):
        return str(n)

    client = app.test_client()
    assert client.get("/probe/42").data == b"42"
    assert client.get(f"/probe/{2**31}").status_code == 404
