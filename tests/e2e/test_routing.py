"""Routing over several carriers through real processes: two SMSCs (two simulators' SMPP
listeners) and an HTTP gateway, chosen by the carriers file's routes; and one SMSC killed
mid-run, its traffic failing over to the other and coming back once it returns, nothing lost
and nothing at two handsets' SMSCs twice."""

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlmodel import Session

from schemas.db import make_engine
from schemas.models import segments_table
from tests.e2e.conftest import Platform, launch
from tests.e2e.test_smpp import wait_for
from tests.media_server import running_media_server
from tests.processes import free_port, random_number, start, wait_http

FILE = """
[carriers.home]
driver = "smpp"
host = "127.0.0.1"
port = {home}
system_id = "mycpaas"
password = "secret"

[carriers.abroad]
driver = "smpp"
host = "127.0.0.1"
port = {abroad}
system_id = "mycpaas"
password = "secret"

[carriers.gateway]
driver = "simulator"
url = "{gateway}"

[[routes]]
name = "mms"
kind = "mms"
carrier = "gateway"

[[routes]]
name = "germany"
prefix = "+49"
failover = ["abroad", "home"]

[[routes]]
name = "rest"
failover = ["home", "abroad"]
"""
SMSC = ("--smpp-password", "secret", "--smpp-receipt-resend-s", "1")


class Abroad:
    """The second simulator: its own HTTP port (counters) and SMPP listener, with a journal
    so that, killed and started again, it still owes the receipts it owed."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.http, self.smpp = free_port(), free_port()
        self.command = ["mycpaas", "carrier-sim", "--port", str(self.http), "--smpp-port",
                        str(self.smpp), "--receipt-delay-ms", "20", "--journal",
                        str(workdir / "abroad.journal"), *SMSC]  # fmt: skip
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = start(self.command, self.env)
        wait_http(f"http://127.0.0.1:{self.http}/healthz", proc=self.proc)

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def accepted(self) -> set[str]:
        return accepted_at(f"http://127.0.0.1:{self.http}")


def accepted_at(simulator: str) -> set[str]:
    """The destinations an SMSC accepted a part for (its counters are to/reference/part)."""
    counts = httpx.get(f"{simulator}/counters", timeout=5).json()["smpp"]["accepted"]
    return {key.split("/")[0] for key in counts}


def home_accepted(platform: Platform) -> set[str]:
    return accepted_at(platform.sim)


@contextlib.contextmanager
def routed_platform(workdir: Path) -> Iterator[tuple[Platform, Abroad]]:
    home = free_port()
    carriers = workdir / "carriers.toml"
    carriers.write_text(FILE.format(home=home, abroad=1, gateway="http://127.0.0.1:1"))
    with launch(workdir, workers=("media", "segment", "maintenance"),
                sim_args=("--smpp-port", str(home), *SMSC),
                MYCPAAS_CARRIERS_FILE=str(carriers)) as platform:  # fmt: skip
        abroad = Abroad(workdir, platform.env)
        abroad.start()
        try:
            # the real file, now that every port is known; read by the carrier worker it starts
            carriers.write_text(FILE.format(home=home, abroad=abroad.smpp, gateway=platform.sim))
            platform.start_worker("carrier")
            yield platform, abroad
        finally:
            if abroad.proc is not None and abroad.proc.poll() is None:
                abroad.kill()


def connections(platform: Platform, sids: list[str]) -> dict[str, set[str]]:
    engine = make_engine(platform.env["MYCPAAS_DATABASE_URL"])
    s = segments_table.c
    try:
        with Session(engine) as session:
            rows = session.execute(
                select(s.message_sid, s.connection).where(s.message_sid.in_(sids))
            ).all()
    finally:
        engine.dispose()
    found: dict[str, set[str]] = {}
    for sid, name in rows:
        found.setdefault(sid, set()).add(name)
    return found


def test_each_route_takes_its_messages_to_its_connection(tmp_path: Path) -> None:
    with routed_platform(tmp_path) as (platform, abroad), running_media_server() as media:
        account = platform.new_account()
        german = [random_number() for _ in range(5)]
        american = [f"+1202555{n:04d}" for n in range(1000, 1005)]
        sids = [platform.send(account, to, "hallo")["sid"] for to in german]
        sids += [platform.send(account, to, "hello")["sid"] for to in american]
        mms = platform.send(account, random_number(), "look", MediaUrl=media.url("/a.png"))
        done = platform.wait_terminal(account, [*sids, mms["sid"]], timeout_s=60)
        assert {message["status"] for message in done.values()} == {"delivered"}
        # then: Germany over the abroad SMSC, the rest over home, the MMS through the gateway
        assert set(abroad.accepted()) == set(german)
        assert set(home_accepted(platform)) == set(american)
        went = connections(platform, [*sids, mms["sid"]])
        assert went[mms["sid"]] == {"gateway"}
        assert {name for sid in sids[:5] for name in went[sid]} == {"abroad"}
        assert {name for sid in sids[5:] for name in went[sid]} == {"home"}


def test_an_smsc_killed_mid_run_fails_over_and_its_traffic_comes_back(tmp_path: Path) -> None:
    with routed_platform(tmp_path) as (platform, abroad):
        account = platform.new_account()
        first = [platform.send(account, random_number(), f"a{i}")["sid"] for i in range(40)]
        wait_for(lambda: len(abroad.accepted()) >= 10)
        # when: the abroad SMSC dies mid-run; more German traffic keeps coming
        abroad.kill()
        during = [platform.send(account, random_number(), f"b{i}")["sid"] for i in range(40)]
        done = platform.wait_terminal(account, during, timeout_s=60)
        # then: what came during the outage went over home, and was delivered
        assert {message["status"] for message in done.values()} == {"delivered"}
        went = connections(platform, during)
        assert {name for names in went.values() for name in names} == {"home"}
        # when: it comes back, German traffic goes to it again
        abroad.start()
        after: list[str] = []

        def back() -> bool:  # the carrier worker rebinds within its reconnect backoff
            after.append(platform.send(account, random_number(), "c")["sid"])
            platform.wait_terminal(account, after[-1:], timeout_s=30)
            return connections(platform, after[-1:])[after[-1]] == {"abroad"}

        wait_for(back, timeout_s=60)
        # and: everything of the first wave was delivered, each message at one SMSC once,
        # save a window resent after the kill (those left unanswered: counted as unknown)
        finished = platform.wait_terminal(account, first, timeout_s=60)
        assert {message["status"] for message in finished.values()} == {"delivered"}
        home, away = home_accepted(platform), abroad.accepted()
        twice = home & away
        assert len(twice) <= 10, twice  # at most the window in flight when it died
