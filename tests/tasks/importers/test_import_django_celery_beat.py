"""`beatkeeper import --from-django-celery-beat`: tables made by django-celery-beat's own
migrations, filled through its models with every schedule kind (tests/tasks/importers/django_fill.py),
read with SQLAlchemy; the file passes `check`, and `plan` lists the instants
django-celery-beat's schedule objects compute over a week without a DST change."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
START = "2026-06-01T00:00:00+00:00"  # neither Sydney nor New York changes offset that week


def run(*argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def test_django_celery_beat_tables_import_into_a_checked_file_whose_plan_matches_its_schedules(tmp_path):
    database = tmp_path / "django.sqlite3"
    filled = run("-m", "tests.tasks.importers.django_fill", START, cwd=tmp_path, BEATKEEPER_TEST_DJANGO_DB=str(database))
    assert filled.returncode == 0, filled.stderr
    expected = json.loads(filled.stdout)
    assert sorted(expected) == ["clocked-once", "office-hours", "poll-15m", "report-sydney"]

    done = run("-m", "tasks.cli", "import", "--from-django-celery-beat", f"sqlite:///{database}",
               "--out", "imported.yaml", "--start", START, "--days", "7", cwd=tmp_path)
    assert done.returncode == 1  # the solar row is refused; every other row is written
    assert done.stderr.splitlines() == [
        "entry 'lights-on': solar schedule (sunset at -33.87, 151.21) refused: beatkeeper fires by interval, "
        "cron or date, never by the sun's position; keep it on Celery beat or give it a cron time"]
    report = done.stdout.splitlines()
    assert report[-1] == "imported 5 of 6 entries into imported.yaml; compared 2026-06-01 .. 2026-06-08"
    assert "office-hours: same fire instants as Celery from 2026-06-01 to 2026-06-08" in report
    assert "report-sydney: expires 2026-07-31T00:00:00+00:00 is not carried: beatkeeper keeps firing after it" \
        in report
    written = (tmp_path / "imported.yaml").read_text()
    for fragment in ("hourly-off:\n  task: shapes.poll\n  every: 1h\n  enabled: false\n",
                     "poll-15m:\n  task: shapes.poll\n  every: 15m\n  queue: singleton\n  expires: 10m\n  phase: 420\n",
                     "  timezone: Australia/Sydney\n  args:\n  - 1\n  - a\n  kwargs:\n    region: nsw\n",
                     "clocked-once:\n  task: shapes.nightly\n  at: '2026-06-03T05:00:00+00:00'\n"):
        assert fragment in written

    modules = {"BEATKEEPER_TASK_MODULES": "tests.tasks.importers.shape_tasks"}
    checked = run("-m", "tasks.cli", "check", "--config", "imported.yaml", cwd=tmp_path, **modules)
    assert checked.returncode == 0, checked.stderr
    planned = run("-m", "tasks.cli", "plan", "--config", "imported.yaml", "--start", START, "--days", "7", "--json",
                  cwd=tmp_path, **modules)
    assert planned.returncode == 0, planned.stderr
    entries = json.loads(planned.stdout)["entries"]
    assert entries["hourly-off"]["fire_count"] == 0 and entries["hourly-off"]["left_out"]
    for name, instants in expected.items():
        assert entries[name]["fires_utc"] == instants, name


def test_a_database_that_cannot_be_read_is_one_line_naming_it_with_the_password_masked(tmp_path):
    missing = tmp_path / "none.sqlite3"
    done = run("-m", "tasks.cli", "import", "--from-django-celery-beat", f"sqlite:///{missing}", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (2, f"beatkeeper: sqlite:///{missing}: no such SQLite file\n")
    assert not missing.exists()
    refused = run("-m", "tasks.cli", "import", "--from-django-celery-beat",
                  "postgresql+psycopg2://beat:s3cret@127.0.0.1:1/beat", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.startswith("beatkeeper: postgresql+psycopg2://beat:***@127.0.0.1:1/beat: cannot read "
                                     "django-celery-beat's tables: ")
    assert len(refused.stderr.splitlines()) == 1 and "s3cret" not in refused.stderr
