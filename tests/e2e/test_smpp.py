"""The platform on SMPP: API, workers and the simulator's SMSC as real processes.

Outcomes end to end, a receipt that beats its ``submit_sm_resp``, a receipt for an id nobody
sent, an SMSC killed and restarted mid-run, a carrier worker killed mid-window, and a warm
shutdown with the window full. The SMSC's counters (``accepted`` per destination, UDH
reference and part) prove what reached the handset and how often; every second copy must be
matched by an unknown outcome the platform counted.
"""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlmodel import Session

from schemas.db import make_engine
from schemas.models import metric_counters_table, receipts_table
from tests.e2e.conftest import Platform, launch
from tests.processes import free_port, random_number, start, stop, wait_http
from tests.smpp_wire import wire_check


@contextlib.contextmanager
def smpp_platform(workdir: Path, *sim_args: str, workers: tuple[str, ...] = (
        "segment", "carrier", "maintenance"), **env: str) -> Iterator[Platform]:  # fmt: skip
    port = free_port()
    with wire_check(port) as wire:  # every PDU either way decoded by Jasmin's codec
        settings = {"MYCPAAS_CARRIER": "smpp", "MYCPAAS_SMPP_HOST": "127.0.0.1",
                    "MYCPAAS_SMPP_PORT": str(wire.port), "MYCPAAS_SMPP_SYSTEM_ID": "mycpaas",
                    "MYCPAAS_SMPP_PASSWORD": "secret", **env}  # fmt: skip
        arguments = ("--smpp-port", str(port), "--smpp-password", "secret",
                     "--smpp-receipt-resend-s", "1", *sim_args)  # fmt: skip
        with launch(workdir, workers=workers, sim_args=arguments, **settings) as platform:
            yield platform


def smsc(platform: Platform, prefix: str = "") -> dict[str, Any]:
    answer = httpx.get(f"{platform.sim}/counters", params={"prefix": prefix}, timeout=5)
    counters: dict[str, Any] = answer.json()["smpp"]
    return counters


def unknown_outcomes(platform: Platform) -> dict[str, float]:
    """What the workers flushed of ``mycpaas_smpp_unknown_outcomes``, by label set."""
    engine = make_engine(platform.env["MYCPAAS_DATABASE_URL"])
    try:
        with Session(engine) as session:
            t = metric_counters_table.c
            rows = session.execute(select(t.labels, t.value).where(
                t.name == "mycpaas_smpp_unknown_outcomes"))  # fmt: skip
            return {labels: value for labels, value in rows}
    finally:
        engine.dispose()


