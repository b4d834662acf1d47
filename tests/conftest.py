from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.services import fresh_database, postgres_server, redis_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty catalog: once on SQLite, once on PostgreSQL."""
    from archive.catalog.migrate import upgrade

    url = (
        f"sqlite:///{tmp_path / 'catalog.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    upgrade(url)
    return url


@pytest.fixture()
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the `db_url` catalog."""
    from archive.catalog.db import make_engine, make_sessionmaker

    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture()
def pg_url(pg_server: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test."""
    with fresh_database(pg_server) as url:
        yield url


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture()
def redis_url(redis_server_url: str) -> str:
    """A Redis database index of its own, emptied first."""
    import redis

    index = 1 + int.from_bytes(os.urandom(1), "big") % 15
    url = f"{redis_server_url}/{index}"
    redis.Redis.from_url(url).flushdb()
    return url
