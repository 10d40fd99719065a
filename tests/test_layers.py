"""Imports go one way: schemas <- workers <- dispatcher."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"schemas": ("workers", "dispatcher"), "workers": ("dispatcher",)}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_upward(package: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / package).rglob("*.py")
        for name in imported_packages(path) & set(FORBIDDEN[package])
    ]
    assert offenders == []


def test_only_publish_module_sends_tasks() -> None:
    senders = [
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "dispatcher").rglob("*.py")
        if "send_task(" in path.read_text() or "wakeup.wake(" in path.read_text()
    ]
    assert senders == ["dispatcher/intake/publish.py"]


def test_each_stage_is_one_module_named_after_it() -> None:
    # given: the stages the workers run (each a task on its queue) and the sweep beat starts
    from workers.app import STAGE_TASKS

    stages = {*STAGE_TASKS, "sweep"}
    # then: workers/stages/ holds exactly one module per stage
    modules = {path.stem for path in (ROOT / "workers" / "stages").glob("*.py")} - {"__init__"}
    assert modules == stages


def test_no_module_of_the_platform_outgrows_a_reading() -> None:
    # A module past this is two concepts: split it along them (see CONTRIBUTING.md).
    limit = 400
    long = {
        path.relative_to(ROOT).as_posix(): length
        for package in ("dispatcher", "workers", "schemas", "scripts", "tests")
        for path in (ROOT / package).rglob("*.py")
        if (length := len(path.read_text().splitlines())) > limit
    }
    assert long == {}
