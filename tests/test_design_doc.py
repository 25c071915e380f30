"""docs/design.md names every Redis key and SQL table the code defines.

The collector reads the source as text (AST, no import): module constants named ``*_KEY``,
``*_PREFIX``, ``*KEY_TEMPLATE`` with a string value; every string expression
(literal, f-string, ``PREFIX + "..."``) whose leading literal part is a ``beatkeeper:`` key; a key
declared through ``namespaced("...")`` (monitoring/namespace.py) is that key, as the page names it; SQL
tables from ``Table("name", ...)``, ``__tablename__ = "name"`` and ``*TABLE_NAMES`` tuples. A key
template is checked by its fixed head (``beatkeeper:monitor:cursor:`` of
``f"{MONITOR_PREFIX}cursor:{rule}"``), which the page must contain.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("tasks", "monitoring", "schedules", "examples", "celeryconfig.py")
KEY_HEAD = "beatkeeper:"
CONSTANT_SUFFIXES = ("_KEY", "_PREFIX", "KEY_TEMPLATE")
NAMESPACING = "namespaced"  # monitoring.namespace.namespaced: the page names keys without the deployment's prefix


@dataclass(frozen=True)
class Defined:
    kind: str  # "redis key" or "sql table"
    name: str  # the key (or its fixed head) or the table name
    where: str  # path:line and the constant's name, for the failure message

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r} ({self.where})"


def _module_strings(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "literal"`` / ``NAME = OTHER + "literal"`` assignments, in order."""
    values: dict[str, str] = {}
    for node in tree.body:
        target, value = _assignment(node)
        if target is not None:
            head = _head(value, values)
            if head is not None:
                values[target] = head
    return values


