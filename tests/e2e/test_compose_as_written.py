"""compose.yaml as written: every service started with its own command and environment, the
compose hostnames mapped to loopback and its ports to free ones, then an SMS and an MMS sent
with the twilio SDK, each to ``delivered`` with its status callbacks.

Before, compose's SMPP password (nine characters; SMPP allows eight) killed the carrier
workers' sessions silently and nothing was ever sent, and SMPP, which carries no MMS, failed
every MMS: the suite never noticed, because every test configured its own values.

What the test changes, and why:
- ``postgres``, ``redis``, ``api`` and ``carrier-sim`` become 127.0.0.1 and this run's ports;
  the database is a fresh one of this run (compose's user ``mycpaas`` is created if missing).
- every Redis key gets this run's prefix (``MYCPAAS_REDIS_PREFIX``), so no run shares a queue;
- ``MYCPAAS_OUTBOUND_ALLOW_CIDRS`` lets the callbacks and media reach this test's servers,
  which sit on loopback where a customer's would be public;
- paths under /tmp become this test's directory;
- the carrier workers reach carrier-sim's SMSC through a relay that decodes every PDU with
  Jasmin's PDU library (``tests/smpp_wire.py``).
Nothing else is added: no timeouts, sweep intervals or log levels of the test's own.
"""

import contextlib
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from twilio.rest import Client

from tests.conftest import BASE_DATABASE_URL, BASE_REDIS_URL, admin
from tests.media_server import running_media_server
from tests.processes import free_port, random_number, start, stop, wait_http
from tests.receiver import running_receiver
from tests.smpp_wire import wire_check
from tests.test_monitoring import named_metrics
from workers.app import QUEUES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]


def _hosts(ports: dict[str, int]) -> dict[str, str]:
    """compose ``host:port`` → this run's ``127.0.0.1:port``."""
    return {f"{name}:{port}": f"127.0.0.1:{ours}" for (name, port), ours in
            [(("api", 8000), ports["api"]), (("carrier-sim", 8100), ports["sim"])]}  # fmt: skip


def mapped_environment(
    service: str, ports: dict[str, int], database: str, prefix: str
) -> dict[str, str]:
    env = {name: str(value) for name, value in SERVICES[service]["environment"].items()}
    for name, value in env.items():
        for theirs, ours in _hosts(ports).items():
            value = value.replace(f"//{theirs}", f"//{ours}")
        if name == "MYCPAAS_DATABASE_URL":
            parts = urlsplit(value)
            base = urlsplit(BASE_DATABASE_URL)
            value = urlunsplit(
                parts._replace(
                    netloc=f"{parts.username}:{parts.password}@{base.hostname}:{base.port or 5432}",
                    path=f"/{database}",
                )
            )
        if name in ("MYCPAAS_BROKER_URL", "MYCPAAS_REDIS_URL"):
            value = BASE_REDIS_URL
        if name == "MYCPAAS_SMPP_HOST":
            value = "127.0.0.1"
        if name == "MYCPAAS_SMPP_PORT":
            value = str(ports["wire"])  # through Jasmin's decoder (tests/smpp_wire.py)
        env[name] = value
    env["MYCPAAS_REDIS_PREFIX"] = prefix
    env["MYCPAAS_OUTBOUND_ALLOW_CIDRS"] = "127.0.0.0/8"
    # the test process's own settings do not leak into the services
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MYCPAAS_")}
    return {**inherited, **env}


def mapped_command(service: str, ports: dict[str, int], workdir: Path) -> list[str]:
    command = [str(word) for word in SERVICES[service]["command"]]
    swaps = {"0.0.0.0": "127.0.0.1", "8000": str(ports["api"]), "8100": str(ports["sim"]),
             "2775": str(ports["smpp"]), "8200": str(ports["console"])}  # fmt: skip
    return [swaps.get(word, word.replace("/tmp/", f"{workdir}/")) for word in command]


