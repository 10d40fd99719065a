"""The README's run command, ``mycpaas dev``, runs the whole platform with no servers."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from dispatcher.cli.dev import dev_environment
from tests.media_server import running_media_server
from tests.processes import free_port, wait_http


def send(api: str, sid: str, token: str, **params: str) -> dict:
    params = {"To": "+14155552671", "From": "+15005550006", **params}
    response = httpx.post(f"{api}/v1/Accounts/{sid}/Messages", data=params, auth=(sid, token))
    assert response.status_code == 201, response.text
    return response.json()


def wait_status(api: str, sid: str, token: str, message: dict, status: str) -> str:
    deadline = time.monotonic() + 30
    current = message["status"]
    while current != status and time.monotonic() < deadline:
        time.sleep(0.2)
        current = httpx.get(f"{api}{message['uri']}", auth=(sid, token)).json()["status"]
    return current


def test_dev_mode_delivers_sms_and_mms_with_callbacks_in_its_inbox_and_stops_cleanly(
    tmp_path: Path,
) -> None:
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
        deadline = time.monotonic() + 90  # every part answers first (slow on a busy machine)
        while "Ctrl-C" not in banner:
            assert proc.poll() is None, "mycpaas dev exited before it was up"
            assert time.monotonic() < deadline, "mycpaas dev printed no banner"
            time.sleep(0.1)
            banner = output.read_text()
        sid = re.search(r"AccountSid (AC\w+)", banner).group(1)  # type: ignore[union-attr]
        token = re.search(r"AuthToken  (\w+)", banner).group(1)  # type: ignore[union-attr]
        api = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{api}/readyz").status_code == 200  # the banner waits for every part
        inbox = re.search(r"Inbox      (\S+)", banner).group(1)  # type: ignore[union-attr]
        with running_media_server() as media:
            # when: an SMS and an MMS, each with the inbox as its status callback
            sms = send(api, sid, token, Body="hello dev", StatusCallback=inbox)
            mms = send(api, sid, token, Body="look", MediaUrl=media.url("/a.png"),
                       StatusCallback=inbox)  # fmt: skip
            # then: both are delivered, and the inbox got every status, signed
            for message in (sms, mms):
                assert wait_status(api, sid, token, message, "delivered") == "delivered"
            expected = {(m["sid"], s) for m in (sms, mms) for s in ("sending", "sent", "delivered")}
            got: set[tuple[str, str]] = set()
            deadline = time.monotonic() + 30
            while not expected <= got and time.monotonic() < deadline:
                time.sleep(0.2)
                got = {(c["params"]["MessageSid"], c["params"]["MessageStatus"])
                       for c in httpx.get(inbox).json() if c["signed"]}  # fmt: skip
            assert expected <= got
            printed = output.read_text()
            assert f"callback {mms['sid']} delivered  (signature ok)" in printed
            deadline = time.monotonic() + 5  # the feed reads the record twice a second
            while f"message  {sms['sid']} delivered" not in printed:
                assert time.monotonic() < deadline, printed
                time.sleep(0.2)
                printed = output.read_text()
            # the console shows the banner and one line per event; the parts log to files
            assert "SecurityWarning" not in printed
            assert "celery@" not in printed
            assert "HTTP Request" not in printed
            assert " ready." in (tmp_path / "data" / "logs" / "worker.log").read_text()
            media_list = httpx.get(f"{api}{mms['uri']}/Media", auth=(sid, token)).json()
            assert [m["content_type"] for m in media_list["media"]] == ["image/png"]
            # and: the console the banner names takes the login it prints
            while "operator console" not in printed:
                time.sleep(0.2)
                printed = output.read_text()
            console, password = re.search(
                r"console: (\S+)  \(log in as dev, password (\S+)\)", printed
            ).groups()  # type: ignore[union-attr]
            wait_http(f"{console}/login")
            with httpx.Client(follow_redirects=True) as browser:
                logged_in = browser.post(f"{console}/login",
                                         data={"name": "dev", "password": password})  # fmt: skip
            assert logged_in.status_code == 200
            assert "Overview" in logged_in.text
            # and: texting the dev number as the banner shows reaches its webhook, the inbox
            mo_url, mo_body = re.search(r"curl (\S+/mo) .* -d '(.+)'", banner).groups()  # type: ignore[union-attr]
            assert (
                httpx.post(
                    mo_url, content=mo_body, headers={"content-type": "application/json"}
                ).status_code
                == 200
            )
            deadline = time.monotonic() + 20
            while "received from +14155552671: 'hi'  (signature ok)" not in printed:
                assert time.monotonic() < deadline, printed
                time.sleep(0.2)
                printed = output.read_text()
        # and: the queues are visible on the embedded store too
        dev_env = {**env, **dev_environment(tmp_path / "data", port)}
        queues = subprocess.run(["mycpaas", "queues"], env=dev_env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=30)  # fmt: skip
        assert queues.returncode == 0, queues.stderr
        assert "delivered 2" in queues.stdout
        metrics = httpx.get(f"{api}/metrics").text
        families = {f.name for f in text_string_to_metric_families(metrics)}
        assert {"mycpaas_queue_depth", "mycpaas_messages"} <= families
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