def _assignment(node: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id, node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
        return node.target.id, node.value
    return None, None


def _head(node: ast.expr | None, names: dict[str, str]) -> str | None:
    """The fixed leading text of a string expression; None when it does not start with known text."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if _namespacing(node):
        return _head(node.args[0], names)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _head(node.left, names)
        if left is None:
            return None
        right = _head(node.right, names)
        return left + right if right is not None and _whole(node.left, names) else left
    if isinstance(node, ast.JoinedStr):
        text = ""
        for part in node.values:
            if isinstance(part, ast.Constant):
                text += str(part.value)
            elif isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name) \
                    and part.value.id in names and part.format_spec is None:
                text += names[part.value.id]
            else:
                break
        return text or None
    return None


def _whole(node: ast.expr, names: dict[str, str]) -> bool:
    """Whether ``_head`` of ``node`` is its whole value (so what follows can be appended)."""
    if isinstance(node, ast.Constant) or (isinstance(node, ast.Name) and node.id in names):
        return True
    if _namespacing(node):
        return _whole(node.args[0], names)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _whole(node.left, names) and _whole(node.right, names)
    return False


def _namespacing(node: ast.expr) -> bool:
    """``namespaced(<one string expression>)``."""
    return isinstance(node, ast.Call) and _called_name(node.func) == NAMESPACING and len(node.args) == 1 \
        and not node.keywords


def _is_key(text: str) -> bool:
    return text.startswith(KEY_HEAD) and not any(c.isspace() for c in text)


def collect(path: str, source: str, imported: dict[str, str] | None = None) -> list[Defined]:
    """Every Redis key and SQL table that ``source`` (the text of ``path``) defines."""
    tree = ast.parse(source, filename=path)
    names = {**(imported or {}), **_module_strings(tree)}
    found: list[Defined] = []
    for node in tree.body:
        target, value = _assignment(node)
        if target is None:
            continue
        if target.endswith(CONSTANT_SUFFIXES) and target in names:
            found.append(Defined("redis key", names[target], f"{path}:{node.lineno} {target}"))
        if target.endswith("TABLE_NAMES") and isinstance(value, (ast.Tuple, ast.List)):
            found += [Defined("sql table", e.value, f"{path}:{node.lineno} {target}")
                      for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    for node in ast.walk(tree):
        if isinstance(node, (ast.Constant, ast.JoinedStr, ast.BinOp)):
            head = _head(node, names)
            if head is not None and _is_key(head):
                found.append(Defined("redis key", head, f"{path}:{node.lineno}"))
        if isinstance(node, ast.Call) and _called_name(node.func) == "Table" and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            found.append(Defined("sql table", node.args[0].value, f"{path}:{node.lineno}"))
        target, value = _assignment(node) if isinstance(node, ast.stmt) else (None, None)
        if target == "__tablename__" and isinstance(value, ast.Constant) and isinstance(value.value, str):
            found.append(Defined("sql table", value.value, f"{path}:{node.lineno} __tablename__"))
    return found


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def defined(sources: dict[str, str]) -> list[Defined]:
    """Every key and table ``sources`` (path -> text) define; a constant imported from another
    module resolves by its name."""
    shared: dict[str, str] = {}
    for path, text in sources.items():
        for name, value in _module_strings(ast.parse(text, filename=path)).items():
            shared.setdefault(name, value)
    return [item for path, text in sources.items() for item in collect(path, text, shared)]


def undocumented(page: str, sources: dict[str, str]) -> list[Defined]:
    """What ``sources`` define that ``page`` does not name, one line per key/table."""
    missing: dict[tuple[str, str], Defined] = {}
    for item in defined(sources):
        if item.name and item.name not in page:
            missing.setdefault((item.kind, item.name), item)
    return list(missing.values())


def _project_sources() -> dict[str, str]:
    files: list[Path] = []
    for name in SCANNED:
        target = ROOT / name
        files += sorted(target.rglob("*.py")) if target.is_dir() else [target]
    return {str(f.relative_to(ROOT)): f.read_text() for f in files if "migrations" not in f.parts}


PAGE = (ROOT / "docs" / "design.md").read_text()


def test_every_redis_key_and_sql_table_is_on_the_design_page():
    missing = undocumented(PAGE, _project_sources())
    assert not missing, "docs/design.md does not name:\n" + "\n".join(map(str, missing))


def test_the_collector_finds_the_platforms_keys_and_tables():
    found = {(d.kind, d.name) for d in defined(_project_sources())}
    assert ("redis key", "beatkeeper:beat:epoch") in found
    assert ("redis key", "beatkeeper:monitor:cursor:") in found  # f"{MONITOR_PREFIX}cursor:{rule}"
    assert ("redis key", "beatkeeper:monitor:missed:checked") in found  # MONITOR_PREFIX + "missed:checked"
    assert ("redis key", "beatkeeper:scheduled_tasks") in found
    assert ("sql table", "beatkeeper_task_runs") in found
    assert len({n for k, n in found if k == "redis key" and n.startswith(KEY_HEAD)}) >= 30


def test_an_undocumented_key_constant_template_and_table_are_each_named():
    source = '''
import sqlalchemy as sa
NEW_KEY = "beatkeeper:brand:new"
BASE_PREFIX = "beatkeeper:base:"
DOCUMENTED_KEY = "beatkeeper:events"
def cursor(rule):
    return f"{BASE_PREFIX}cursor:{rule}"
def other(name):
    return "beatkeeper:adhoc:" + name
MESSAGE = "beatkeeper: not a key"
things = sa.Table("brand_new_table", sa.MetaData())
'''
    page = "`beatkeeper:events` and `beatkeeper:base:` only"
    names = {d.name for d in undocumented(page, {"synthetic.py": source})}
    assert names == {"beatkeeper:brand:new", "beatkeeper:base:cursor:", "beatkeeper:adhoc:", "brand_new_table"}
    assert undocumented(page + " beatkeeper:brand:new beatkeeper:base:cursor: beatkeeper:adhoc: brand_new_table",
                        {"synthetic.py": source}) == []


def test_a_namespaced_key_and_a_template_built_on_a_namespaced_prefix_are_each_named():
    source = '''
from monitoring.namespace import namespaced
SPOOL_KEY = namespaced("beatkeeper:spool")
BASE_PREFIX = namespaced("beatkeeper:base:")
LOCK_KEY = SPOOL_KEY + ":lock"
def cursor(rule):
    return f"{BASE_PREFIX}cursor:{rule}"
'''
    names = {d.name for d in undocumented("", {"synthetic.py": source})}
    assert names == {"beatkeeper:spool", "beatkeeper:base:", "beatkeeper:spool:lock", "beatkeeper:base:cursor:"}


def test_a_key_built_from_another_modules_prefix_is_resolved():
    sources = {"a.py": 'ROOT_PREFIX = "beatkeeper:root:"\n',
               "b.py": 'from a import ROOT_PREFIX\nLEAF_KEY = ROOT_PREFIX + "leaf"\n'}
    assert [d.name for d in undocumented("beatkeeper:root:", sources)] == ["beatkeeper:root:leaf"]
