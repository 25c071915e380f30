"""Run identity against real Redis: the claim script's contract, one middleware at a time with an
injected clock, then the app's standard chain and a real in-process worker."""
from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import redis
from celery import signals

from monitoring.alerts import Severity
from monitoring.events import read_events
from monitoring.metrics import RUNS_KEY, invocation_window_key
from monitoring.rules.base import PlatformKeys, RuleContext
from monitoring.rules.events import EventsRule
from monitoring.rules.settings import RuleSettings
from tasks import headers
from tasks.guard import standard_middlewares
from tasks.guard.identity import (HAND_RUN_RETENTION_S, REDELIVERY_GRACE_S, RUN_KEY_PREFIX, ClaimState, RunClaim,
                            RunIdentityMiddleware, claim_record, dead_letters, run_id_for, run_id_of)
from tests.app_wiring import installed_middlewares, set_middlewares
from tasks.policy import RunPolicy
from tasks.guard.run import Outcome, Run, RunStatus
from tests.tasks.beat import ledger_tasks as lt
from tests.servers import wait_until
from tests.tasks.conftest import call_guarded
from tests.run_states import run_state

FIRE_AT = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
TASK = "tests.identity.job"
LEASE_TTL_S = 5.0


class FakeTime:
    """Wall clock and monotonic clock that move only when the middleware sleeps; ``on_sleep``
    lets a test change Redis at a given poll (a lease lapsing, as a dead holder's does)."""

    def __init__(self, on_sleep=None):
        self.now = 1_000.0
        self.sleeps = 0
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(self.sleeps)


class RecordingRenewer:
    """Stands in for the renewal thread: records what is watched."""

    def __init__(self):
        self.watched: list = []

    def watch(self, lock, *, on_lost=None) -> None:
        self.watched.append(lock)

    def unwatch(self, lock) -> None:
        if lock in self.watched:
            self.watched.remove(lock)


def run_of(*, task_id: str | None = None, entry: str = "feeds", fire_at: datetime | None = FIRE_AT,
           retries: int = 0, expires_at: float | None = None) -> Run:
    return Run(task_name=TASK, task_id=task_id or uuid.uuid4().hex, args=("a",), kwargs={"n": 1},
               policy=RunPolicy(lock_ttl_s=LEASE_TTL_S), lock_key=None, received_at=0.0, entry=entry,
               fire_at=fire_at, retries=retries, hostname="host-1", expires_at=expires_at)


def ended(status: RunStatus) -> Outcome:
    return Outcome(status=status, finished_at=0.0)


@pytest.fixture
def fake_time():
    return FakeTime()


@pytest.fixture
def renewer():
    return RecordingRenewer()


@pytest.fixture
def identity(redis_client, fake_time, renewer):
    return RunIdentityMiddleware(redis_client, max_redeliveries=3, renewer=renewer, clock=fake_time.clock,
                                 monotonic=fake_time.clock, sleep=fake_time.sleep, poll_s=0.05)


def die(redis_client, run: Run) -> None:
    """The worker running ``run`` died: its lease lapses (as its TTL would) and no end is recorded."""
    redis_client.delete(RUN_KEY_PREFIX + run_id_of(run))


# -- run ids --------------------------------------------------------------------------------

