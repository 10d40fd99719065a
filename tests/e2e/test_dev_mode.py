"""The README's run command, ``mycpaas dev``, runs the whole platform with no servers."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.processes import free_port, wait_http


def test_dev_mode_delivers_a_message_and_stops_cleanly(tmp_path: Path) -> None:
    # given: no Postgres, no Redis: only the embedded store and broker
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYCPAAS_")}
    output = tmp_path / "dev.out"
    with output.open("w") as sink:
        proc = subprocess.Popen(
            ["mycpaas", "dev", "--port", str(port), "--data-dir", str(tmp_path / "data")],
            env=env, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        banner = ""
        deadline = time.monotonic() + 30
        while "Ctrl-C" not in banner:
            assert proc.poll() is None, "mycpaas dev exited before it was up"
            assert time.monotonic() < deadline, "mycpaas dev printed no banner"
            time.sleep(0.1)
            banner = output.read_text()
        sid = re.search(r"AccountSid (AC\w+)", banner).group(1)  # type: ignore[union-attr]
        token = re.search(r"AuthToken  (\w+)", banner).group(1)  # type: ignore[union-attr]
        api = f"http://127.0.0.1:{port}"
        wait_http(f"{api}/healthz")
        # when
        created = httpx.post(
            f"{api}/v1/Accounts/{sid}/Messages",
            data={"To": "+14155552671", "From": "+15005550006", "Body": "hello dev"},
            auth=(sid, token),
        ).json()
        deadline = time.monotonic() + 30
        status = created["status"]
        while status != "delivered" and time.monotonic() < deadline:
            time.sleep(0.2)
            status = httpx.get(f"{api}{created['uri']}", auth=(sid, token)).json()["status"]
        # then
        assert status == "delivered"
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's process group
        assert proc.wait(20) is not None
    deadline = time.monotonic() + 5  # a child's own children may take a moment to be reaped
    while True:
        leftovers = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True)
        if not leftovers.stdout.split() or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert leftovers.stdout.split() == [], "children of mycpaas dev outlived it"
