"""`beatkeeper import --from-celery`: the transit brief's schedule (verbatim, pytz zone) and a
module with every entry shape, imported into files `check` accepts, with the behaviour report
computed by running Celery's own schedule objects beside beatkeeper's triggers."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).parent / "golden"


def beatkeeper(*args: str, cwd: Path, modules: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BEATKEEPER_TASK_MODULES": modules}
    return subprocess.run([sys.executable, "-m", "tasks.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_transit_schedule_imports_into_a_checked_file_and_names_each_sydney_dst_difference(tmp_path):
    done = beatkeeper("import", "--from-celery", "tests.tasks.importers.transit_app:app", "--out", "transit.yaml",
                      "--start", "2025-01-01T00:00:00Z", "--days", "730", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = done.stdout.splitlines()
    assert report[-1] == "imported 8 of 8 entries into transit.yaml; compared 2025-01-01 .. 2027-01-01"
    # The brief's app runs beat in its pytz SYDNEY_TZ: Celery adds days to a fixed-offset time,
    # so each transition moves or doubles its daily runs; beatkeeper's cron keeps the wall time.
    for year, spring, autumn in (("2025", "2025-10-05", "2025-04-06"), ("2026", "2026-10-04", "2026-04-05")):
        assert (f"gtfs-static-sync: Celery fires 0 3 * * * at 04:00 AEDT on {spring} in Australia/Sydney; "
                f"beatkeeper at 03:00 AEDT") in report, year
        assert (f"gtfs-static-sync: Celery fires 0 3 * * * also at 02:00 AEST on {autumn} in Australia/Sydney; "
                f"beatkeeper does not") in report, year
        assert (f"refresh-materialized-views: Celery fires 30 3 * * * at 04:30 AEDT on {spring} in "
                f"Australia/Sydney; beatkeeper at 03:30 AEDT") in report, year
        assert any(line.startswith(f"alert-matcher-peak: beatkeeper fires */2 7-9,17-19 * * * also at 07:00 AEDT, "
                                   f"07:02 AEDT") and f"(+24 more) on {spring} in Australia/Sydney" in line
                   for line in report), year
    assert ("storage-cleanup: Celery fires 0 2 * * 0 also at 01:00 AEST on 2025-04-13 in Australia/Sydney; "
            "beatkeeper does not") in report  # a weekly run: its stale offset bites a week later
    assert report[4].startswith("gtfs-rt-poll: interval phase now on a fixed grid: Celery runs every 15s")
    for same in ("alert-matcher-offpeak", "cost-check", "usage-rollup"):
        assert any(line.startswith(f"{same}: same fire instants as Celery") for line in report), same
    written = (tmp_path / "transit.yaml").read_text()
    assert "cron: 0 3 * * *\n  timezone: Australia/Sydney\n  expires: 2h\n" in written
    checked = beatkeeper("check", "--config", "transit.yaml", cwd=tmp_path, modules="tests.tasks.importers.transit_tasks")
    assert checked.returncode == 0, checked.stderr
    assert "ok: 8 entries valid in transit.yaml" in checked.stdout


def test_every_entry_shape_gives_the_golden_file_and_report(tmp_path):
    done = beatkeeper("import", "--from-celery", "tests.tasks.importers.every_shape:app", "--out", "every_shape.yaml",
                      "--start", "2026-01-01T00:00:00Z", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "every_shape.yaml").read_text() == (GOLDEN / "every_shape.yaml").read_text()
    assert done.stdout == (GOLDEN / "every_shape.report.txt").read_text()
    checked = beatkeeper("check", "--config", "every_shape.yaml", cwd=tmp_path, modules="tests.tasks.importers.shape_tasks")
    assert checked.returncode == 0, checked.stderr


def test_a_solar_entry_is_refused_in_one_line_and_the_others_are_still_written(tmp_path):
    done = beatkeeper("import", "--from-celery", "tests.tasks.importers.solar_schedule:beat_schedule", "--out", "s.yaml",
                      "--start", "2026-01-01T00:00:00Z", "--days", "7", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "entry 'lights-on': solar schedule (sunset at -33.87, 151.21) refused: beatkeeper fires by interval, "
        "cron or date, never by the sun's position; keep it on Celery beat or give it a cron time"]
    assert (tmp_path / "s.yaml").read_text().endswith("nightly:\n  task: shapes.nightly\n  cron: 0 3 * * *\n"
                                                      "  timezone: UTC\n")
    assert done.stdout.splitlines()[-1] == "imported 1 of 2 entries into s.yaml; compared 2026-01-01 .. 2026-01-08"