@pytest.mark.parametrize("first, second, same", [
    pytest.param(dict(entry="feeds", fire_at=FIRE_AT, task_id="t1"), dict(entry="feeds", fire_at=FIRE_AT, task_id="t2"),
                 True, id="two_deliveries_of_one_instant_share_a_run_id"),
    pytest.param(dict(entry="feeds", fire_at=FIRE_AT, task_id="t1"),
                 dict(entry="feeds", fire_at=FIRE_AT.astimezone(ZoneInfo("Australia/Sydney")), task_id="t2"),
                 True, id="the_instant_not_its_zone_names_the_run"),
    pytest.param(dict(entry="feeds", fire_at=FIRE_AT, task_id="t1"),
                 dict(entry="feeds", fire_at=FIRE_AT + timedelta(seconds=1), task_id="t1"),
                 False, id="the_next_instant_is_another_run"),
    pytest.param(dict(entry="feeds", fire_at=FIRE_AT, task_id="t1"),
                 dict(entry="prices", fire_at=FIRE_AT, task_id="t1"), False, id="another_entry_is_another_run"),
    pytest.param(dict(entry="", fire_at=None, task_id="t1"), dict(entry="", fire_at=None, task_id="t2"),
                 False, id="each_hand_trigger_gets_a_fresh_run_id"),
])
def test_run_ids(first, second, same):
    assert (run_id_for(**first) == run_id_for(**second)) is same


# -- one middleware, injected time ------------------------------------------------------------

def test_the_first_delivery_claims_and_a_concurrent_one_is_a_duplicate(identity, renewer):
    first, second = run_of(), run_of()
    assert identity.before_run(first) is None
    assert first.fencing_token == 1 and len(renewer.watched) == 1
    skip = identity.before_run(second)
    assert skip.status is RunStatus.SKIPPED_DUPLICATE and skip.store_result
    assert first.task_id in skip.reason
    identity.after_run(first, ended(RunStatus.SUCCESS))
    assert renewer.watched == []


@pytest.mark.parametrize("first_ended, second_runs", [
    pytest.param(RunStatus.SUCCESS, False, id="after_success_a_delivery_is_a_duplicate"),
    pytest.param(RunStatus.SKIPPED_PAUSED, False, id="after_a_deliberate_skip_a_delivery_is_a_duplicate"),
    pytest.param(RunStatus.SKIPPED_OVERLAP, False, id="after_an_overlap_skip_a_delivery_is_a_duplicate"),
    pytest.param(RunStatus.FAILURE, True, id="after_failure_another_delivery_runs_it_again"),
])
def test_what_a_later_delivery_does_after_the_first_ended(identity, redis_client, first_ended, second_runs):
    first, second = run_of(), run_of()
    assert identity.before_run(first) is None
    identity.after_run(first, ended(first_ended))
    skip = identity.before_run(second)
    assert (skip is None) is second_runs
    record = claim_record(redis_client, run_id_of(first))
    if second_runs:
        assert second.fencing_token == 2 and record.state is ClaimState.RUNNING and record.deaths == 0
    else:
        assert skip.status is RunStatus.SKIPPED_DUPLICATE and record.fence == 1


def test_a_retrying_run_is_claimed_by_its_own_retry_only(identity, redis_client):
    first = run_of(task_id="attempt-task")
    assert identity.before_run(first) is None
    identity.after_run(first, ended(RunStatus.RETRY))
    other = identity.before_run(run_of())
    stale = identity.before_run(run_of(task_id="attempt-task", retries=0))
    assert other.status is stale.status is RunStatus.SKIPPED_DUPLICATE
    retry = run_of(task_id="attempt-task", retries=1)
    assert identity.before_run(retry) is None
    identity.after_run(retry, ended(RunStatus.SUCCESS))
    record = claim_record(redis_client, run_id_of(retry))
    assert (record.state, record.attempt, record.fence, record.deaths) == (ClaimState.SUCCEEDED, 1, 2, 0)


def test_a_run_whose_worker_died_runs_again_with_a_higher_fencing_token(identity, redis_client):
    first, second = run_of(), run_of()
    assert identity.before_run(first) is None
    die(redis_client, first)
    assert identity.before_run(second) is None
    assert second.fencing_token == first.fencing_token + 1
    record = claim_record(redis_client, run_id_of(second))
    assert (record.deaths, record.holder["task_id"]) == (1, second.task_id)


@pytest.mark.parametrize("cap", [pytest.param(0, id="cap_0_dead_letters_at_the_first_death"),
                                 pytest.param(2, id="cap_2_runs_three_times_then_dead_letters")])
