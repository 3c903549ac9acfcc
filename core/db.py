"""Declarative base, portable column types and engine tuning shared by every model."""

from __future__ import annotations

import enum
import sqlite3
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, registry

# Stable constraint names so that Alembic migrations work the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit keys on PostgreSQL; SQLite only auto-increments a column declared exactly INTEGER.
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


# Times outside these years are refused at the edges (API, filters): year 1 or 9999 with an offset
# overflows once shifted to UTC, and no supporter joined, nor will a campaign run, outside them.
EARLIEST_YEAR, LATEST_YEAR = 1900, 2200


def within_bounds(value: datetime) -> bool:
    """Whether a time lies in the years EARLIEST_YEAR..LATEST_YEAR (checked before any UTC shift)."""
    return EARLIEST_YEAR <= value.year <= LATEST_YEAR


class UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC datetimes on both engines (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    registry = registry(
        metadata=sa.MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime()},
    )


@sa.event.listens_for(sa.engine.Engine, "connect")
def _tune_sqlite(dbapi_connection, _record) -> None:
    """WAL, NORMAL sync, foreign keys and a busy timeout for every SQLite connection."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


def str_enum(cls: type[enum.Enum], name: str, length: int = 20) -> sa.Enum:
    """A Python enum stored as VARCHAR with a CHECK constraint: portable across both engines."""
    return sa.Enum(cls, name=name, native_enum=False, create_constraint=True, length=length,
                   values_callable=lambda e: [m.value for m in e], validate_strings=True)
