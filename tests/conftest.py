from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.services import fresh_database, postgres_server, redis_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    with postgres_server() as url:
        yield url


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
