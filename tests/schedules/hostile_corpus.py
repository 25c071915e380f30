"""Hostile schedule files, one row each: what the file holds and the one line that refuses it.

Shared by the in-process and subprocess tests of ``test_hostile_configs`` (and usable as a
script-free corpus for a manual run). Each case writes its file into a directory and says
the exit code of ``beatkeeper check`` (1: a problem of the schedule's content, naming entry and
field; 2: a file that cannot be accepted at all, naming the file) and a fragment of the line.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TASK = "etl.poll"  # registered by tests.schedules.cli_tasks
BIG_FILE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Case:
    id: str
    filename: str
    content: Callable[[], str | bytes]  # built lazily: some are large
    exit_code: int
    fragment: str  # a part of the one line that refuses it

    def write(self, directory: Path) -> Path:
        path = directory / self.filename
        content = self.content()
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path


def _laughs(indent: str, levels: int = 9, width: int = 10) -> str:
    """The billion laughs: level n is ``width`` aliases of level n-1, 10**9 strings in all."""
    lines = [f"{indent}l0: &l0 [{', '.join(['lol'] * width)}]"]
    for n in range(1, levels):
        lines.append(f"{indent}l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def _entry_yaml(**keys: str) -> str:
    body = {"task": TASK, "every": "60", **keys}
    return "job:\n" + "".join(f"  {key}: {value}\n" for key, value in body.items())


def _entry_json(**keys: object) -> str:
    return json.dumps({"job": {"task": TASK, "every": 60, **keys}})


def _deep_json(levels: int) -> str:
    return '{"job": {"task": "%s", "every": 60, "kwargs": {"x": %s%s}}}' % (TASK, "[" * levels, "]" * levels)


def _deep_yaml(levels: int) -> str:
    return f"job:\n  task: {TASK}\n  every: 60\n  kwargs: {{x: {'[' * levels}{']' * levels}}}\n"


def _nested(levels: int, inner: str = "") -> str:
    return "[" * levels + inner + "]" * levels


def _big_file() -> bytes:
    line = b"# " + b"x" * 1021 + b"\n"  # 1 KiB: a file of comments, valid YAML all the way
    return line * (BIG_FILE_BYTES // len(line))


DIGITS_400 = "1" * 400
DIGITS_5000 = "7" * 5000

CASES: list[Case] = [
    # -- size, aliases, nesting, duplicates: the file itself is refused (exit 2) ----------------
    Case("file_of_50_mb", "big.yaml", _big_file, 2, "the limit is 4 MiB"),
    Case("billion_laughs_top_level", "laughs.yaml", lambda: _laughs(""), 2, "aliases expand"),
    Case("billion_laughs_in_kwargs", "laughs_kwargs.yaml",
         lambda: f"job:\n  task: {TASK}\n  every: 60\n  kwargs:\n" + _laughs("    "), 2, "aliases expand"),
    Case("recursive_anchor_entry", "recursive.yaml",
         lambda: f"job: &job\n  task: {TASK}\n  every: 60\n  kwargs: {{me: *job}}\n", 2, "recursive alias"),
    Case("recursive_anchor_list", "recursive_list.yaml", lambda: "loop: &a [*a]\n", 2, "recursive alias"),
    Case("deep_nesting_yaml", "deep.yaml", lambda: _deep_yaml(5000), 2, "nesting depth"),  # libyaml's own bound
    Case("deep_nesting_yaml_under_the_parser_limit", "deep_100.yaml", lambda: _deep_yaml(100), 2,
         "nested deeper than 32 levels"),
    Case("deep_nesting_through_an_alias", "deep_alias.yaml",  # as written 21 levels deep; through the alias 39
         lambda: f"job:\n  task: {TASK}\n  every: 60\n  kwargs:\n    a: &d {_nested(18)}\n    b: {_nested(18, '*d')}\n",
         2, "nested deeper than 32 levels"),
    Case("deep_nesting_json", "deep.json", lambda: _deep_json(100_000), 2, "nested deeper than 32 levels"),
    Case("deep_nesting_json_under_the_parser_limit", "deep_500.json", lambda: _deep_json(500), 2,
         "nested deeper than 32 levels"),
    Case("deep_nesting_toml", "deep.toml",
         lambda: f'[job]\ntask = "{TASK}"\nevery = 60\nkwargs = {{ x = {"[" * 5000}{"]" * 5000} }}\n', 2,
         "nested deeper than 32 levels"),
    Case("python_value_containing_itself", "selfref.py",
         lambda: f"me = {{}}\nme['me'] = me\nSCHEDULE = {{'job': {{'task': '{TASK}', 'every': 60, 'kwargs': me}}}}\n",
         2, "a value contains itself"),
    Case("python_billion_laughs", "laughs.py",
         lambda: "v = ['lol'] * 10\nfor _ in range(8):\n    v = [v] * 10\n"
                 f"SCHEDULE = {{'job': {{'task': '{TASK}', 'every': 60, 'kwargs': {{'v': v}}}}}}\n",
         2, "more than 1000000 values"),
    Case("duplicate_entry_yaml", "dup.yaml",
         lambda: f"job: {{task: {TASK}, every: 60}}\njob: {{task: {TASK}, every: 3600}}\n", 2,
         "duplicate key 'job'"),
    Case("duplicate_key_in_entry_yaml", "dup_key.yaml",
         lambda: f"job:\n  task: {TASK}\n  every: 60\n  every: 3600\n", 2, "duplicate key 'every'"),
    Case("duplicate_entry_json", "dup.json",
         lambda: f'{{"job": {{"task": "{TASK}", "every": 60}}, "job": {{"task": "{TASK}", "every": 3600}}}}', 2,
         "duplicate key 'job'"),
    Case("duplicate_key_in_entry_json", "dup_key.json",
         lambda: f'{{"job": {{"task": "{TASK}", "every": 60, "every": 3600}}}}', 2, "duplicate key 'every'"),
    Case("integer_of_5000_digits_yaml", "long_int.yaml", lambda: _entry_yaml(every=DIGITS_5000), 2,
         "a number of 5000 digits"),
    Case("integer_of_5000_digits_json", "long_int.json",
         lambda: '{"job": {"task": "%s", "every": %s}}' % (TASK, DIGITS_5000), 2, "a number of 5000 digits"),
    Case("integer_of_5000_digits_toml", "long_int.toml",
         lambda: f'[job]\ntask = "{TASK}"\nevery = {DIGITS_5000}\n', 2, "a number of 5000 digits"),
    Case("python_system_exit", "exits.py", lambda: "raise SystemExit(7)\n", 2, "raised SystemExit while loading: 7"),
    Case("python_base_exception", "base.py", lambda: "x = 1\nraise BaseException('stop\\nhere')\n", 2,
         "raised BaseException while loading: stop"),
    # -- content: one line naming entry and field (exit 1) --------------------------------------
    Case("every_integer_of_400_digits", "huge_every.yaml", lambda: _entry_yaml(every=DIGITS_400), 1,
         "entry 'job': every: a number of 400 digits is more than 3650d (about 10 years), the longest duration"),
    Case("python_integer_of_5001_digits", "huge_every.py",
         lambda: f"SCHEDULE = {{'job': {{'task': '{TASK}', 'every': 10 ** 5000}}}}\n", 2,
         "a number of more than 1000 digits"),
    Case("every_duration_of_400_digits", "huge_duration.yaml", lambda: _entry_yaml(every=f'"{DIGITS_400}s"'), 1,
         "entry 'job': every: '1111111111111111111111111111111111111...' is more than 3650d"),
    Case("expires_bare_number_of_400_digits", "huge_expires.json", lambda: _entry_json(expires=DIGITS_400), 1,
         "entry 'job': expires: a number of 400 digits is more than 3650d"),
    Case("catchup_window_million_days", "catchup.yaml", lambda: _entry_yaml(catchup_window="1000000d"), 1,
         "entry 'job': catchup_window: '1000000d' is more than 3650d"),
    Case("lock_ttl_float_overflow", "lock_ttl.json", lambda: _entry_json(lock_ttl=1e300), 1,
         "entry 'job': lock_ttl: 1e+300 is more than 3650d"),
    Case("max_runs_per_hour_huge", "budget.yaml", lambda: _entry_yaml(max_runs_per_hour="1" + "0" * 30), 1,
         "entry 'job': max_runs_per_hour: a number of 31 digits is more than 1000000, the most allowed"),
    Case("catchup_max_huge", "catchup_max.json", lambda: _entry_json(catchup_max=10 ** 20), 1,
         "entry 'job': catchup_max: a number of 21 digits is more than 1000"),
    Case("retry_max_retries_huge", "retries.yaml", lambda: _entry_yaml(retry="{max_retries: 100000}"), 1,
         "entry 'job': retry.max_retries: 100000 is more than 100"),
    Case("at_year_1", "at_1.yaml", lambda: f"job:\n  task: {TASK}\n  at: 0001-01-01T00:00:00\n", 1,
         "entry 'job': at: year 1 is outside 1970-2999"),
    Case("at_year_9999", "at_9999.json",
         lambda: json.dumps({"job": {"task": TASK, "at": "9999-12-31T23:59:59"}}), 1,
         "entry 'job': at: year 9999 is outside 1970-2999"),
    Case("at_year_9999_aware_toml", "at_9999.toml", lambda: f'[job]\ntask = "{TASK}"\nat = 9999-12-31T23:59:59Z\n',
         1, "entry 'job': at: year 9999 is outside 1970-2999"),
    Case("at_fullwidth_digits", "at_full.yaml", lambda: f"job:\n  task: {TASK}\n  at: '２０２６-10-04T03:00'\n", 1,
         "entry 'job': at: expected an ISO-8601 date-time such as '2026-10-04T03:00', got '２０２６-10-04T03:00'"),
    Case("reserved_entry_name", "reserved.yaml",
         lambda: f"beatkeeper-heartbeat:\n  task: {TASK}\n  every: 60\n", 1,
         "entry 'beatkeeper-heartbeat': name: is reserved by the platform's own schedule"),
    Case("cron_superscript_digit", "cron_sup.yaml", lambda: _entry_cron("¹ * * * *"), 1,
         "entry 'job': cron: minute: '¹' is not a number (digits 0-9)"),
    Case("cron_fullwidth_digit", "cron_full.yaml", lambda: _entry_cron("３ * * * *"), 1,
         "entry 'job': cron: minute: '３' is not a number (digits 0-9)"),
    Case("cron_arabic_indic_digit", "cron_arabic.json",
         lambda: json.dumps({"job": {"task": TASK, "cron": "٣ * * * *"}}, ensure_ascii=False), 1,
         "entry 'job': cron: minute: '٣' is not a number (digits 0-9)"),
    Case("cron_fullwidth_step", "cron_step.yaml", lambda: _entry_cron("*/１５ * * * *"), 1,
         "entry 'job': cron: minute: step '１５' in '*/１５' is not a number (digits 0-9)"),
    Case("cron_long_digit_run", "cron_long.yaml", lambda: _entry_cron(f"{DIGITS_400} * * * *"), 1,
         "entry 'job': cron: minute: '11111111111111111...' is outside 0-59"),
    Case("duration_fullwidth_digit", "every_full.yaml", lambda: _entry_yaml(every="３m"), 1,
         "entry 'job': every: '３m' is not a duration"),
    Case("duration_arabic_indic_bare_number", "every_arabic.yaml", lambda: _entry_yaml(expires="'٣٠'"), 1,
         "entry 'job': expires: '٣٠' is not a duration"),
    Case("windows_hours_fullwidth_digit", "windows.yaml",
         lambda: f"job:\n  task: {TASK}\n  windows:\n    - {{hours: '７-９', every: 2m}}\n    - {{every: 5m}}\n", 1,
         "entry 'job': windows[0].hours: '７' is not a number (digits 0-9)"),
]


def _entry_cron(expression: str) -> str:
    return f"job:\n  task: {TASK}\n  cron: '{expression}'\n"
