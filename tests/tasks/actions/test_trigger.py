"""``beatkeeper trigger`` and ``beatkeeper dead-letters`` on a real worker: the entry beat
published (stored and published by the real scheduler, in-process) runs by hand with its
arguments and its policy, as a manual run of that entry."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitoring.events import read_events
from monitoring.metrics import metrics_registry
from tasks.cli import main
from tests.app_wiring import history_store_for
from tasks.guard.identity import DEAD_LETTERS_KEY, DeadLetter, dead_letters
from tasks.actions.trigger import TRIGGERED_EVENT, TriggerError, requeue_dead_letter, trigger_entry
from tests.tasks.beat.harness import BeatDriver
from tests.run_states import run_state
from tests.servers import wait_until
from tests.tasks import guarded_tasks as gt
from tests.tasks.conftest import start_worker_process

pytestmark = pytest.mark.process

ENTRY = "trig-entry"
#: The task declares overlap "allow": only the entry's "skip" can refuse the second run.
SCHEDULE = {ENTRY: {"task": gt.allow_probe.name, "cron": "0 3 1 1 *", "args": ["trig"],
                    "kwargs": {"record": True}, "overlap": "skip", "queue": "default"}}


@pytest.fixture
def published(app, redis_client, monkeypatch, tmp_path):
    """What beat stores and publishes at start, for SCHEDULE (no dispatch: it fires once a year)."""
    BeatDriver(app, monkeypatch, tmp_path, SCHEDULE, start=datetime(2026, 11, 2, tzinfo=timezone.utc))
    monkeypatch.undo()  # the clock and variables: the worker and the trigger run in real time
    return ENTRY


def test_trigger_runs_the_entry_with_its_arguments_and_a_second_is_skipped_by_its_policy(
        app, processes, redis_client, probe_for, published):
    worker = start_worker_process(processes, "-P", "prefork", "-c", "2", "-Q", "default", name="trig")
    probe = probe_for("trig")
    probe.block()
    first_id = trigger_entry(app, ENTRY, who="ops@test")
    [entered] = wait_until(lambda: probe.entered(), timeout_s=30, what="the triggered run to start")
    assert entered["task_id"] == first_id and entered["entry"] == ENTRY  # its arguments, its entry's name

    second = app.AsyncResult(trigger_entry(app, ENTRY, who="ops@test"))
    wait_until(lambda: run_state(second) == "SKIPPED_OVERLAP", timeout_s=30, what="the second trigger skipped")
    probe.unblock()
    first = app.AsyncResult(first_id)
    wait_until(lambda: first.state == "SUCCESS", timeout_s=30, what="the first trigger to succeed")
    assert probe.ran() == 1 and probe.violations() == 0

    store = history_store_for(app)

    def drained() -> list:
        store.drain()
        found = store.query(entry=ENTRY)
        return found if len(found) == 2 else []

    rows = wait_until(drained, timeout_s=30, what="both runs in the history")
    assert {(r.task_id, r.status) for r in rows} == {(first_id, "success"), (second.id, "skipped_overlap")}
    assert all(r.fire_at is None for r in rows)  # manual: no scheduled instant, a fresh run id each
    runs = metrics_registry(redis_client).get_sample_value(
        "beatkeeper_schedule_runs_total", {"entry": ENTRY, "name": gt.allow_probe.name, "status": "success"})
    assert runs == 1
    events = [e for e in read_events(redis_client, kind=TRIGGERED_EVENT) if e.subject == ENTRY]
    assert [e.data["who"] for e in events] == ["ops@test", "ops@test"]
    # Flower and the worker's log name it a manual run of the entry (Celery's shadow name)
    assert f"{gt.allow_probe.name} [{ENTRY} @ manual]" in Path(worker.log_path).read_text()


def test_trigger_of_an_entry_beat_never_published_is_one_line_exit_2(app, redis_client):
    with pytest.raises(TriggerError, match="entry 'no-such' is not scheduled"):
        trigger_entry(app, "no-such", who="t")
    result = CliRunner().invoke(main, ["trigger", "no-such"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "beatkeeper: entry 'no-such' is not scheduled: beat has published no such entry "
        "(`beatkeeper plan` lists the entries; is beat running?)"]


def test_dead_letters_lists_and_requeues_one_as_a_manual_run(app, worker, redis_client, probe_for, published):
    letter = DeadLetter(run_id=f"{ENTRY}|2026-01-01T03:00:00+00:00", task=gt.allow_probe.name,
                        task_id=str(uuid.uuid4()), entry=ENTRY, fire_at="2026-01-01T03:00:00+00:00",
                        args=["dead"], kwargs={"record": True}, deaths=4, max_redeliveries=3, at=1.7e9,
                        last_holder=None)
    redis_client.lpush(DEAD_LETTERS_KEY, json.dumps(letter.__dict__))
    listed = CliRunner().invoke(main, ["dead-letters"])
    assert listed.exit_code == 0 and listed.output.startswith(f"2023-11-14T22:13:20Z  {letter.run_id}  task=")
    as_json = CliRunner().invoke(main, ["dead-letters", "--json"])
    assert json.loads(as_json.output)["run_id"] == letter.run_id

    requeued = CliRunner().invoke(main, ["dead-letters", "--requeue", letter.run_id, "--by", "ops@test"])
    assert requeued.exit_code == 0, requeued.output
    result = app.AsyncResult(requeued.output.strip())
    wait_until(lambda: result.state == "SUCCESS", timeout_s=30, what="the requeued run to succeed")
    [entered] = probe_for("dead").entered()
    assert entered["entry"] == ENTRY and entered["task_id"] == result.id != letter.task_id
    assert dead_letters(redis_client) == []  # it left the list
    with pytest.raises(TriggerError, match="no dead letter"):
        requeue_dead_letter(app, letter.run_id, who="again")


def test_version_names_the_installed_package():
    from importlib import metadata

    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"beatkeeper {metadata.version('beatkeeper')}\n"
