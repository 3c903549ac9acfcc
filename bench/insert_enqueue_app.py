"""Baseline: the floor cost of a signup, one ORM INSERT and one RQ enqueue and nothing else.

Served under the same gunicorn settings as the platform by `bench.join`; the table is created by
the benchmark before the server starts.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import redis
import sqlalchemy as sa
from flask import Flask, request
from flask_sqlalchemy import SQLAlchemy
from rq import Queue
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Signup(db.Model):
    __tablename__ = "bench_signups"

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


def noop(signup_id: int) -> int:
    """The queued job (never run during the benchmark)."""
    return signup_id


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
    # BENCH_PRE_PING=1 uses the platform's engine options (a `SELECT 1` on every pool checkout), to
    # show what that setting costs; the floor itself runs without it.
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": os.environ.get("BENCH_PRE_PING") == "1"}
    db.init_app(app)
    queue = Queue("bench", connection=redis.Redis.from_url(os.environ["REDIS_URL"]))

    @app.get("/")
    def ready():
        return "ready"

    @app.post("/signup")
    def signup():
        row = Signup(email=request.form["email"], created_at=datetime.now(UTC))
        db.session.add(row)
        db.session.flush()
        signup_id = row.id
        db.session.commit()
        queue.enqueue(noop, signup_id)
        return "ok"

    return app
