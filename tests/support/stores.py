"""Session fixtures for the shared stores: one real PostgreSQL and one real redis-server per session.

Each test gets a fresh database (PostgreSQL: a new database; Redis: a new
key prefix), so the servers start once. When a server binary is missing the
tests are skipped, except under CI, where ``.ci/run`` installs it and a missing
one is a failure.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator

import pytest

from proxbox_scheduler.state.postgres import PostgresStore
from proxbox_scheduler.state.redis import RedisStore
from proxbox_scheduler.state.shared import SharedStore
from tests.support import pg, redis_server

IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
_names = itertools.count()


def unavailable(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is not installed (CI installs it through .ci/run)", pytrace=False)
    pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pg.PostgresServer]:
    if not pg.available():
        unavailable("PostgreSQL 15")
    with pg.postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def redis_srv() -> Iterator[redis_server.RedisServer]:
    if not redis_server.available():
        unavailable("redis-server")
    with redis_server.redis_server() as server:
        yield server


def fresh_pg_url(server: pg.PostgresServer) -> str:
    return server.create_database(f"t{os.getpid()}_{next(_names)}")


def fresh_prefix() -> str:
    return f"t{os.getpid()}_{next(_names)}:"


Pair = Callable[[], SharedStore]


@pytest.fixture(params=["postgres", "redis"])
def replica(request: pytest.FixtureRequest) -> Pair:
    """Builds stores on one fresh shared database: each call is another replica."""
    if request.param == "postgres":
        url = fresh_pg_url(request.getfixturevalue("pg_server"))
        return lambda: PostgresStore(url, replica="r")
    server, prefix = request.getfixturevalue("redis_srv"), fresh_prefix()
    return lambda: RedisStore(server.url(), replica="r", prefix=prefix)
