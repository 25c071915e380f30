"""Call-time pause: flags in Redis checked before each run; no restart; ``--until`` expires by itself."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from tasks import headers
from tasks.cli import main
from tasks.guard import standard_middlewares
from tests.app_wiring import set_middlewares
from tasks.guard.pause import PAUSES_KEY, Pause, PauseMiddleware, PauseStore, PauseUntilInPast
from tasks.policy import RunPolicy
from tasks.guard.run import Run, RunStatus
from tests.monitoring.databases import app_history, drained_records, sqlite_url  # noqa: F401
from tests.servers import wait_until
from tests.tasks import history_tasks as ht
from tests.run_states import run_state

T0 = 1_780_000_000.0


def a_run(task: str = "jobs.sync", entry: str = "") -> Run:
    return Run(task_name=task, task_id="id", args=(), kwargs={}, policy=RunPolicy(), lock_key=None,
               received_at=T0, entry=entry)


@pytest.fixture
def store(redis_client):
    return PauseStore(redis_client)


# -- the flag store -----------------------------------------------------------------------------

def test_a_pause_reads_back_with_reason_who_and_until(store):
    store.pause("sync", now=T0, until=T0 + 600, reason="pricing lock", by="ops@host")
    assert store.active_pause(["sync"], now=T0 + 1) == Pause("sync", paused_at=T0, until=T0 + 600,
                                                            reason="pricing lock", by="ops@host")


@pytest.mark.parametrize("offset_s, paused", [
    pytest.param(-1, True, id="before_until_is_paused"),
    pytest.param(0, False, id="at_until_runs_again"),
    pytest.param(3600, False, id="after_until_runs_again"),
])
def test_until_ends_the_pause_by_itself(store, offset_s, paused):
    store.pause("sync", now=T0, until=T0 + 600)
    assert (store.active_pause(["sync"], now=T0 + 600 + offset_s) is not None) is paused


def test_a_pause_without_until_lasts_until_resumed(store):
    store.pause("sync", now=T0)
    assert store.active_pause(["sync"], now=T0 + 10 * 365 * 86400) is not None
    assert store.resume("sync") is True
    assert store.active_pause(["sync"], now=T0) is None
    assert store.resume("sync") is False


def test_until_in_the_past_is_refused(store, redis_client):
    with pytest.raises(PauseUntilInPast) as refused:
        store.pause("sync", now=T0, until=T0)
    assert (refused.value.name, refused.value.until) == ("sync", T0)
    assert not redis_client.exists(PAUSES_KEY)


def test_listing_shows_pauses_in_force_and_forgets_expired_ones(store, redis_client):
    store.pause("b", now=T0, reason="r")
    store.pause("a", now=T0, until=T0 + 60)
    store.pause("old", now=T0, until=T0 + 10)
    assert [p.name for p in store.list_pauses(now=T0 + 30)] == ["a", "b"]
    assert sorted(redis_client.hkeys(PAUSES_KEY)) == ["a", "b"]


# -- the middleware -----------------------------------------------------------------------------

@pytest.mark.parametrize("paused_name, run, skipped", [
    pytest.param("jobs.sync", a_run("jobs.sync", entry="nightly"), True, id="pausing_a_task_pauses_all_its_entries"),
    pytest.param("nightly", a_run("jobs.sync", entry="nightly"), True, id="pausing_an_entry_pauses_its_runs"),
    pytest.param("nightly", a_run("jobs.sync", entry="hourly"), False, id="other_entries_of_the_task_still_run"),
    pytest.param("nightly", a_run("jobs.sync"), False, id="hand_runs_are_not_paused_by_an_entry_pause"),
])
def test_middleware_skips_runs_of_a_paused_entry_or_task(redis_client, paused_name, run, skipped):
    PauseStore(redis_client).pause(paused_name, now=T0, reason="maintenance")
    skip = PauseMiddleware(redis_client, clock=lambda: T0 + 1).before_run(run)
    assert (skip is not None) is skipped
    if skipped:
        assert skip.status is RunStatus.SKIPPED_PAUSED and "maintenance" in skip.reason


# -- on a real worker, through the CLI ----------------------------------------------------------

def run_and_wait(task, *args, **options):
    result = task.apply_async(args, **options)
    wait_until(lambda: result.state not in ("PENDING", "STARTED"), timeout_s=20, what=f"{task.name} to end")
    return result


def test_pause_takes_effect_on_the_next_run_and_resume_likewise(app_history, worker, redis_client):
    before = run_and_wait(ht.ok, "p")
    paused = CliRunner().invoke(main, ["pause", "tests.history.ok", "--reason", "pricing lock"])
    assert paused.exit_code == 0, paused.output
    during = run_and_wait(ht.ok, "p")
    resumed = CliRunner().invoke(main, ["resume", "tests.history.ok"])
    assert resumed.output.strip() == "tests.history.ok resumed"
    after = run_and_wait(ht.ok, "p")
    assert [run_state(before), run_state(during), run_state(after)] == ["SUCCESS", "SKIPPED_PAUSED", "SUCCESS"]
    assert int(redis_client.get(ht.ran_key("p"))) == 2  # the paused run did no work
    records = {r.task_id: r for r in drained_records(app_history, expected=3)}
    assert records[during.id].status == "skipped_paused" and "pricing lock" in records[during.id].reason
    assert records[during.id].started_at is None


def test_pausing_an_entry_leaves_the_tasks_other_entries_running(app_history, worker):
    assert CliRunner().invoke(main, ["pause", "nightly-sync", "--force"]).exit_code == 0
    fire_at = datetime.now(timezone.utc)
    nightly = run_and_wait(ht.ok, "e", headers=headers.dispatch_headers("nightly-sync", fire_at))
    hourly = run_and_wait(ht.ok, "e", headers=headers.dispatch_headers("hourly-sync", fire_at))
    assert (run_state(nightly), run_state(hourly)) == ("SKIPPED_PAUSED", "SUCCESS")


def test_until_expires_on_its_own_on_a_running_worker(app, app_history, worker, redis_client):
    clock = {"now": datetime.now(timezone.utc).timestamp()}
    chain = [PauseMiddleware(redis_client, clock=lambda: clock["now"]) if isinstance(m, PauseMiddleware) else m
             for m in standard_middlewares(app)]
    set_middlewares(app, chain)
    until = datetime.now(timezone.utc) + timedelta(hours=2)
    assert CliRunner().invoke(main, ["pause", "tests.history.ok", "--until", until.isoformat()]).exit_code == 0
    assert run_state(run_and_wait(ht.ok, "u")) == "SKIPPED_PAUSED"
    clock["now"] = until.timestamp() + 1  # two hours later, on the injected clock
    assert run_and_wait(ht.ok, "u").state == "SUCCESS"


@pytest.mark.parametrize("args, message", [
    pytest.param(["pause", "no.such.thing"], "neither a schedule entry nor a registered task",
                 id="unknown_name_is_refused_without_force"),
    pytest.param(["pause", "tests.history.ok", "--until", "2001-01-01T00:00"], "is not in the future",
                 id="until_in_the_past_is_refused"),
    pytest.param(["pause", "tests.history.ok", "--until", "tomorrow"], "not an ISO-8601 date-time",
                 id="until_must_be_iso"),
])
def test_pause_command_refuses_bad_input_with_exit_2(app, redis_client, args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and message in result.output
    assert not redis_client.exists(PAUSES_KEY)


def test_pause_command_records_who_and_why(app, redis_client):
    result = CliRunner().invoke(main, ["pause", "tests.history.ok", "--reason", "pricing lock", "--by", "ana"])
    assert result.output.strip() == "tests.history.ok paused by ana until resumed: pricing lock"
    assert PauseStore(redis_client).list_pauses(now=datetime.now(timezone.utc).timestamp())[0].by == "ana"
