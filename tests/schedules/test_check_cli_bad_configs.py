"""`beatkeeper check` as a subprocess on every config of the bad-config table: exit 1, one line
per problem naming the entry and field, never a traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from tests.schedules.test_validate_bad_configs import CASES

ENV_OF_SETTING = {"min_interval_s": "BEATKEEPER_MIN_INTERVAL", "max_runs_per_hour": "BEATKEEPER_MAX_RUNS_PER_HOUR",
                  "timezone": "BEATKEEPER_TIMEZONE"}
HEADER = "import datetime\nnan = float('nan')\ninf = float('inf')\n"


def _check(case, tmp_path) -> tuple[str, int, str]:
    name, raw, overrides, _ = case
    path = tmp_path / f"{name}.py"
    path.write_text(f"{HEADER}SCHEDULE = {raw!r}\n")  # .py: the table holds non-JSON values on purpose
    env = {**os.environ, "BEATKEEPER_TASK_MODULES": "tests.schedules.cli_tasks",
           **{ENV_OF_SETTING[key]: str(value) for key, value in overrides.items()}}
    done = subprocess.run([sys.executable, "-m", "tasks.cli", "check", "--config", str(path)],
                          capture_output=True, text=True, env=env, timeout=120)
    return name, done.returncode, done.stderr


def test_check_subprocess_on_every_bad_config(tmp_path):
    assert len(CASES) >= 40
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = {name: (code, err) for name, code, err in pool.map(lambda c: _check(c, tmp_path), CASES)}
    wrong = {}
    for name, _, _, expected in CASES:
        code, stderr = results[name]
        lines = stderr.strip().splitlines()
        missing = [f"entry '{entry}': {field}:" if field else f"entry '{entry}':" for entry, field, _ in expected
                   if not any(line.startswith(f"entry '{entry}': {field}:" if field else f"entry '{entry}':")
                              for line in lines)]
        if code != 1 or "Traceback" in stderr or missing or lines[-1] != f"{len(lines) - 1} problem(s) found":
            wrong[name] = (code, missing, stderr[-300:])
    assert wrong == {}
