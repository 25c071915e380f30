"""Dependencies point one way: tasks -> monitoring -> schedules, and tasks -> schedules.

``schedules/`` is pure (imports neither tasks nor monitoring, nor Redis, Celery or SQL);
``monitoring/`` never imports ``tasks/``. Checked on the source, so a lazy import inside a
function counts too."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "schedules": {"tasks", "monitoring", "celery", "redis", "redbeat", "kombu", "sqlalchemy"},
    "monitoring": {"tasks"},
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
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
