"""Dependencies point one way: tasks -> monitoring -> schedules, and tasks -> schedules.

``schedules/`` is pure (imports neither tasks nor monitoring, nor Redis, Celery or SQL);
``monitoring/`` never imports ``tasks/``. Checked on the source, so a lazy import inside a
function counts too.

Inside ``tasks/``, the folders are roles and these rules keep them apart:

- ``beat/`` (the beat process) and ``guard/`` (the worker around every run) never import each
  other: what both need (message headers, published policies, run ids) lives beside them;
- ``locks/`` imports neither Celery nor another ``tasks/`` folder (usable from any process);
- ``pipelines/`` never imports an example's pipeline (``gtfs``, ``examples``);
- nothing imports ``cli/`` but the CLI itself (and the console entry point, ``pyproject.toml``);
- only ``tasks/application.py`` and ``cli/`` import ``tasks/wiring.py`` (the composition root).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "schedules": {"tasks", "monitoring", "celery", "redis", "redbeat", "kombu", "sqlalchemy"},
    "monitoring": {"tasks"},
}
#: Where the role rules look: the product's packages.
CHECKED = ("tasks", "monitoring", "schedules", "examples")
#: A script whose whole job is printing the command line's output (PLAN.md), as the console entry point does.
CLI_SCRIPTS = {"examples/transit/make_plan_page.py"}
TASK_FOLDERS = sorted(p.name for p in (ROOT / "tasks").iterdir() if (p / "__init__.py").is_file())


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _imported_names(rel_path: str, source: str) -> set[str]:
    """Every dotted name a module imports, in full: ``from tasks.beat import lock`` is both
    ``tasks.beat`` and ``tasks.beat.lock``; relative imports are resolved against ``rel_path``."""
    package = rel_path.removesuffix(".py").replace("/", ".").split(".")[:-1]
    if rel_path.endswith("__init__.py"):
        package = rel_path.removesuffix("/__init__.py").replace("/", ".").split(".")
    found = set()
    for node in ast.walk(ast.parse(source, filename=rel_path)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                stem = package[:len(package) - node.level + 1]
                base = ".".join(stem + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _role_violations(rel_path: str, source: str) -> list[str]:
    """The role rules (module docstring) ``source``, as the file ``rel_path``, breaks: one line each."""
    names = _imported_names(rel_path, source)
    found = []

    def refuse(rule: str, bad: set[str]) -> None:
        found.extend(f"{rel_path}: {rule}: imports {name}" for name in sorted(bad))

    if rel_path.startswith("tasks/beat/"):
        refuse("beat/ never imports guard/", {n for n in names if _under(n, "tasks.guard")})
    if rel_path.startswith("tasks/guard/"):
        refuse("guard/ never imports beat/", {n for n in names if _under(n, "tasks.beat")})
    if rel_path.startswith("tasks/locks/"):
        others = [f"tasks.{folder}" for folder in TASK_FOLDERS if folder != "locks"]
        refuse("locks/ imports neither Celery nor another tasks/ folder",
               {n for n in names if n.split(".")[0] in {"celery", "kombu", "redbeat"}
                or any(_under(n, other) for other in others)})
    if rel_path.startswith("tasks/pipelines/"):
        refuse("pipelines/ never imports an example's pipeline",
               {n for n in names if _under(n, "examples") or "gtfs" in n.split(".")})
    if not rel_path.startswith("tasks/cli/") and rel_path not in CLI_SCRIPTS:
        refuse("nothing imports cli/", {n for n in names if _under(n, "tasks.cli")})
    if rel_path != "tasks/application.py" and not rel_path.startswith("tasks/cli/"):
        refuse("only application.py and cli/ import wiring.py", {n for n in names if _under(n, "tasks.wiring")})
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_backward_import(package):
    offenders = {str(path.relative_to(ROOT)): sorted(_imports(path) & FORBIDDEN[package])
                 for path in sorted((ROOT / package).rglob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_sees_imports_inside_functions(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from tasks.application import app\n    import redis.client\n")
    assert _imports(sample) == {"tasks", "redis"}


def test_the_roles_inside_tasks_keep_apart():
    found = []
    for package in CHECKED:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel_path = path.relative_to(ROOT).as_posix()
            found += _role_violations(rel_path, path.read_text())
    assert found == []


@pytest.mark.parametrize(("rel_path", "source", "rule"), [
    ("tasks/beat/scheduler.py", "from tasks.guard.task import GuardedTask", "beat/ never imports guard/"),
    ("tasks/beat/dispatch.py", "def f():\n    from tasks.guard import identity", "beat/ never imports guard/"),
    ("tasks/guard/overlap.py", "import tasks.beat.lock", "guard/ never imports beat/"),
    ("tasks/guard/identity.py", "from ..beat import lock", "guard/ never imports beat/"),
    ("tasks/locks/fenced.py", "from celery import Task", "locks/ imports neither Celery"),
    ("tasks/locks/fencing.py", "from tasks.guard.run import Run", "locks/ imports neither Celery"),
    ("tasks/pipelines/steps.py", "from examples.transit.gtfs import sync", "pipelines/ never imports"),
    ("tasks/pipelines/definition.py", "import gtfs", "pipelines/ never imports"),
    ("tasks/guard/task.py", "from tasks import cli", "nothing imports cli/"),
    ("monitoring/monitor.py", "from tasks.cli.monitor import command", "nothing imports cli/"),
    ("tasks/guard/task.py", "from tasks.wiring import Wiring", "only application.py and cli/ import wiring.py"),
    ("tasks/beat/scheduler.py", "from tasks import wiring", "only application.py and cli/ import wiring.py"),
])
def test_each_role_rule_fails_on_a_violating_import(rel_path, source, rule):
    assert any(rule in line for line in _role_violations(rel_path, source))


@pytest.mark.parametrize(("rel_path", "source"), [
    ("tasks/beat/dispatch.py", "from tasks import headers, policy\nfrom tasks.beat import delivery_watch"),
    ("tasks/locks/advisory.py", "from tasks.locks.fenced import lock_held\nimport redis"),
    ("tasks/cli/monitor.py", "from tasks.cli import EXIT_USAGE\nfrom tasks import wiring"),
    ("tasks/application.py", "from tasks.wiring import install"),
    ("examples/transit/make_plan_page.py", "from tasks import cli"),
])
def test_the_role_rules_let_allowed_imports_pass(rel_path, source):
    assert _role_violations(rel_path, source) == []
