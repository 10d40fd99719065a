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
    assert senders == ["dispatcher/publish.py"]
