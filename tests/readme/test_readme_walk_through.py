"""README's "Add a task and a schedule entry", followed literally: its module and schedule
written where it says (tasks/user/, schedules/user.yaml, in this checkout, removed afterwards),
no variable set, its commands run, beat and a worker started as the Procfile starts them, the
task executed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitoring.metrics import metrics_registry
from tests.readme import snippets
from tests.readme.test_readme_snippets import ADD_A_TASK
from tests.servers import wait_until

pytestmark = pytest.mark.process
START_TIMEOUT_S = 90  # cold imports on a busy 2-core machine


def procfile_command(name: str) -> list[str]:
    for line in (snippets.README.parent / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].split()
    raise AssertionError(f"no {name} in the Procfile")


@pytest.fixture
def readme_files_in_their_homes():
    """The README's task module and schedule written at the paths it names, in this checkout."""
    root = snippets.README.parent
    blocks = [b for b in snippets.section(ADD_A_TASK) if b.lang in ("python", "yaml")]
    paths = [root / b.file_name() for b in blocks]
    clobbered = [str(p) for p in paths if p.exists()]
    if clobbered:
        pytest.fail(f"{clobbered} exist already: this test will not overwrite your files", pytrace=False)
    try:
        for path, block in zip(paths, blocks):
            path.write_text(block.text)
        yield paths
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


def test_the_add_a_task_walk_through_runs_its_task(processes, redis_client, tmp_path, readme_files_in_their_homes):
    blocks = snippets.section(ADD_A_TASK)
    setup, trigger = [b for b in blocks if b.lang == "bash"]
    assert snippets.exported(setup) == {}  # the homes need no variable
    env = {k: v for k, v in os.environ.items() if k not in ("BEATKEEPER_TASK_MODULES", "BEATKEEPER_SCHEDULE")}

    for command in snippets.commands(setup):
        if command[0] == "export":
            continue
        if command == ["make", "run"]:  # the platform: its beat and worker, as the Procfile runs them
            celery = [str(Path(sys.executable).parent / "celery")]
            worker = processes.start(celery + procfile_command("worker")[1:], name="worker", env=env)
            beat = processes.start(celery + procfile_command("beat")[1:], name="beat", env=env)
            continue
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"

    # Beat started with the README's schedule: both entries registered, nothing refused.
    registered = ("redbeat:sync-feed", "redbeat:alert-matcher")
    wait_until(lambda: beat.poll() is not None or redis_client.exists(*registered) == 2,
               timeout_s=START_TIMEOUT_S, what="beat to register the README's entries")
    assert beat.poll() is None, beat.log_path.read_text()
    wait_until(lambda: worker.poll() is not None or b"ready." in worker.log_path.read_bytes(),
               timeout_s=START_TIMEOUT_S, what="the worker to be ready")
    assert worker.poll() is None, worker.log_path.read_text()

    # The cron is at 03:00 Sydney: the README's hand trigger runs the task now.
    [call] = snippets.commands(trigger)
    sent = subprocess.run(call, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert sent.returncode == 0, sent.stderr

    def succeeded():
        return metrics_registry(redis_client).get_sample_value(
            "beatkeeper_schedule_runs_total", {"entry": "", "name": "myjobs.sync_feed", "status": "success"})

    assert wait_until(succeeded, timeout_s=60, what="myjobs.sync_feed to run") == 1
    assert "Traceback" not in beat.log_path.read_text() + worker.log_path.read_text()
