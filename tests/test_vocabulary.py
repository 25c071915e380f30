"""One vocabulary: the run statuses are defined once (``monitoring.run_status``), and every event
writer names its kind with ``monitoring.events.EventKind``, never a string literal."""
from __future__ import annotations

import ast
from pathlib import Path

from monitoring.events import EventKind
from monitoring.history import RUN_STATUSES
from monitoring.run_status import RunStatus

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("tasks", "monitoring", "schedules", "examples")


def _sources():
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), path.read_text()


def literal_event_kinds(rel_path: str, source: str) -> list[str]:
    """``record_event(client, "some_kind", ...)`` calls: a kind written as a literal."""
    found = []
    for node in ast.walk(ast.parse(source, filename=rel_path)):
        if (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "record_event"
                and len(node.args) >= 2 and isinstance(node.args[1], (ast.Constant, ast.JoinedStr))):
            found.append(f"{rel_path}:{node.lineno}")
    return found


def run_status_definitions(rel_path: str, source: str) -> list[str]:
    return [f"{rel_path}:{node.lineno}" for node in ast.walk(ast.parse(source, filename=rel_path))
            if isinstance(node, ast.ClassDef) and node.name == "RunStatus"]


def test_every_event_writer_names_its_kind_with_event_kind():
    assert [hit for rel_path, source in _sources() for hit in literal_event_kinds(rel_path, source)] == []


def test_run_status_is_defined_once_below_tasks():
    assert [hit for rel_path, source in _sources() for hit in run_status_definitions(rel_path, source)] == [
        "monitoring/run_status.py:8"]
    assert RUN_STATUSES == tuple(status.value for status in RunStatus)


def test_the_checks_fail_on_a_literal_kind_and_a_second_status_enum():
    assert literal_event_kinds("tasks/x.py", 'record_event(client, "overlap_detected", "job")') == ["tasks/x.py:1"]
    assert literal_event_kinds("tasks/x.py", "record_event(client, EventKind.LONG_RUN, 'job')") == []
    assert run_status_definitions("tasks/x.py", "class RunStatus(str, Enum):\n    A = 'a'\n") == ["tasks/x.py:1"]


def test_event_kinds_are_stored_as_their_text():
    assert EventKind.OVERLAP_DETECTED == "overlap_detected" and EventKind("long_run") is EventKind.LONG_RUN
