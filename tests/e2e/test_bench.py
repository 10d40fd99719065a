"""The bench command of docs/performance.md works as written: on the default store, with callbacks."""

import json
import os
import re
import socket
import subprocess
from pathlib import Path

from dispatcher.bench.load import body
from tests.conftest import BASE_DATABASE_URL, BASE_REDIS_URL
from tests.processes import free_port
from workers.segmentation import segment

BENCH_TIMEOUT_S = 240


PORT = "<a free port>"  # in ``bench``'s arguments: a port picked free for each try


def bench(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``mycpaas bench --spawn`` on free ports. A port picked free can be taken by another
    process before the bench binds it (the bench then refuses at once): tried again, thrice."""
    environment = {**os.environ, "MYCPAAS_BROKER_URL": BASE_REDIS_URL,
                   "MYCPAAS_REDIS_URL": BASE_REDIS_URL}  # fmt: skip
    environment.pop("MYCPAAS_DATABASE_URL", None)  # the default: a SQLite file store
    environment.update(env)
    for _ in range(3):
        api = str(free_port())
        given = [str(free_port()) if arg == PORT else arg for arg in args]
        # The bench puts the simulator at the API's port + 100 and its SMSC at + 101.
        derived = {str(int(api) + 100), str(int(api) + 101)}
        picked = {api, *derived,
                  *(port for port, arg in zip(given, args, strict=True) if arg == PORT)}  # fmt: skip
        result = subprocess.run(
            ["mycpaas", "bench", "--spawn", "--url", f"http://127.0.0.1:{api}", *given],
            cwd=tmp_path, env=environment, capture_output=True, text=True,
            timeout=BENCH_TIMEOUT_S,
        )  # fmt: skip
        if not any(f"port {port} is in use" in result.stderr for port in picked):
            break
    return result


def test_bench_spawns_on_a_scratch_store_of_its_own_and_counts_every_callback(
    tmp_path: Path,
) -> None:
    # when: the bench runs on a fresh checkout's default settings, never migrated
    result = bench(tmp_path, "-n", "30", "-c", "4", "--callbacks", PORT)
    # then
    assert result.returncode == 0, result.stderr[-2000:]
    [line] = [line for line in result.stdout.splitlines() if line.startswith('{"messages"')]
    report = json.loads(line)
    assert report["statuses"] == {"delivered": 30}
    assert report["callbacks_owed"] == report["callbacks_received"] == 90
    assert report["callbacks_by_status"] == {"sending": 30, "sent": 30, "delivered": 30}
    assert len(report["reference_ms"]) == 2
    assert all(ms > 0 for ms in report["reference_ms"])
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_bench_runs_beside_a_store_already_full_of_settled_messages(tmp_path: Path) -> None:
    # when: the scratch store (beside the test Postgres) holds 2,000 settled messages first
    result = bench(tmp_path, "-n", "20", "-c", "4", "--stored", "2000",
                   MYCPAAS_DATABASE_URL=BASE_DATABASE_URL)  # fmt: skip
    # then: they were there, and the run counted its own messages alone
    assert result.returncode == 0, result.stderr[-2000:]
    assert "stored: 2,000 messages in" in result.stdout
    [line] = [line for line in result.stdout.splitlines() if line.startswith('{"messages"')]
    assert json.loads(line)["statuses"] == {"delivered": 20}
    # and what the run wrote, per message: a message is inserted and moves four times
    [writes] = [line for line in result.stdout.splitlines() if line.startswith("writes")]
    per_table = dict(re.findall(r"(\w+) (\d+\.\d+)", writes.split(":", 1)[1]))
    assert float(per_table["messages"]) >= 5.0
    assert {"message_events", "segments", "receipts"} <= per_table.keys()


def test_stored_messages_need_postgres_and_a_scratch_store(tmp_path: Path) -> None:
    result = bench(tmp_path, "-n", "1", "--stored", "10")
    assert result.returncode == 1
    assert "--stored needs a Postgres store" in result.stderr
    # without --spawn there is no scratch store to fill: refused before anything is sent
    command = ["mycpaas", "bench", "-n", "1", "--stored", "10", "--url", "http://127.0.0.1:9"]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "add --spawn" in refused.stderr


def test_bench_without_a_broker_says_so_in_one_line(tmp_path: Path) -> None:
    result = bench(tmp_path, "-n", "1", MYCPAAS_BROKER_URL="redis://127.0.0.1:1/0")
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()
    assert len(error) == 1
    assert "MYCPAAS_BROKER_URL" in error[0]


def test_the_bench_body_has_as_many_parts_as_asked() -> None:
    assert [segment(body(7, parts)).num_segments for parts in (1, 2, 3, 5)] == [1, 2, 3, 5]
    assert segment(body(7, 3)).encoding.value == "GSM-7"


def test_a_port_already_listened_on_stops_the_bench_before_it_starts(tmp_path: Path) -> None:
    # given: something (another bench's sink, say) listens on the callback port
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # when
        result = bench(tmp_path, "-n", "1", "--callbacks", str(port))
    # then: refused in one line, rather than counting what that other receiver got
    assert result.returncode == 1
    assert f"port {port} is in use" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_bench_inbound_counts_each_mo_once_from_the_smsc_to_the_webhook(tmp_path: Path) -> None:
    # when: handsets text the platform over SMPP on the default store (SQLite: no row locks,
    # so two joins may race for a part), each message posted to the sink
    result = bench(tmp_path, "--carrier", "smpp", "--inbound", "-n", "300", "-c", "8",
                   "--callbacks", PORT)  # fmt: skip
    # then: every MO is one inbound message and one webhook, none twice
    assert result.returncode == 0, result.stderr[-2000:]
    [line] = [line for line in result.stdout.splitlines() if line.startswith('{"mo"')]
    report = json.loads(line)
    assert (report["inbound_messages"], report["webhooks"]) == (300, 300)
    assert report["deliver_sm_sent"] == 300
    assert report["end_to_end_per_s"] > 0
