"""A carrier worker woken while messages keep coming waits a moment and hands them over
together (workers/pipeline/gather.py): at a steady rate it claims several per hand-off, and a
worker killed while it waits loses nothing and sends nothing twice."""

import os
import signal
import threading
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import SMS_ONLY, Platform, launch
from tests.processes import Account, random_number


def paced(
    platform: Platform, account: Account, clients: int, each: int, every_s: float
) -> list[str]:
    """Creates paced evenly: ``clients`` clients, one create every ``every_s`` each, staggered
    so that no two go out together (as a shop's one-time codes come)."""
    sids: list[str] = []
    start = time.monotonic() + 0.2

    def client(offset_s: float) -> None:
        with httpx.Client(timeout=10) as http:
            for n in range(each):
                time.sleep(max(0.0, start + offset_s + n * every_s - time.monotonic()))
                response = http.post(
                    f"{platform.api}/v1/Accounts/{account.sid}/Messages", auth=account.auth,
                    data={"To": random_number(), "From": account.number, "Body": f"code {n}"},
                )  # fmt: skip
                assert response.status_code == 201, response.text
                sids.append(response.json()["sid"])

    threads = [threading.Thread(target=client, args=(n * every_s / clients,))
               for n in range(clients)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sids


def test_at_a_steady_rate_messages_are_handed_over_together(database: str, tmp_path: Path) -> None:
    with launch(tmp_path, workers=SMS_ONLY, MYCPAAS_CARRIER_GATHER_S="0.2") as platform:
        account = platform.new_account()
        # when creates come evenly at 80 a second for two seconds
        sids = paced(platform, account, clients=4, each=40, every_s=0.05)
        done = platform.wait_terminal(account, sids)
        # then every one is delivered, once
        assert {message["status"] for message in done.values()} == {"delivered"}
        assert set(platform.counters().values()) == {1}
        # and the carrier worker took several per hand-off (a hand-off gives its messages one
        # date_sent), none of them waiting much longer than its window
        created, sent = platform.column(sids, "date_created"), platform.column(sids, "date_sent")
    hand_offs = set(sent.values())
    assert len(hand_offs) <= len(sids) / 5, f"{len(hand_offs)} hand-offs for {len(sids)} messages"
    assert max((sent[sid] - created[sid]).total_seconds() for sid in sids) < 1.5


def test_a_carrier_worker_killed_while_it_gathers_loses_nothing(
    database: str, tmp_path: Path
) -> None:
    workers = tuple(queue for queue in SMS_ONLY if queue != "carrier")
    with launch(tmp_path, workers=workers) as platform:
        account = platform.new_account()
        victim = platform.start_worker("carrier", "victim", MYCPAAS_CARRIER_GATHER_S="1")
        # given a worker that handed a message over within the last second
        first = platform.send(account, random_number(), "first")["sid"]
        platform.wait_terminal(account, [first])
        # when the next one wakes it, it waits its window of a second for more; killed meanwhile
        second = platform.send(account, random_number(), "second")["sid"]
        time.sleep(0.3)
        assert platform.stages([second]) == {"carrier": 1}, "not waiting: handed over already"
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        # then another worker hands it over (the sweeper wakes the stage), once
        platform.start_worker("carrier", "survivor")
        done = platform.wait_terminal(account, [second])
        assert done[second]["status"] == "delivered"
        assert platform.counters(second) == {f"{second}-1": 1}
