"""Kill switches: which validated entries are registered, and why each other one is left out.

An entry is left out when its config says ``enabled: false``, when its name is listed in
``BEATKEEPER_DISABLE=name1,name2``, or when ``<NAME>_SCHEDULER_DISABLED`` is switched on
(the name upper-cased, every non-alphanumeric character replaced by ``_``). A switch
counts as on unless its value is empty, 0, false, no or off: a kill switch that is set to
something unexpected errs towards stopping the entry.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # validate imports this module for the budget: type-only imports avoid a cycle
    from schedules.entry import EntrySpec
    from schedules.validate import ValidatedSchedule

DISABLE_LIST_VARIABLE = "BEATKEEPER_DISABLE"
SWITCH_SUFFIX = "_SCHEDULER_DISABLED"
_OFF_VALUES = frozenset({"", "0", "false", "no", "off"})


def switch_variable(name: str) -> str:
    """The environment variable that switches entry ``name`` off: gtfs-rt-poll -> GTFS_RT_POLL_SCHEDULER_DISABLED."""
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper() + SWITCH_SUFFIX


def disabled_names_from_env(environ: Mapping[str, str]) -> frozenset[str]:
    """Entry names listed in ``BEATKEEPER_DISABLE`` (comma-separated, blanks ignored)."""
    raw = environ.get(DISABLE_LIST_VARIABLE, "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def switched_off_variables(environ: Mapping[str, str]) -> frozenset[str]:
    """The ``*_SCHEDULER_DISABLED`` variables of ``environ`` that are switched on."""
    return frozenset(
        variable for variable, value in environ.items()
        if variable.endswith(SWITCH_SUFFIX) and value.strip().lower() not in _OFF_VALUES
    )


def reason_left_out(
    name: str, *, enabled: bool, disabled_names: Iterable[str], switched_off: Iterable[str]
) -> str | None:
    """Why entry ``name`` is left out, or None when it is registered."""
    reasons = []
    if not enabled:
        reasons.append("enabled: false in the schedule")
    if name in disabled_names:
        reasons.append(f"listed in {DISABLE_LIST_VARIABLE}")
    variable = switch_variable(name)
    if variable in switched_off:
        reasons.append(f"{variable} is set")
    return "; ".join(reasons) or None


def partition_enabled(
    schedule: ValidatedSchedule | Mapping[str, EntrySpec], environ: Mapping[str, str]
) -> tuple[dict[str, EntrySpec], dict[str, str]]:
    """Split a validated schedule into the entries to register and, for each other one, why not."""
    entries = schedule if isinstance(schedule, Mapping) else schedule.entries
    disabled_names = disabled_names_from_env(environ)
    switched_off = switched_off_variables(environ)
    kept: dict[str, EntrySpec] = {}
    left_out: dict[str, str] = {}
    for name, spec in entries.items():
        reason = reason_left_out(name, enabled=spec.enabled, disabled_names=disabled_names,
                                 switched_off=switched_off)
        if reason is None:
            kept[name] = spec
        else:
            left_out[name] = reason
    return kept, left_out
