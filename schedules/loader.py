"""Reading a schedule file: ``.py`` (module-level ``SCHEDULE``), ``.json``, ``.yaml``/``.yml``, ``.toml``.

This is the only I/O in the schedules package. Every failure is a :class:`ConfigFileError`
with a one-line message (and the line number when the parser gives one); what the
entries contain is validation's business, not the loader's.
"""
from __future__ import annotations

import importlib.util
import json
import re
import sys
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from schedules.errors import ConfigFileError


def load_schedule_file(path: str | Path) -> dict[str, Any]:
    """The schedule mapping (entry name -> entry dict) stored in ``path``."""
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        known = ", ".join(sorted(_READERS))
        raise ConfigFileError(path, f"unknown file type {path.suffix or '(none)'!r}; use one of {known}")
    if not path.is_file():
        raise ConfigFileError(path, "no such file" if not path.exists() else "not a file")
    schedule = reader(path)
    if not isinstance(schedule, Mapping):
        raise ConfigFileError(path, f"the schedule must be a mapping of entry name to entry, "
                                    f"got {type(schedule).__name__}")
    return dict(schedule)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(path, f"cannot read: {exc}") from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise ConfigFileError(path, f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno) from None


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(_read_text(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigFileError(path, f"invalid YAML: {problem}",
                              line=mark.line + 1 if mark is not None else None) from None


def _read_toml(path: Path) -> Any:
    try:
        return tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        # tomllib puts the position in the message: "... (at line 3, column 7)"
        found = re.search(r"\(at line (\d+), column \d+\)$", message)
        reason = message[: found.start()].strip() if found else message
        raise ConfigFileError(path, f"invalid TOML: {reason}",
                              line=int(found.group(1)) if found else None) from None


def _read_python(path: Path) -> Any:
    # A private module name: loading a schedule file must not shadow or register a real module.
    module_name = f"_beatkeeper_schedule_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigFileError(path, "cannot load as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise ConfigFileError(path, f"invalid Python: {exc.msg}", line=exc.lineno) from None
    except Exception as exc:  # the file is user code: any failure is a file problem, reported in one line
        raise ConfigFileError(path, f"raised {type(exc).__name__} while loading: {exc}",
                              line=_traceback_line(exc, path)) from None
    finally:
        sys.modules.pop(module_name, None)
    if not hasattr(module, "SCHEDULE"):
        raise ConfigFileError(path, "defines no module-level SCHEDULE")
    return module.SCHEDULE


def _traceback_line(exc: BaseException, path: Path) -> int | None:
    line = None
    target = path.resolve()
    tb = exc.__traceback__
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == target:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


_READERS: dict[str, Callable[[Path], Any]] = {
    ".json": _read_json,
    ".yaml": _read_yaml,
    ".yml": _read_yaml,
    ".toml": _read_toml,
    ".py": _read_python,
}