def test_a_run_that_kills_its_worker_every_time_is_dead_lettered_past_the_cap(redis_client, fake_time, renewer, cap):
    identity = RunIdentityMiddleware(redis_client, max_redeliveries=cap, renewer=renewer, clock=fake_time.clock,
                                     monotonic=fake_time.clock, sleep=fake_time.sleep)
    executed = 0
    while True:
        run = run_of(task_id="the-message")
        skip = identity.before_run(run)
        if skip is not None:
            break
        executed += 1
        die(redis_client, run)
    assert skip.status is RunStatus.DEAD_LETTERED and skip.store_result
    assert executed == cap + 1
    [event] = read_events(redis_client, kind="run_dead_lettered")
    assert (event.subject, event.data["deaths"], event.data["max_redeliveries"]) == ("feeds", cap + 1, cap)
    assert event.data["run_id"] == run_id_of(run)
    [letter] = dead_letters(redis_client)
    assert (letter.task, letter.args, letter.kwargs, letter.deaths) == (TASK, ["a"], {"n": 1}, cap + 1)
    assert letter.last_holder["task_id"] == "the-message"
    later = identity.before_run(run_of())
    assert later.status is RunStatus.SKIPPED_DUPLICATE and "dead" in later.reason
    assert len(read_events(redis_client, kind="run_dead_lettered")) == 1
    assert claim_record(redis_client, run_id_of(run)).state is ClaimState.DEAD


def test_a_redelivered_message_waits_out_its_dead_first_delivery_then_runs(redis_client, renewer):
    lapse_at_poll = 7
    first = run_of(task_id="the-message")
    time = FakeTime(on_sleep=lambda n: n == lapse_at_poll and die(redis_client, first))
    identity = RunIdentityMiddleware(redis_client, renewer=renewer, clock=time.clock, monotonic=time.clock,
                                     sleep=time.sleep)
    assert identity.before_run(first) is None
    redelivery = run_of(task_id="the-message")
    assert identity.before_run(redelivery) is None
    assert time.sleeps == lapse_at_poll
    assert redelivery.fencing_token == 2 and claim_record(redis_client, run_id_of(first)).deaths == 1


def test_a_redelivery_while_the_first_delivery_still_runs_is_skipped_and_leaves_its_result(identity, fake_time):
    first = run_of(task_id="the-message")
    assert identity.before_run(first) is None  # alive: its lease stays
    skip = identity.before_run(run_of(task_id="the-message"))
    assert skip.status is RunStatus.SKIPPED_DUPLICATE and not skip.store_result
    waited_s = fake_time.sleeps * identity.poll_s
    # it waited out the lease's remaining TTL plus the grace, then gave up on a live holder
    assert LEASE_TTL_S + REDELIVERY_GRACE_S - 0.5 <= waited_s <= LEASE_TTL_S + REDELIVERY_GRACE_S + 2 * identity.poll_s


@pytest.mark.parametrize("same_message, stores", [
    pytest.param(True, False, id="the_same_message_again_never_overwrites_its_success"),
    pytest.param(False, True, id="another_message_stores_its_own_duplicate_state"),
])
def test_a_duplicate_after_success_stores_a_result_only_under_its_own_task_id(identity, same_message, stores):
    first = run_of(task_id="the-message")
    identity.before_run(first)
    identity.after_run(first, ended(RunStatus.SUCCESS))
    skip = identity.before_run(run_of(task_id="the-message" if same_message else None))
    assert skip.status is RunStatus.SKIPPED_DUPLICATE and skip.store_result is stores


def test_a_redelivery_that_expires_while_waiting_ends_expired(identity, fake_time):
    identity.before_run(run_of(task_id="the-message"))
    skip = identity.before_run(run_of(task_id="the-message", expires_at=fake_time.now + 1.0))
    assert skip.status is RunStatus.EXPIRED
    assert fake_time.sleeps == pytest.approx(1.0 / identity.poll_s, abs=1)


