from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.support.services import (
    USE_LOCAL_ENV,
    fresh_database,
    postgres_server,
    redis_server,
    use_local_services,
)

# A test that asks for one of these talks to PostgreSQL or Redis: it is marked `services`
# at collection, so `pytest -m "not services"` leaves it out. Tests that reach them
# another way (a fixture parameter, a server of their own) carry the marker themselves,
# and `_needs_services_marker` fails any that forgot.
SERVICE_FIXTURES = frozenset({"pg_server", "pg_url", "redis_server_url", "redis_url"})


def pytest_configure(config: pytest.Config) -> None:
    # An operator's AMANA_* settings in the calling shell must not point the tests (or the
    # Amana processes they start, which inherit the environment) at a real database,
    # broker or archive: each test states the settings it relies on.
    for name in [n for n in os.environ if n.startswith("AMANA_")]:
        if not name.startswith("AMANA_TEST_"):
            del os.environ[name]


def pytest_report_header() -> str:
    if use_local_services():
        return f"services: this machine's PostgreSQL (5432) and Redis (6379), {USE_LOCAL_ENV} set"
    return f"services: throwaway PostgreSQL and Redis of the suite (local ones: {USE_LOCAL_ENV}=1)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


def _needs_services_marker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("services") is None:
        pytest.fail(
            f"{request.node.nodeid} uses PostgreSQL or Redis without the `services` marker",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
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
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test."""
    _needs_services_marker(request)  # before the server starts: a forgotten marker costs nothing
    with fresh_database(request.getfixturevalue("pg_server")) as url:
        yield url


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


# Databases 1-15 in turn: each test gets one emptied for it (0 is left to whoever set
# AMANA_TEST_USE_LOCAL_SERVICES and uses that Redis for something else).
_redis_databases = itertools.cycle(range(1, 16))


@pytest.fixture()
def redis_url(request: pytest.FixtureRequest) -> str:
    """A Redis database index of its own, emptied first."""
    import redis

    _needs_services_marker(request)
    url = f"{request.getfixturevalue('redis_server_url')}/{next(_redis_databases)}"
    redis.Redis.from_url(url).flushdb()
    return url
