"""The migrations build the schema the models describe, and undo it cleanly, on both engines."""

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade


@pytest.fixture
def fresh_app(settings, tmp_path):
    """An app on a database of its own, so up/down cycles do not disturb the shared schema."""
    from tests.servers import PostgresServer  # noqa: F401 - documents where servers come from
    from wsgi import create_app

    url = settings["DATABASE_URL"]
    if url.startswith("postgresql"):
        import psycopg

        base = sa.engine.make_url(url)
        with psycopg.connect(host=base.host, port=base.port, user=base.username, dbname=base.database,
                             autocommit=True) as conn:
            conn.execute('DROP DATABASE IF EXISTS "migrations_test"')
            conn.execute('CREATE DATABASE "migrations_test"')
        url = base.set(database="migrations_test").render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{tmp_path / 'migrations.db'}"
    app = create_app({**settings, "DATABASE_URL": url})
    with app.app_context():
        yield app
        from core.extensions import db

        db.session.remove()
        db.engine.dispose()


def _tables(db):
    return set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade_round_trip(fresh_app):
    from core.extensions import db

    upgrade()
    assert _tables(db) == {t.name for t in db.metadata.sorted_tables}
    downgrade(revision="base")
    assert _tables(db) == set()
    upgrade()
    assert _tables(db) == {t.name for t in db.metadata.sorted_tables}


def test_models_and_migrations_agree(fresh_app):
    from core.extensions import db

    upgrade()
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == [], f"models and migrations differ; run `flask db migrate`: {diff}"
