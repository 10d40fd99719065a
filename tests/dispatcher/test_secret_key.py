"""One secret key for every process: a token the API accepts is the one callbacks are signed with."""

import json
import os
import subprocess
import threading
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from sqlmodel import Session

from schemas.credentials import check_secret_key
from schemas.db import make_engine
from schemas.migrate import upgrade
from tests import conftest
from tests.e2e.conftest import own_database
from tests.processes import free_port, start_api

KEY = os.environ["MYCPAAS_SECRET_KEY"]  # the key the test databases are migrated with


@pytest.fixture
def database_url() -> Iterator[str]:
    with own_database() as url:
        yield url


def mycpaas(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "MYCPAAS_DATABASE_URL": database_url, **env}
    return subprocess.run(["mycpaas", *args], env=environment, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def accounts(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM accounts").fetchone()
    assert row is not None
    return int(row[0])


def test_accounts_create_with_another_key_refuses_in_one_line(database_url: str) -> None:
    # when: the operator's shell holds another key than the services
    result = mycpaas(database_url, "accounts", "create", MYCPAAS_SECRET_KEY="the-shell-key")
    # then: no token is printed, no account made, and the line says what to do
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "MYCPAAS_SECRET_KEY is not the key this database's tokens were issued under" in line
    assert "AuthToken" not in result.stdout
    assert accounts(database_url) == 0


@pytest.mark.parametrize(
    "command", [["serve", "--port", "0"], ["worker", "-Q", "segment"], ["accounts", "create"]]
)
def test_processes_on_postgres_refuse_the_development_key(
    database_url: str, command: list[str]
) -> None:
    environment = {key: value for key, value in os.environ.items() if key != "MYCPAAS_SECRET_KEY"}
    result = subprocess.run(["mycpaas", *command], capture_output=True, text=True, timeout=60,
                            env={**environment, "MYCPAAS_DATABASE_URL": database_url})  # fmt: skip
    assert result.returncode == 1
    assert "built-in development key" in result.stderr


@pytest.mark.e2e
def test_rotating_the_key_reissues_every_token(database_url: str) -> None:
    # given: an account created under the database's key
    created = json.loads(mycpaas(database_url, "accounts", "create", "--json").stdout)
    # when: the key is rotated
    result = mycpaas(database_url, "secret-key", "rotate", "--yes", MYCPAAS_SECRET_KEY="new-key")
    assert result.returncode == 0, result.stderr
    [reissued] = [json.loads(line) for line in result.stdout.splitlines()]
    assert reissued["sid"] == created["sid"]
    assert reissued["auth_token"] != created["auth_token"]
    # then: an API with the new key takes the new token and refuses the old one
    env = {"MYCPAAS_DATABASE_URL": database_url, "MYCPAAS_SECRET_KEY": "new-key"}
    with start_api(free_port(), env) as api:
        url = f"{api}/v1/Accounts/{created['sid']}/Messages"
        assert httpx.get(url, auth=(created["sid"], reissued["auth_token"])).status_code == 200
        assert httpx.get(url, auth=(created["sid"], created["auth_token"])).status_code == 401
    # and the old key is refused from now on
    assert mycpaas(database_url, "accounts", "create", MYCPAAS_SECRET_KEY=KEY).returncode == 1


def test_processes_starting_together_on_a_fresh_database_agree_on_the_key() -> None:
    # given: a fresh database, migrated but with no key recorded yet
    name = f"{conftest.RUN_DATABASE}_keyrace"
    url = conftest.database_url(name)
    conftest.admin(f'CREATE DATABASE "{name}"')
    engine = make_engine(url)
    try:
        upgrade(url.replace("postgresql://", "postgresql+psycopg://", 1))
        start = threading.Barrier(8)
        errors: list[BaseException] = []

        def starting() -> None:
            try:
                with Session(engine) as session:
                    start.wait(10)
                    check_secret_key(session)
            except BaseException as exc:  # reported below
                errors.append(exc)

        # when: eight processes' first checks run at once (compose starts them together)
        threads = [threading.Thread(target=starting) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        # then: the first recorded the key and every other one agreed
        assert errors == []
    finally:
        engine.dispose()
        conftest.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