def test_a_lapsed_lease_nobody_claimed_since_still_records_its_end(identity, redis_client):
    run = run_of()
    identity.before_run(run)
    die(redis_client, run)  # e.g. Redis stalled past the TTL while the body ran
    identity.after_run(run, ended(RunStatus.SUCCESS))
    assert claim_record(redis_client, run_id_of(run)).state is ClaimState.SUCCEEDED


def test_an_end_recorded_after_a_newer_claim_leaves_the_newer_record_alone(identity, redis_client):
    stale, newer = run_of(), run_of()
    identity.before_run(stale)
    die(redis_client, stale)
    identity.before_run(newer)
    identity.after_run(stale, ended(RunStatus.SUCCESS))
    record = claim_record(redis_client, run_id_of(newer))
    assert (record.state, record.holder["task_id"], record.fence) == (ClaimState.RUNNING, newer.task_id, 2)
    identity.after_run(newer, ended(RunStatus.FAILURE))
    assert claim_record(redis_client, run_id_of(newer)).state is ClaimState.FAILED


def test_the_end_of_a_run_is_retried_through_a_redis_outage(identity, redis_client, fake_time, monkeypatch):
    run = run_of()
    identity.before_run(run)
    finish, failures = RunClaim.finish, []

    def unreachable_then_back(claim, state):
        if len(failures) < 3:
            failures.append(state)
            raise redis.ConnectionError("Redis is away")
        return finish(claim, state)

    monkeypatch.setattr(RunClaim, "finish", unreachable_then_back)
    identity.after_run(run, ended(RunStatus.SUCCESS))
    assert len(failures) == fake_time.sleeps == 3
    assert claim_record(redis_client, run_id_of(run)).state is ClaimState.SUCCEEDED


def test_a_claim_call_retried_after_a_lost_reply_is_still_ours(redis_client):
    claim = RunClaim(redis_client, "feeds|x", ttl_s=LEASE_TTL_S, holder={"task_id": "t"}, task_id="t", attempt=0,
                     max_redeliveries=3, retention_s=60)
    claim.register_scripts()
    token = uuid.uuid4().hex.encode()
    assert claim.do_acquire(token) and claim.do_acquire(token)
    assert claim.verdict == "claimed" and claim.fencing_token == 1


@pytest.mark.parametrize("scheduled, kept_s", [
    pytest.param(True, 7_200, id="a_scheduled_run_is_remembered_for_the_retention"),
    pytest.param(False, HAND_RUN_RETENTION_S, id="a_hand_triggered_run_is_remembered_briefly"),
])
def test_records_expire_after_their_retention(redis_client, renewer, scheduled, kept_s):
    identity = RunIdentityMiddleware(redis_client, retention_s=7_200, renewer=renewer)
    run = run_of() if scheduled else run_of(entry="", fire_at=None)
    identity.before_run(run)
    identity.after_run(run, ended(RunStatus.SUCCESS))
    assert kept_s - 5 < redis_client.ttl(RUN_KEY_PREFIX + run_id_of(run) + ":meta") <= kept_s
    assert not redis_client.exists(RUN_KEY_PREFIX + run_id_of(run))  # the lease is gone with the run


