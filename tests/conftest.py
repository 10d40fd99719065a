"""Test fixtures: a fresh Postgres database per run, real Redis, real HTTP servers on loopback.

The servers are the environment's, the machine's or throwaways started for the session
(``tests/services.py``). Each run creates its own database (``mycpaas_test_<pid>``) and Redis
key prefix, so parallel runs and the developer's own services do not collide. Each test makes
its own account, so tests never see each other's rows.
"""

import os
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis

from tests import services
from tests.processes import Account, free_port, new_account, start_api

SERVICES = services.provide()  # before anything reads a setting; stopped in pytest_unconfigure
BASE_DATABASE_URL = SERVICES.database_url
BASE_REDIS_URL = SERVICES.redis_url
RUN_ID = f"{os.getpid()}_{secrets.token_hex(3)}"
RUN_DATABASE = f"mycpaas_test_{RUN_ID}"
RUN_REDIS_PREFIX = f"mycpaas-test-{RUN_ID}:"  # the broker's keys too: runs never share a queue


def database_url(name: str) -> str:
    parts = urlsplit(BASE_DATABASE_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


DATABASE_URL = database_url(RUN_DATABASE)

# The code under test reads settings from the environment once; set it before anything imports it.
os.environ.update(
    {
        "MYCPAAS_DATABASE_URL": DATABASE_URL,
        "MYCPAAS_BROKER_URL": BASE_REDIS_URL,
        "MYCPAAS_REDIS_URL": BASE_REDIS_URL,
        "MYCPAAS_REDIS_PREFIX": RUN_REDIS_PREFIX,
        "MYCPAAS_LOG_LEVEL": "WARNING",
        "MYCPAAS_OUTBOUND_ALLOW_CIDRS": "127.0.0.0/8,::1/128",  # local receivers only
        "MYCPAAS_SECRET_KEY": "test-secret-key",  # Postgres refuses the development key
        # what a process the tests start finds, should it look for the test servers itself
        "MYCPAAS_TEST_DATABASE_URL": BASE_DATABASE_URL,
        "MYCPAAS_TEST_REDIS_URL": BASE_REDIS_URL,
    }
)
for variable in ("TWILIO_REGION", "TWILIO_EDGE"):
    os.environ.pop(variable, None)


def pytest_report_header() -> list[str]:
    return SERVICES.origins


# Tests that use these fixtures start platform processes (API, simulator, SMSC, platforms).
PROCESS_FIXTURES = {"api_url", "platform", "simulator_url", "smsc"}
E2E_DIR = Path(__file__).parent / "e2e"
BROKERS = ("redis", "rabbitmq")  # the session platform's, in tests/e2e/conftest.py


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Iterator[None]:
    """Marks ``e2e`` every test that starts processes of the platform: all of ``tests/e2e/``,
    and any test using a fixture that starts one (tests that start one themselves say so).

    Then, once pytest has ordered the tests (grouped by the platform's broker), puts those of
    ``tests/e2e/`` first, then the other ``e2e`` ones, stably: xdist hands out the long ones
    while every worker is free, and the quick ones fill the gaps at the end."""
    for item in items:
        if item.path.is_relative_to(E2E_DIR) or PROCESS_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.e2e)
    yield
    items.sort(key=lambda item: (not item.path.is_relative_to(E2E_DIR),
                                 item.get_closest_marker("e2e") is None))  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist"):
        from tests.scheduling import ModulesAndPlatforms

        config.pluginmanager.register(ModulesAndPlatforms(), "mycpaas-scheduling")


def pytest_unconfigure() -> None:
    """The very end of the session, after every fixture's teardown: stop the throwaways."""
    SERVICES.close()


def admin(sql: str) -> None:
    with psycopg.connect(BASE_DATABASE_URL, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session", autouse=True)
def database() -> Iterator[str]:
    admin(f'CREATE DATABASE "{RUN_DATABASE}"')
    try:
        subprocess.run(["mycpaas", "migrate"], check=True, capture_output=True)
        yield DATABASE_URL
    finally:
        from schemas.db import dispose_engine

        dispose_engine()
        admin(f'DROP DATABASE IF EXISTS "{RUN_DATABASE}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(BASE_REDIS_URL)
    yield client
    for key in client.scan_iter(match=f"{RUN_REDIS_PREFIX}*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def api_url(database: str) -> Iterator[str]:
    with start_api(free_port()) as url:
        yield url


@pytest.fixture
def account(database: str) -> Account:
    return new_account()


@pytest.fixture
def other_account(database: str) -> Account:
    return new_account()


@pytest.fixture
def idempotency_key() -> str:
    return uuid.uuid4().hex
