"""The monitoring kit is real: the alert rules load and their unit tests pass under
Prometheus's own ``promtool``, the dashboard is valid JSON whose every query names a metric the
platform exports, and compose's monitoring profile mounts what exists. (That a running platform
exports each of them is checked on the compose wiring, tests/e2e/test_compose_as_written.py.)"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from workers.metrics import FAMILIES

ROOT = Path(__file__).parent.parent
KIT = ROOT / "monitoring"
GAUGES = {"mycpaas_queue_depth", "mycpaas_queue_oldest_age_seconds", "mycpaas_queue_scheduled",
          "mycpaas_queue_in_flight", "mycpaas_queue_rate_per_second", "mycpaas_messages",
          "mycpaas_broker_queue_messages", "mycpaas_carrier_credentials_refused",
          "mycpaas_carrier_connected", "mycpaas_workers", "mycpaas_oldest_message_age_seconds"}  # fmt: skip


def named_metrics() -> set[str]:
    """Every metric a rule or a dashboard panel queries, as its family is named."""
    exprs = [rule["expr"] for group in yaml.safe_load((KIT / "alerts.yml").read_text())["groups"]
             for rule in group["rules"]]  # fmt: skip
    dashboard = json.loads((KIT / "grafana" / "dashboards" / "mycpaas.json").read_text())
    exprs += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    names = set(re.findall(r"mycpaas_[a-z_]+", " ".join(exprs)))
    return {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in names}


def test_every_metric_the_kit_queries_is_one_the_platform_defines() -> None:
    assert named_metrics() <= set(FAMILIES) | GAUGES, named_metrics() - set(FAMILIES) - GAUGES


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing (Debian's prometheus package): .ci/run installs it")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return found


def test_the_scrape_config_the_rules_and_their_unit_tests_pass_promtool() -> None:
    tool = promtool()
    config = subprocess.run([tool, "check", "config", "prometheus.yml"], cwd=KIT,
                            capture_output=True, text=True)  # fmt: skip
    assert config.returncode == 0, config.stdout + config.stderr
    checked = subprocess.run([tool, "check", "rules", "alerts.yml"], cwd=KIT,
                             capture_output=True, text=True)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([tool, "test", "rules", "alerts.test.yml"], cwd=KIT,
                            capture_output=True, text=True)  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_compose_monitoring_profile_mounts_files_that_exist() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            assert (ROOT / source).exists(), (name, source)
    scrape = yaml.safe_load((KIT / "prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["static_configs"][0]["targets"] == ["api:8000"]
