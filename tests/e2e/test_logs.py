"""``MYCPAAS_LOG_FORMAT=json``: one JSON object per line, and the message sid on pipeline lines."""

import json
from pathlib import Path

from tests.e2e.conftest import launch
from tests.processes import random_number

QUEUES = ("segment", "carrier", "callbacks", "maintenance")


def test_json_logs_carry_the_sid_on_every_pipeline_line(tmp_path: Path) -> None:
    # given: workers logging JSON to files
    with launch(
        tmp_path, workers=(), MYCPAAS_LOG_FORMAT="json", MYCPAAS_LOG_LEVEL="DEBUG"
    ) as platform:
        logs = {queue: (tmp_path / f"{queue}.log").open("wb") for queue in QUEUES}
        for queue, output in logs.items():
            platform.start_worker(queue, output=output)
        account = platform.new_account()
        # when: a message is delivered and another refused by the carrier
        sids = [platform.send(account, random_number(), "hi")["sid"],
                platform.send(account, "+15005550004", "no")["sid"]]  # fmt: skip
        platform.wait_terminal(account, sids)
        platform.stop_all()
        for output in logs.values():
            output.close()

    # then: every line the worker wrote through logging is JSON; pipeline lines name messages
    entries = []
    for queue in QUEUES:
        for line in (tmp_path / f"{queue}.log").read_text().splitlines():
            if line.startswith("{"):
                entries.append(json.loads(line))
    pipeline = [e for e in entries if e["logger"].startswith("workers.")]
    assert pipeline
    assert all("sid" in e or "sids" in e for e in pipeline), [
        e for e in pipeline if "sid" not in e and "sids" not in e
    ]

    def history(sid: str) -> list[tuple[str, int | None]]:
        return [(e["status"], e.get("error_code")) for e in pipeline
                if sid in (e.get("sid"), *e.get("sids", ())) and "status" in e]  # fmt: skip

    assert history(sids[0]) == [("sending", None), ("sent", None), ("delivered", None)]
    assert history(sids[1])[-1] == ("failed", 30007)
    assert {e["level"] for e in entries} <= {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