def test_many_simultaneous_deliveries_of_one_instant_claim_it_once(redis_client):
    identity = RunIdentityMiddleware(redis_client, renewer=RecordingRenewer())
    deliveries = 24
    start = threading.Barrier(deliveries)
    verdicts: list = []

    def deliver() -> None:
        run = run_of()
        start.wait(timeout=10)
        verdicts.append(identity.before_run(run))

    threads = [threading.Thread(target=deliver) for _ in range(deliveries)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert len(verdicts) == deliveries
    assert sum(v is None for v in verdicts) == 1
    assert {v.status for v in verdicts if v is not None} == {RunStatus.SKIPPED_DUPLICATE}


# -- the app's standard chain -----------------------------------------------------------------

@pytest.fixture
def standard_chain(app, redis_client):
    previous = installed_middlewares(app)
    set_middlewares(app, standard_middlewares(app))
    yield
    if previous is None:
        set_middlewares(app, None)
    else:
        set_middlewares(app, previous)


def runs_counted(redis_client, status: str, *, entry: str, task: str) -> int:
    return int(redis_client.hget(RUNS_KEY, json.dumps([entry, task, status], separators=(",", ":"))) or 0)


def test_the_standard_chain_executes_a_doubly_delivered_instant_once(standard_chain, redis_client):
    sent = headers.dispatch_headers("ledger-entry", FIRE_AT)
    verdicts = [call_guarded(lt.record, request=dict(sent)) for _ in range(2)]
    hand = [call_guarded(lt.record) for _ in range(2)]
    assert verdicts == ["ran", "skipped"] and hand == ["ran", "ran"]
    counts = lt.ledger(redis_client)
    assert counts.pop(f"ledger-entry|{FIRE_AT.isoformat()}") == 1
    assert sorted(counts.values()) == [1, 1]  # one per hand trigger
    # the duplicate spent no budget: three admitted runs, not four
    assert redis_client.zcard(invocation_window_key(lt.record.name)) == 3


def test_history_and_metrics_record_the_duplicate(standard_chain, redis_client, app):
    from tests.app_wiring import history_store_for

    sent = headers.dispatch_headers("recorded-entry", FIRE_AT)
    assert [call_guarded(lt.record, request=dict(sent)) for _ in range(2)] == ["ran", "skipped"]
    assert runs_counted(redis_client, "skipped_duplicate", entry="recorded-entry", task=lt.record.name) == 1
    assert runs_counted(redis_client, "success", entry="recorded-entry", task=lt.record.name) == 1
    spooled = [json.loads(raw) for raw in redis_client.lrange(history_store_for(app).spool_key, 0, -1)]
    assert sorted(r["status"] for r in spooled if r["entry"] == "recorded-entry") == ["skipped_duplicate", "success"]


def test_a_real_worker_never_overwrites_a_success_with_its_duplicate_delivery(standard_chain, worker, redis_client):
    finished: list[str] = []

    def count_end(task_id=None, **_):
        finished.append(task_id)

    signals.task_postrun.connect(count_end, weak=False)
    try:
        sent = headers.dispatch_headers("side-entry", FIRE_AT)
        task_id = uuid.uuid4().hex
        first = lt.side_effect.apply_async(("k",), task_id=task_id, headers=sent)
        assert first.get(timeout=20)
        again = lt.side_effect.apply_async(("k",), task_id=task_id, headers=sent)  # the same message, re-sent
        other = lt.side_effect.apply_async(("k",), headers=sent)  # a second dispatch of the instant
        wait_until(lambda: finished.count(task_id) == 2 and other.id in finished, timeout_s=20,
                   what="both duplicates to be handled")
    finally:
        signals.task_postrun.disconnect(count_end)
    assert again.state == "SUCCESS"
    assert run_state(other) == "SKIPPED_DUPLICATE"
    assert lt.ledger(redis_client) == {f"side-entry|{FIRE_AT.isoformat()}": 1}


def test_the_monitor_alerts_on_a_dead_lettered_run(identity, redis_client):
    rule = EventsRule()
    context = RuleContext(now=1_000.0, client=redis_client, specs={}, settings=RuleSettings(), keys=PlatformKeys(),
                          first_start=0.0)
    assert rule.evaluate(context) == []  # the monitor's cursor starts here
    identity.max_redeliveries = 0
    run = run_of()
    identity.before_run(run)
    die(redis_client, run)
    assert identity.before_run(run_of()).status is RunStatus.DEAD_LETTERED
    context.now += 10
    [alert] = [a for a in rule.evaluate(context) if a.rule == "run_dead_lettered"]
    assert (alert.subject, alert.severity) == ("feeds", Severity.CRITICAL)
