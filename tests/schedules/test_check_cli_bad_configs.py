"""`beatkeeper check` as a subprocess on representative configs of the bad-config table: exit 1,
one line per problem naming the entry and field, never a traceback.

Every row of the table is checked in-process (tests/schedules/test_validate_bad_configs.py); a
subprocess per row costs a Python start-up each, so here only rows that exercise what the
command adds: several problems and entries in order, a setting from the environment, tasks
registered by a task module, values only a .py config can hold, a non-string entry name."""
from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from tests.schedules.test_validate_bad_configs import CASES

ENV_OF_SETTING = {"min_interval_s": "BEATKEEPER_MIN_INTERVAL", "max_runs_per_hour": "BEATKEEPER_MAX_RUNS_PER_HOUR",
                  "timezone": "BEATKEEPER_TIMEZONE"}
HEADER = "import datetime\nnan = float('nan')\ninf = float('inf')\n"
REPRESENTATIVE = ("every_bad_entry_reported_in_order", "every_problem_of_one_entry_reported",
                  "every_below_raised_minimum", "task_must_be_registered_with_hint", "args_nan_is_not_json",
                  "kwargs_nested_datetime_is_not_json", "yaml_boolean_name_gets_a_quoting_hint")


def _check(case, tmp_path) -> tuple[str, int, str]:
    name, raw, overrides, _ = case
    path = tmp_path / f"{name}.py"
    path.write_text(f"{HEADER}SCHEDULE = {raw!r}\n")  # .py: the table holds non-JSON values on purpose
    env = {**os.environ, "BEATKEEPER_TASK_MODULES": "tests.schedules.cli_tasks",
           **{ENV_OF_SETTING[key]: str(value) for key, value in overrides.items()}}
    done = subprocess.run([sys.executable, "-m", "tasks.cli", "check", "--config", str(path)],
                          capture_output=True, text=True, env=env, timeout=120)
    return name, done.returncode, done.stderr


def test_check_subprocess_on_representative_bad_configs(tmp_path):
    cases = [case for case in CASES if case[0] in REPRESENTATIVE]
    assert [case[0] for case in cases] == sorted(REPRESENTATIVE, key=[c[0] for c in CASES].index)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = {name: (code, err) for name, code, err in pool.map(lambda c: _check(c, tmp_path), cases)}
    wrong = {}
    for name, _, _, expected in cases:
        code, stderr = results[name]
        lines = stderr.strip().splitlines()
        missing = [f"entry '{entry}': {field}:" if field else f"entry '{entry}':" for entry, field, _ in expected
                   if not any(line.startswith(f"entry '{entry}': {field}:" if field else f"entry '{entry}':")
                              for line in lines)]
        if code != 1 or "Traceback" in stderr or missing or lines[-1] != f"{len(lines) - 1} problem(s) found":
            wrong[name] = (code, missing, stderr[-300:])
    assert wrong == {}
