"""Reading a schedule file: ``.py`` (module-level ``SCHEDULE``), ``.json``, ``.yaml``/``.yml``, ``.toml``.

This is the only I/O in the schedules package. Every failure is a :class:`ConfigFileError`
with a one-line message (and the line number when the parser gives one): a file over
``limits.MAX_FILE_BYTES`` (refused before parsing), a duplicate key, YAML aliases that
expand too far or into themselves, values nested too deep, an integer too long. What the
entries contain is validation's business, except their names: a user's file may not use
the names of the platform's own entries (one :class:`ScheduleConfigError` line per name),
whoever loads it -- ``beatkeeper check --config`` or beat through ``BEATKEEPER_SCHEDULE``.

A ``.py`` file is code: it runs in the process that loads it. Any exception it raises,
``SystemExit`` included (all but ``KeyboardInterrupt``), becomes one line here.
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

from schedules import limits
from schedules.errors import ConfigFileError, Problem, ScheduleConfigError
from schedules.platform import RESERVED_NAMES
from schedules.yaml_loader import BoundedSafeLoader, YamlRefused


def load_schedule_file(path: str | Path) -> dict[str, Any]:
    """The schedule mapping (entry name -> entry dict) stored in ``path``."""
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        known = ", ".join(sorted(_READERS))
        raise ConfigFileError(path, f"unknown file type {path.suffix or '(none)'!r}; use one of {known}")
    if not path.is_file():
        raise ConfigFileError(path, "no such file" if not path.exists() else "not a file")
    _refuse_large(path, path.stat().st_size)
    schedule = reader(path)
    if not isinstance(schedule, Mapping):
        raise ConfigFileError(path, f"the schedule must be a mapping of entry name to entry, "
                                    f"got {type(schedule).__name__}")
    try:
        limits.check_shape(schedule)
    except limits.LimitExceeded as exc:
        raise ConfigFileError(path, str(exc)) from None
    reserved = [name for name in schedule if isinstance(name, str) and name in RESERVED_NAMES]
    if reserved:
        raise ScheduleConfigError([Problem(name, "name", "is reserved by the platform's own schedule; "
                                                         "rename the entry") for name in reserved])
    return dict(schedule)


def _refuse_large(path: Path, size_bytes: int) -> None:
    if size_bytes > limits.MAX_FILE_BYTES:
        raise ConfigFileError(path, f"{size_bytes} bytes is too large for a schedule file; "
                                    f"the limit is {limits.MAX_FILE_MIB} MiB ({limits.MAX_FILE_BYTES} bytes)")


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as file:
            data = file.read(limits.MAX_FILE_BYTES + 1)  # the file may have grown since it was measured
        _refuse_large(path, len(data))
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(path, f"cannot read: {exc}") from None


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(f"duplicate key {_short(key)}; JSON readers would silently keep only the last value")
        found[key] = value
    return found


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > limits.MAX_NUMBER_DIGITS:
        raise limits.too_long_number(digits)
    return int(text)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(_read_text(path), object_pairs_hook=_unique_keys, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise ConfigFileError(path, f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno) from None
    except (_DuplicateKey, limits.LimitExceeded) as exc:
        raise ConfigFileError(path, str(exc)) from None
    except RecursionError:  # the parser's own recursion, long before any bound could be checked
        raise ConfigFileError(path, str(limits.too_deep())) from None


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.load(_read_text(path), Loader=BoundedSafeLoader)  # noqa: S506 (a safe loader)
    except YamlRefused as exc:
        raise ConfigFileError(path, exc.problem, line=exc.problem_mark.line + 1) from None
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
    except RecursionError:
        raise ConfigFileError(path, str(limits.too_deep())) from None
    except ValueError as exc:  # int() refusing a number longer than Python converts
        digits = re.search(r"value has (\d+) digits", str(exc))
        raise ConfigFileError(path, str(limits.too_long_number(digits.group(1) if digits else
                                                               f"more than {sys.get_int_max_str_digits()}"))) from None


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
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the file is user code: any failure, SystemExit too, is one line
        raise ConfigFileError(path, f"raised {type(exc).__name__} while loading: {_first_line(exc)}",
                              line=_traceback_line(exc, path)) from None
    finally:
        sys.modules.pop(module_name, None)
    if not hasattr(module, "SCHEDULE"):
        raise ConfigFileError(path, "defines no module-level SCHEDULE")
    return module.SCHEDULE


def _first_line(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # an exception whose __str__ fails: its type is all there is to say
        return "(no message)"
    return text.strip().splitlines()[0] if text.strip() else ""


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