def wait_for(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def kill_and_replace(platform: Platform, victim: subprocess.Popen) -> None:
    """``kill -9`` of a carrier worker, then another in its place (``survivor``)."""
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    platform.start_worker("carrier", "survivor")


def duplicates(accepted: dict[str, int]) -> int:
    return sum(count - 1 for count in accepted.values())


def test_every_outcome_over_smpp_and_a_receipt_nobody_asked_for(tmp_path: Path) -> None:
    with smpp_platform(tmp_path) as platform:
        # given: the carrier worker bound as it started, before any hand-off
        wait_for(lambda: smsc(platform).get("bound") == 1)
        account = platform.new_account()
        expected = {
            "+15005550001": ("failed", 30003), "+15005550002": ("failed", 30005),
            "+15005550003": ("failed", 30006), "+15005550004": ("failed", 30007),
            "+15005550005": ("failed", 30008), "+15005550007": ("delivered", None),
            "+15005550008": ("delivered", None), "+15005550010": ("delivered", None),
            "+15005550011": ("failed", 21211), "+15005550012": ("failed", 30008),
        }  # fmt: skip
        sids = {to: platform.send(account, to)["sid"] for to in expected}
        long_to, ucs2_to = random_number(), random_number()
        long = platform.send(account, long_to, "x" * 400)  # three GSM-7 parts
        ucs2 = platform.send(account, ucs2_to, "Привет, мир! 😀")
        silent = platform.send(account, "+15005550009")["sid"]
        # when
        done = platform.wait_terminal(account, [*sids.values(), long["sid"], ucs2["sid"]], 60)
        counters = smsc(platform)
        silent_status = platform.fetch(account, silent)["status"]
        # and when a receipt comes for an id nobody sent
        httpx.post(f"{platform.sim}/smpp/receipt", json={"id": "00CAFE0042", "stat": "DELIVRD"})
        wait_for(lambda: smsc(platform).get("receipts_acked", 0) == counters["receipts_acked"] + 1)
        stored = inbox(platform, "cafe0042")
        later = platform.send(account, random_number())["sid"]
        after = platform.wait_terminal(account, [later])[later]["status"]
    # then
    got = {to: (done[sid]["status"], done[sid]["error_code"]) for to, sid in sids.items()}
    assert got == expected
    assert "ESME_RSUBMITFAIL" in done[sids["+15005550012"]]["error_message"]
    assert (done[long["sid"]]["status"], done[long["sid"]]["num_segments"]) == ("delivered", 3)
    assert done[ucs2["sid"]]["status"] == "delivered"
    parts = {key: n for key, n in counters["accepted"].items() if key.startswith(long_to)}
    assert sorted(parts.values()) == [1, 1, 1]
    assert sorted(key.rsplit("/", 1)[1] for key in parts) == ["1", "2", "3"]
    assert silent_status == "sent"
    assert duplicates(counters["accepted"]) == 0
    # the stray receipt was stored (so acknowledged), is never applied, and harmed nothing
    assert stored == [("delivered", None)]
    assert after == "delivered"


def inbox(platform: Platform, carrier_id: str) -> list[tuple[str, object]]:
    engine = make_engine(platform.env["MYCPAAS_DATABASE_URL"])
    try:
        with Session(engine) as session:
            r = receipts_table.c
            rows = session.execute(
                select(r.status, r.applied_at).where(r.carrier_id == carrier_id)
            ).all()
            return [(status, applied_at) for status, applied_at in rows]
    finally:
        engine.dispose()


def test_the_smsc_killed_and_restarted_mid_run_loses_nothing(tmp_path: Path) -> None:
    # given an SMSC that keeps a journal (a real one keeps its store) and answers in 300 ms
    journal = tmp_path / "smsc.journal"
    with smpp_platform(tmp_path, "--journal", str(journal), latency_ms=300,
                       workers=("segment", "maintenance")) as platform:  # fmt: skip
        account = platform.new_account()
        sids = [platform.send(account, random_number(), f"k{i}")["sid"] for i in range(60)]
        wait_for(lambda: platform.stages(sids)["carrier"] == len(sids))
        platform.start_worker("carrier")  # one batch of 60: about 1.8 s through the window
        wait_for(lambda: len(smsc(platform)["accepted"]) >= 10)
        # when it dies mid-window and comes back a second later
        platform.procs["sim"].kill()
        platform.procs["sim"].wait()
        sids += [platform.send(account, random_number(), f"l{i}")["sid"] for i in range(20)]
        time.sleep(1)
        platform.procs["sim"] = start(platform.sim_command, platform.env)
        wait_http(f"{platform.sim}/healthz", proc=platform.procs["sim"])
        done = platform.wait_terminal(account, sids, timeout_s=90)
        accepted = smsc(platform)["accepted"]
        stop(platform.procs["carrier"])  # a warm shutdown flushes its counters
        counted = unknown_outcomes(platform)
    # then: all delivered; each at the handset once, or more only where a resend was counted
    assert {message["status"] for message in done.values()} == {"delivered"}
    assert len(accepted) == len(sids)
    assert sum(counted.values()) >= 1  # the window in flight at the kill went unanswered
    assert duplicates(accepted) <= sum(counted.values()), (accepted, counted)


def test_a_carrier_worker_killed_mid_window_resends_only_what_it_counts(tmp_path: Path) -> None:
    # given a slow SMSC and a carrier worker with a full window
    with smpp_platform(tmp_path, latency_ms=1500,
                       workers=("segment", "maintenance")) as platform:  # fmt: skip
        account = platform.new_account()
        victim = platform.start_worker("carrier", "victim")
        sids = [platform.send(account, random_number(), f"v{i}")["sid"] for i in range(30)]
        wait_for(lambda: bool(smsc(platform)["submits"]))
        # when it is killed before any answer is recorded
        kill_and_replace(platform, victim)
        done = platform.wait_terminal(account, sids, timeout_s=90)
        accepted = smsc(platform)["accepted"]
        stop(platform.procs["survivor"])
        counted = unknown_outcomes(platform)
    # then: the sweeper handed the lost segments back; the policy resent them, counted
    assert {message["status"] for message in done.values()} == {"delivered"}
    assert len(accepted) == len(sids)
    assert counted.get("cause=lost_worker,policy=resend", 0) >= duplicates(accepted)
    assert counted.get("cause=lost_worker,policy=resend", 0) >= 1


def test_a_kill_under_load_duplicates_at_most_a_window(tmp_path: Path) -> None:
    # given 400 messages waiting for the carrier, a third of them in three parts, an SMSC that
    # answers in 100 ms, and a carrier worker (window 10, four task threads) taking them on
    with smpp_platform(tmp_path, latency_ms=100,
                       workers=("segment", "maintenance")) as platform:  # fmt: skip
        account = platform.new_account(sps=10_000)
        long_body = "x" * 400  # three GSM-7 parts
        sids = [platform.send(account, random_number(), long_body if i % 3 == 0 else f"k{i}")["sid"]
                for i in range(400)]  # fmt: skip
        wait_for(lambda: platform.stages(sids)["carrier"] == len(sids))
        victim = platform.start_worker("carrier", "victim")
        # when it is killed with -9 in the middle of its first batch
        wait_for(lambda: sum(smsc(platform)["accepted"].values()) >= 60)
        kill_and_replace(platform, victim)
        done = platform.wait_terminal(account, sids, timeout_s=120)
        accepted = smsc(platform)["accepted"]
        stop(platform.procs["survivor"])
    # then: everything delivered, and at most a window's worth reached a handset twice (the
    # answers the worker held unrecorded); before, the answers of a whole batch were held
    assert {message["status"] for message in done.values()} == {"delivered"}
    assert len(accepted) == 400 + 2 * 134  # every part of every message
    assert duplicates(accepted) <= 10, duplicates(accepted)


def test_warm_shutdown_with_a_full_window_unbinds_after_the_window_drains(tmp_path: Path) -> None:
    # given a window of 10 kept full by an SMSC that answers in 300 ms
    with smpp_platform(tmp_path, latency_ms=300,
                       workers=("segment", "maintenance")) as platform:  # fmt: skip
        account = platform.new_account()
        sids = [platform.send(account, random_number(), f"w{i}")["sid"] for i in range(150)]
        wait_for(lambda: platform.stages(sids)["carrier"] == len(sids))
        leaving = platform.start_worker("carrier", "leaving", concurrency=1)
        wait_for(lambda: len(smsc(platform)["submits"]) >= 10)
        # when it is asked to stop
        os.killpg(leaving.pid, signal.SIGTERM)
        leaving.wait(30)
        counters = smsc(platform)
        stages = platform.stages(sids)
        # then: it recorded every answer of its window, unbound and left the rest
        assert leaving.returncode == 0
        assert counters["unbinds"] == 1
        assert stages["sending"] == 0, stages
        # when another worker takes over
        platform.start_worker("carrier", "successor")
        done = platform.wait_terminal(account, sids, timeout_s=90)
        accepted = smsc(platform)["accepted"]
        stop(platform.procs["successor"])
        counted = unknown_outcomes(platform)
    assert {message["status"] for message in done.values()} == {"delivered"}
    assert sorted(accepted.values()) == [1] * len(sids)
    assert counted == {}
