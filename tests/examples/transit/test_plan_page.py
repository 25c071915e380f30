"""examples/transit/PLAN.md is what make_plan_page.py prints: real `beatkeeper plan` output.
Regenerate: .venv/bin/python examples/transit/make_plan_page.py > examples/transit/PLAN.md"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PAGE = ROOT / "examples" / "transit" / "PLAN.md"


def test_the_committed_plan_page_is_what_the_script_prints():
    env = {k: v for k, v in os.environ.items() if not k.endswith("_SCHEDULER_DISABLED")}
    printed = subprocess.run([sys.executable, str(ROOT / "examples" / "transit" / "make_plan_page.py")],
                             capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == PAGE.read_text(), "PLAN.md is stale: regenerate it with make_plan_page.py"


def test_the_page_answers_with_sydneys_2025_and_2026_transitions_and_three_scenarios():
    page = PAGE.read_text()
    for instant in ("2025-04-05T16:00:00Z", "2025-10-04T16:00:00Z", "2026-04-04T16:00:00Z", "2026-10-03T16:00:00Z"):
        assert f"{instant} Australia/Sydney" in page
    compared = page[page.index("compared (totals):"):].splitlines()[1:5]
    assert [row.split()[0] for row in compared] == ["schedule", "schedule", "peak-optimised", "aggressive"]
    totals = [float(row.split()[1].replace(",", "")) for row in compared[1:]]
    assert totals[1] < totals[0] < totals[2]  # peak-optimised < current < aggressive, runs per hour
