"""How much a schedule file may hold: bounds every reader enforces before validation sees a value.

A schedule is small data (10,000 entries are about 1.6 MB of JSON). These bounds refuse only
what no schedule needs and what would make reading or validating it slow or memory-hungry:
a huge file, a YAML "billion laughs" (aliases expanding exponentially), values nested without
end or containing themselves, integers too long to convert. Each refusal is one line.
"""
from __future__ import annotations

from collections.abc import Mapping

MAX_FILE_MIB = 4
MAX_FILE_BYTES = MAX_FILE_MIB * 1024 * 1024  # bytes; checked before the file is parsed
MAX_DEPTH = 32  # levels of nesting: the top-level mapping is level 1, an entry 2, its kwargs 3
MAX_VALUES = 1_000_000  # scalars, lists and mappings (keys included), counted after YAML aliases are expanded
# YAML aliases may add at most as many values as the file writes out before them, plus this many:
# `<<: *defaults` in every entry passes, a billion laughs (a few lines) stops here.
MAX_ALIAS_EXTRA_VALUES = 100_000
MAX_NUMBER_DIGITS = 1000  # digits of one integer; longer ones are refused before conversion


class LimitExceeded(ValueError):
    """A value beyond one of the bounds above; the message names the bound."""


def too_deep() -> LimitExceeded:
    return LimitExceeded(f"nested deeper than {MAX_DEPTH} levels")


def too_many() -> LimitExceeded:
    return LimitExceeded(f"more than {MAX_VALUES} values")


def aliases_too_many() -> LimitExceeded:
    return LimitExceeded(f"aliases expand to more values than the file writes out plus {MAX_ALIAS_EXTRA_VALUES} "
                         "(a YAML 'billion laughs')")


def too_long_number(digits: int | str) -> LimitExceeded:
    return LimitExceeded(f"a number of {digits} digits; at most {MAX_NUMBER_DIGITS} digits are read")


_LONGEST_INT = 10 ** MAX_NUMBER_DIGITS


def check_shape(value: object) -> None:
    """Raise :class:`LimitExceeded` when ``value`` nests deeper than MAX_DEPTH, contains itself,
    holds more than MAX_VALUES values (a shared list counts each time it appears) or an integer
    of more than MAX_NUMBER_DIGITS digits.

    Iterative, and each distinct list or mapping is walked once (its size and height are kept
    by identity), so a Python schedule's ``[v] * 10`` tower is measured, never expanded.
    """
    measured: dict[int, tuple[int, int]] = {}  # id -> (values, height) of a container walked
    on_path: set[int] = set()  # containers being walked: meeting one again means a cycle
    stack: list[tuple[object, int, list | None]] = [(value, 1, None)]
    while stack:
        item, depth, parts = stack.pop()
        if parts is not None:  # every part is measured: measure the container itself
            on_path.discard(id(item))
            sizes = [measured[id(p)] if id(p) in measured else (1, 1) for p in parts]
            size = 1 + sum(s for s, _ in sizes)
            if size > MAX_VALUES:
                raise too_many()
            measured[id(item)] = (size, 1 + max((h for _, h in sizes), default=0))
            continue
        found = _parts(item)
        if found is None:
            if isinstance(item, int) and not isinstance(item, bool) and abs(item) >= _LONGEST_INT:
                raise too_long_number(f"more than {MAX_NUMBER_DIGITS}")
            continue
        if id(item) in measured:
            if depth + measured[id(item)][1] - 1 > MAX_DEPTH:
                raise too_deep()
            continue
        if id(item) in on_path:
            raise LimitExceeded("a value contains itself")
        if depth > MAX_DEPTH:
            raise too_deep()
        on_path.add(id(item))
        stack.append((item, depth, found))
        stack.extend((part, depth + 1, None) for part in found)


def _parts(item: object) -> list | None:
    """The keys and values of a mapping, the items of a list; None for a scalar."""
    if isinstance(item, Mapping):
        return [part for pair in item.items() for part in pair]
    if isinstance(item, (list, tuple, set, frozenset)):
        return list(item)
    return None
