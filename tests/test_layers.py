"""Imports go one way: schemas <- workers <- dispatcher; inside dispatcher, intake <- api, and
neither the API nor intake reaches the command line or the benchmark."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"schemas": ("workers", "dispatcher"), "workers": ("dispatcher",)}
# dispatcher's packages, and the ones each must never reach, even through other modules
UNREACHABLE = {
    "dispatcher.api": ("dispatcher.bench", "dispatcher.cli", "dispatcher.console"),
    "dispatcher.intake": (
        "dispatcher.bench",
        "dispatcher.cli",
        "dispatcher.api",
        "dispatcher.console",
    ),
}
MAX_MODULES_SIDE_BY_SIDE = 14  # about a dozen is where a folder asks to be split (DESIGN.md)


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def module_path(name: str) -> Path | None:
    """The file of a dotted module name under ROOT (a package's ``__init__.py``), if it is ours."""
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def dispatcher_imports(path: Path) -> set[str]:
    """The dispatcher modules ``path`` imports, anywhere in it (a function's imports too), with
    the packages that importing them runs."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            # ``from package import module`` imports the module by name
            found.update(f"{base}.{alias.name}" for alias in node.names)
    modules = {name for name in found if name.split(".")[0] == "dispatcher" and module_path(name)}
    return modules | {
        name.rsplit(".", depth)[0] for name in modules for depth in range(1, name.count(".") + 1)
    }


def reachable(start: str) -> dict[str, str]:
    """Every dispatcher module importing ``start`` runs, each with the module that imports it."""
    via: dict[str, str] = {}
    todo = [start]
    while todo:
        name = todo.pop()
        path = module_path(name)
        assert path is not None, name
        for imported in sorted(dispatcher_imports(path) - via.keys() - {start}):
            via[imported] = name
            todo.append(imported)
    return via


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_upward(package: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / package).rglob("*.py")
        for name in imported_packages(path) & set(FORBIDDEN[package])
    ]
    assert offenders == []


@pytest.mark.parametrize("package", sorted(UNREACHABLE))
def test_package_does_not_reach_the_packages_above_it(package: str) -> None:
    # given: every module of the package
    modules = [module_name(path) for path in ROOT.joinpath(*package.split(".")).rglob("*.py")]
    # when: following dispatcher's own imports from each, module by module
    offenders = [
        f"{module} reaches {name} (imported by {via[name]})"
        for module in sorted(modules)
        for via in [reachable(module)]
        for name in sorted(via)
        if name.startswith(tuple(f"{above}." for above in UNREACHABLE[package]))
        or name in UNREACHABLE[package]
    ]
    # then: none reaches the benchmark or the command line (nor intake the API)
    assert offenders == []


def test_the_walk_sees_through_other_modules() -> None:
    # given: the command line, which runs the benchmark through cli/bench.py
    via = reachable("dispatcher.cli.main")
    # then: the walk finds the benchmark's modules, and which module brought each in
    assert via["dispatcher.cli.bench"] == "dispatcher.cli.main"
    assert via["dispatcher.bench.run"] == "dispatcher.cli.bench"
    assert "dispatcher.bench.cputime" in via


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


def test_no_folder_of_the_platform_holds_too_many_modules() -> None:
    # A folder past this names too many concerns in its listing: split it into packages.
    crowded = {
        folder.relative_to(ROOT).as_posix(): count
        for package in ("dispatcher", "workers", "schemas")
        for folder in [ROOT / package, *(ROOT / package).rglob("*/")]
        if folder.name != "__pycache__"
        and (count := len([p for p in folder.glob("*.py") if p.name != "__init__.py"]))
        > MAX_MODULES_SIDE_BY_SIDE
    }
    assert crowded == {}
