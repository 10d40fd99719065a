"""compose.yaml and the README's commands are real: every command parses as a ``mycpaas``
command, every variable is a setting with a valid value, every queue has its worker service,
and docs/operate.md lists every setting."""

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from dispatcher.cli.main import main
from schemas.settings import Settings
from workers.app import QUEUES

ROOT = Path(__file__).parent.parent
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = {name: s for name, s in SERVICES.items() if s.get("image") == "mycpaas-dispatch"}


def parse(argv: list[str]) -> list[str]:
    """Parse a ``mycpaas`` command line as the CLI would, without running it; its path."""
    assert argv[0] == "mycpaas", argv
    command: click.Command = main
    context = command.make_context("mycpaas", argv[1:], resilient_parsing=False)
    path = []
    while isinstance(command, click.Group):
        name, sub, rest = command.resolve_command(
            context, [*context._protected_args, *context.args]
        )
        assert sub is not None
        assert name is not None
        path.append(name)
        context = sub.make_context(name, rest, parent=context)
        command = sub
    return path


def readme_commands() -> list[list[str]]:
    """Lines of the README's shell blocks that run ``mycpaas`` (with or without ``uv run``)."""
    blocks = re.findall(r"```(?:sh|bash|shell)\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    commands = []
    for line in "\n".join(blocks).splitlines():
        words = shlex.split(line.split(" #")[0].replace("\\", ""))
        if words[:2] == ["uv", "run"]:
            words = words[2:]
        if words[:1] == ["mycpaas"]:
            commands.append(words)
    return commands


@pytest.mark.parametrize("service", sorted(APP_SERVICES))
def test_every_compose_command_is_a_mycpaas_command(service: str) -> None:
    assert parse(APP_SERVICES[service]["command"])


def test_every_queue_has_a_worker_service_and_no_worker_names_an_unknown_queue() -> None:
    served = set()
    for service in APP_SERVICES.values():
        argv = service["command"]
        if argv[1] == "worker":
            queues = argv[argv.index("-Q") + 1].split(",")
            assert set(queues) <= set(QUEUES), queues
            served.update(queues)
    assert served == set(QUEUES)


@pytest.mark.parametrize("service", sorted(APP_SERVICES))
def test_every_compose_variable_is_a_setting_with_a_valid_value(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = APP_SERVICES[service]["environment"]
    known = {f"MYCPAAS_{name.upper()}" for name in Settings.model_fields}
    assert set(environment) <= known, set(environment) - known
    for name, value in environment.items():
        monkeypatch.setenv(name, str(value))
    settings = Settings()  # raises on a value of the wrong type
    assert settings.database_url.startswith("postgresql://")
    assert settings.broker_url.startswith("redis://redis:")


def test_services_the_app_depends_on_exist_and_are_checked() -> None:
    for name, service in APP_SERVICES.items():
        for needed in service.get("depends_on", {}):
            assert needed in SERVICES, (name, needed)
    assert "healthcheck" in SERVICES["postgres"]
    assert "healthcheck" in SERVICES["redis"]
    assert "healthcheck" in SERVICES["api"]


def test_the_readme_runs_the_commands_compose_runs() -> None:
    readme = readme_commands()
    assert readme, "the README shows no mycpaas command"
    for argv in readme:
        parse(argv)
    for service in APP_SERVICES.values():
        argv = service["command"]
        assert any(parse(line)[:1] == parse(argv)[:1] for line in readme), argv


def settings_table() -> str:
    """The rows of the settings table in docs/operate.md (the section ``## Settings``)."""
    page = (ROOT / "docs" / "operate.md").read_text()
    section = page.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.startswith("| `MYCPAAS_"))


def test_the_operate_page_lists_every_setting() -> None:
    table = settings_table()
    missing = [f"MYCPAAS_{name.upper()}" for name in Settings.model_fields
               if f"| `MYCPAAS_{name.upper()}` |" not in table]  # fmt: skip
    assert missing == []