@contextlib.contextmanager
def compose_database() -> Iterator[str]:
    """A fresh database owned by compose's user (created, with compose's password, if missing)."""
    url = urlsplit(str(SERVICES["migrate"]["environment"]["MYCPAAS_DATABASE_URL"]))
    user, password = url.username, url.password
    name = f"mycpaas_compose_{secrets.token_hex(4)}"
    with psycopg.connect(BASE_DATABASE_URL, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [user]).fetchone() is None:
            with contextlib.suppress(psycopg.errors.DuplicateObject):  # another run, just now
                conn.execute(f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{password}'")
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{user}"')
    try:
        yield name
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("compose")
    ports = {"api": free_port(), "sim": free_port(), "smpp": free_port(), "console": free_port()}
    prefix = f"mycpaas-compose-{secrets.token_hex(4)}:"
    with compose_database() as database, wire_check(ports["smpp"]) as wire, \
            contextlib.ExitStack() as stack:  # fmt: skip
        ports["wire"] = wire.port

        def env(service: str) -> dict[str, str]:
            return mapped_environment(service, ports, database, prefix)

        migrate = subprocess.run(mapped_command("migrate", ports, workdir), env=env("migrate"),
                                 capture_output=True, text=True, timeout=120)  # fmt: skip
        assert migrate.returncode == 0, migrate.stderr
        procs = {}
        for service in sorted(SERVICES):
            if SERVICES[service].get("image") != "mycpaas-dispatch" or service == "migrate":
                continue
            log = stack.enter_context((workdir / f"{service}.log").open("wb"))
            procs[service] = start(mapped_command(service, ports, workdir), env(service), log)
        stack.callback(lambda: [stop(proc) for proc in procs.values()])
        api = f"http://127.0.0.1:{ports['api']}"
        wait_http(f"http://127.0.0.1:{ports['sim']}/healthz", 90, procs["carrier-sim"])
        wait_http(f"{api}/healthz", 90, procs["api"])  # nine processes start at once
        wait_http(f"http://127.0.0.1:{ports['console']}/login", 90, procs["console"])
        # the account and its number as an operator makes them: the CLI, with compose's settings
        created = subprocess.run(["mycpaas", "accounts", "create", "--name", "compose", "--json"],
                                 env=env("api"), capture_output=True, text=True, check=True)  # fmt: skip
        account = json.loads(created.stdout)
        sid, token, phone = account["sid"], account["auth_token"], random_number()
        subprocess.run(["mycpaas", "numbers", "add", "--account", sid, "--sps", "100", phone],
                       env=env("api"), capture_output=True, check=True)  # fmt: skip
        yield {"api": api, "sid": sid, "token": token, "number": phone, "procs": procs,
               "workdir": workdir}  # fmt: skip


def test_every_service_runs_as_written_and_readyz_sees_the_carrier_bound(
    deployment: dict[str, Any],
) -> None:
    for service, proc in deployment["procs"].items():
        assert proc.poll() is None, (
            f"{service} exited: {(deployment['workdir'] / f'{service}.log').read_text()[-2000:]}"
        )
    ready = httpx.get(f"{deployment['api']}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text


def test_an_sms_and_an_mms_are_delivered_with_their_callbacks(deployment: dict[str, Any]) -> None:
    client = Client(deployment["sid"], deployment["token"])
    client.api.base_url = deployment["api"]
    with running_receiver() as receiver, running_media_server() as media:
        callback = receiver.url("/ok")
        # when an SMS (over compose's SMPP bind) and an MMS (over its HTTP carrier) are sent
        sms = client.messages.create(to=random_number(), from_=deployment["number"],
                                     body="a code: 123456", status_callback=callback)  # fmt: skip
        mms = client.messages.create(to=random_number(), from_=deployment["number"],
                                     body="a picture", media_url=[media.url("/a.jpg")],
                                     status_callback=callback)  # fmt: skip
        # then: each reaches delivered, and its customer hears sending, sent and delivered
        for message in (sms, mms):
            heard = receiver.wait_for(message.sid, 3, timeout_s=60)
            assert [r.params["MessageStatus"] for r in heard] == ["sending", "sent", "delivered"]
            assert client.messages(message.sid).fetch().status == "delivered"
        assert mms.sid.startswith("MM")


def test_the_monitoring_kit_queries_only_what_this_deployment_exports(
    deployment: dict[str, Any],
) -> None:
    # then: every metric a rule or a dashboard panel names is served by /metrics, and every
    # queue has a live worker (what the "no worker" alert watches)
    def scrape() -> dict[str, list[Any]]:
        text = httpx.get(f"{deployment['api']}/metrics", timeout=10).text
        return {family.name: family.samples for family in text_string_to_metric_families(text)}

    deadline = time.monotonic() + 30  # a worker's first beat is at its start
    while not all(s.value >= 1 for s in scrape()["mycpaas_workers"]):
        assert time.monotonic() < deadline, scrape()["mycpaas_workers"]
        time.sleep(1)
    assert {s.labels["queue"] for s in scrape()["mycpaas_workers"]} == set(QUEUES)
    missing = named_metrics() - set(scrape())
    assert not missing, missing
