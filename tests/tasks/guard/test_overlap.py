"""Policies, the middleware contract and the overlap middleware, against real Redis:
the guarded path called directly (``apply``) from many threads, and a real in-process worker."""
from __future__ import annotations

import inspect
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from monitoring.events import read_events
from tasks import headers
from tests.app_wiring import set_published_policies
from tasks.locks.fenced import FencedLock
from tasks.guard.middleware import Middleware
from tests.app_wiring import set_middlewares
from tasks.guard.overlap import OverlapMiddleware, skipped_counts
from tasks.policy import (OverlapPolicy, PolicyError, PublishedPolicies, RunPolicy, declared_fields,
                          lock_key_for, publish_entry_policies, resolve_policy)
from tasks.guard.run import RunStatus, Skip
from tests.servers import wait_until
from tests.tasks import guarded_tasks as gt
from tests.tasks.conftest import call_guarded, guard_middlewares, lock_key_of, publish_entry
from tests.run_states import run_state

pytestmark = pytest.mark.usefixtures("guard_only")

FIRE_AT = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def scheduled(entry: str, task, **policy) -> dict:
    """Headers of a scheduled dispatch of ``task`` whose entry sets ``policy`` (published, as beat does)."""
    publish_entry(entry, task, **policy)
    return headers.dispatch_headers(entry, FIRE_AT)


# -- policy resolution ----------------------------------------------------------------------

@pytest.mark.parametrize("entry, published, declared, expected", [
    pytest.param({"overlap": "allow"}, {"overlap": "skip"}, {"overlap": "buffer_one"}, "allow",
                 id="published_entry_beats_published_task_and_declaration"),
    pytest.param({}, {"overlap": "buffer_one"}, {"overlap": "allow"}, "buffer_one",
                 id="published_entry_beats_declaration_for_hand_triggered_runs"),
    pytest.param({}, {}, {"overlap": "allow"}, "allow", id="declaration_beats_default"),
    pytest.param({}, {}, {}, "skip", id="default_is_skip"),
])
def test_overlap_resolution_order(entry, published, declared, expected):
    policy = resolve_policy("t", entry, published, declared, max_lock_ttl_s=3600)
    assert policy.overlap is OverlapPolicy(expected)


def test_resolution_is_field_by_field():
    policy = resolve_policy("t", {"lock_ttl_s": 5}, {}, {"overlap": "buffer_one", "lock_ttl_s": 90},
                            max_lock_ttl_s=3600)
    assert (policy.overlap, policy.lock_ttl_s, policy.lock_key) == (OverlapPolicy.BUFFER_ONE, 5.0, None)


@pytest.mark.parametrize("raw, field", [
    pytest.param({"overlap": "replace"}, "overlap", id="unknown_overlap_is_refused"),
    pytest.param({"lock_ttl_s": 0}, "lock_ttl_s", id="zero_ttl_is_refused"),
    pytest.param({"lock_ttl_s": 7200}, "lock_ttl_s", id="ttl_above_max_lock_ttl_is_refused"),
    pytest.param({"lock_key": "feed_id"}, "lock_key", id="lock_key_as_a_string_is_refused"),
    pytest.param({"max_runtime_s": -1}, "max_runtime_s", id="negative_max_runtime_is_refused"),
])
def test_invalid_policy_fields_are_refused_with_their_field(raw, field):
    with pytest.raises(PolicyError) as refused:
        resolve_policy("t", raw, max_lock_ttl_s=3600)
    assert (refused.value.task, refused.value.field) == ("t", field)


def test_declaration_accepts_the_short_spellings_but_not_two_different_values():
    class Declared:
        name = "t"
        lock_ttl = 30
        max_runtime = 5

    assert declared_fields(Declared) == {"lock_ttl_s": 30, "max_runtime_s": 5}
    Declared.lock_ttl_s = 40
    with pytest.raises(PolicyError) as refused:
        declared_fields(Declared)
    assert refused.value.field == "lock_ttl_s"


@pytest.mark.parametrize("calls, same", [
    pytest.param([(("a",), {}), ((), {"key": "a"})], True, id="positional_and_keyword_calls_share_a_key"),
    pytest.param([(("a", 1.0), {}), (("a", 2.0), {})], True, id="lock_key_ignores_other_arguments"),
    pytest.param([(("a",), {}), (("b",), {})], False, id="lock_key_argument_separates_jobs"),
])
def test_lock_key_from_named_arguments(calls, same):
    keys = {lock_key_of(gt.probe, *args, **kwargs) for args, kwargs in calls}
    assert (len(keys) == 1) is same


def test_default_key_covers_all_arguments_and_empty_key_the_whole_task():
    default = [lock_key_of(gt.undeclared_probe, "a", hold_s=h) for h in (1.0, 2.0)]
    assert default[0] != default[1]
    whole = RunPolicy(lock_key=())
    sig = inspect.signature(gt.undeclared_probe.run)
    keys = {lock_key_for("t", whole, signature=sig, args=(k,), kwargs={}) for k in ("a", "b")}
    assert keys == {"beatkeeper:lock:t"}


def test_a_lock_key_naming_a_missing_argument_is_refused():
    with pytest.raises(PolicyError) as refused:
        lock_key_for("t", RunPolicy(lock_key=("feed_id",)), signature=None, args=(), kwargs={"x": 1})
    assert refused.value.field == "lock_key"


def test_published_policies_are_cached_for_refresh_s(redis_client):
    now = [0.0]
    published = PublishedPolicies(redis_client, refresh_s=5, clock=lambda: now[0])
    publish_entry_policies(redis_client, {"t": RunPolicy(overlap=OverlapPolicy.ALLOW)})
    assert published.fields_for("t")["overlap"] == "allow"
    publish_entry_policies(redis_client, {"t": RunPolicy(overlap=OverlapPolicy.BUFFER_ONE)})
    now[0] = 4.9
    assert published.fields_for("t")["overlap"] == "allow"
    now[0] = 5.0
    assert published.fields_for("t")["overlap"] == "buffer_one"


# -- the middleware contract ----------------------------------------------------------------

class Recorder(Middleware):
    def __init__(self, name: str, calls: list, *, skip: Skip | None = None, fail_before: bool = False,
                 fail_after: bool = False):
        self.name, self.calls, self.skip = name, calls, skip
        self.fail_before, self.fail_after = fail_before, fail_after

    def before_run(self, run):
        self.calls.append(("before", self.name))
        if self.fail_before:
            raise RuntimeError("before failed")
        return self.skip

    def after_run(self, run, outcome):
        self.calls.append(("after", self.name, outcome.status))
        if self.fail_after:
            raise RuntimeError("after failed")

    def on_run_lost(self, lost):
        self.calls.append(("lost", self.name, lost.task_id))

    def on_expired(self, run):
        self.calls.append(("expired", self.name, run.task_id))


def test_middlewares_wrap_the_body_outermost_first(app, redis_client, probe_for):
    calls: list = []
    set_middlewares(app, [Recorder("a", calls), Recorder("b", calls)])
    gt.allow_probe.apply(args=("k",))
    assert calls == [("before", "a"), ("before", "b"), ("after", "b", RunStatus.SUCCESS),
                     ("after", "a", RunStatus.SUCCESS)]
    assert probe_for("k").ran() == 1


def test_a_skip_stops_the_walk_and_only_entered_middlewares_release(app, redis_client, probe_for):
    calls: list = []
    paused = Skip(RunStatus.SKIPPED_PAUSED, reason="paused by operator")
    set_middlewares(app, [Recorder("a", calls), Recorder("pause", calls, skip=paused), Recorder("c", calls)])
    result = gt.allow_probe.apply(args=("k",))
    assert calls == [("before", "a"), ("before", "pause"), ("after", "a", RunStatus.SKIPPED_PAUSED)]
    assert probe_for("k").ran() == 0
    assert result.state == "IGNORED"


def test_a_failing_before_run_fails_the_run_and_earlier_middlewares_still_release(app, redis_client, probe_for):
    calls: list = []
    set_middlewares(app, [Recorder("a", calls), Recorder("broken", calls, fail_before=True)])
    result = gt.allow_probe.apply(args=("k",), throw=False)
    assert result.state == "FAILURE"
    assert calls == [("before", "a"), ("before", "broken"), ("after", "a", RunStatus.FAILURE)]
    assert probe_for("k").ran() == 0


def test_a_failing_after_run_does_not_keep_the_lock(app, redis_client):
    calls: list = []
    set_middlewares(app, [*guard_middlewares(app), Recorder("broken", calls, fail_after=True)])
    result = gt.probe.apply(args=("k",))
    assert result.state == "SUCCESS"
    assert calls == [("before", "broken"), ("after", "broken", RunStatus.SUCCESS)]
    assert not redis_client.exists(lock_key_of(gt.probe, "k"))


# -- skip, contention, buffer_one -----------------------------------------------------------

def test_sixteen_threads_ten_thousand_attempts_never_overlap(redis_client, probe_for):
    attempts, threads = 10_000, 16

    def hammer(_):
        return [call_guarded(gt.probe, "hot") for _ in range(attempts // threads)]

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        states = [s for chunk in pool.map(hammer, range(threads)) for s in chunk]
    elapsed_s = time.monotonic() - started
    probe = probe_for("hot")
    skipped = states.count("skipped")
    assert len(states) == attempts
    assert probe.violations() == 0
    assert probe.ran() == states.count("ran")
    assert probe.ran() + skipped == attempts
    assert skipped_counts(redis_client).get("tests.guarded.probe", 0) == skipped
    assert len(read_events(redis_client, kind="overlap_detected", count=attempts)) == skipped
    print(f"\n10,000 guarded attempts from 16 threads: {probe.ran()} ran, {skipped} skipped, {elapsed_s:.1f}s")


def test_skipped_run_is_recorded_counted_and_visible_as_skipped(worker, redis_client, probe_for):
    probe = probe_for("busy")
    probe.block()
    first = gt.probe.delay("busy", record=True)
    wait_until(lambda: probe.entered(), timeout_s=10, what="the first run to start")
    second = gt.probe.delay("busy")
    wait_until(lambda: run_state(second) == "SKIPPED_OVERLAP", timeout_s=10, what="the second run to be skipped")
    [event] = read_events(redis_client, kind="overlap_detected")
    assert event.data["task_id"] == second.id and event.data["holder_task_id"] == first.id
    assert skipped_counts(redis_client) == {"tests.guarded.probe": 1}
    probe.unblock()
    assert first.get(timeout=10) and probe.ran() == 1


def test_buffer_one_keeps_one_waiter_and_starts_it_when_the_lock_frees(app, redis_client, probe_for):
    probe = probe_for("buf")
    probe.block()
    with ThreadPoolExecutor(4) as pool:
        running = pool.submit(gt.buffered_probe.apply, args=("buf",), kwargs={"record": True})
        wait_until(lambda: probe.entered(), timeout_s=10, what="the first run to start")
        waiting = pool.submit(gt.buffered_probe.apply, args=("buf",), kwargs={"record": True})
        wait_until(lambda: redis_client.exists(lock_key_of(gt.buffered_probe, "buf") + ":buffer"),
                   timeout_s=10, what="a run to take the buffer slot")
        extra = [pool.submit(gt.buffered_probe.apply, args=("buf",)) for _ in range(2)]
        assert [f.result(timeout=10).state for f in extra] == ["IGNORED", "IGNORED"]
        assert not waiting.done()
        probe.unblock()
        assert running.result(timeout=10).state == "SUCCESS"
        assert waiting.result(timeout=10).state == "SUCCESS"
    enters = probe.entered()
    exits = [e for e in probe.log() if e["event"] == "exit"]
    assert len(enters) == 2 and enters[1]["at"] >= exits[0]["at"]  # the waiter started after, not alongside
    assert probe.violations() == 0
    assert skipped_counts(redis_client) == {"tests.guarded.buffered_probe": 2}


def test_allow_takes_no_lock(app, redis_client, probe_for):
    gt.allow_probe.apply(args=("free",))
    assert probe_for("free").ran() == 1
    assert not redis_client.keys("beatkeeper:lock:*")


# -- renewal, retry, fencing, lost runs -----------------------------------------------------

def test_a_run_three_times_its_ttl_keeps_its_lock_and_blocks_a_second(worker, redis_client, probe_for):
    probe = probe_for("long")
    first = gt.probe.apply_async(("long",), {"hold_s": 1.5, "record": True},
                                 headers=scheduled("long-entry", gt.probe, lock_ttl_s=0.5))
    wait_until(lambda: probe.entered(), timeout_s=10, what="the long run to start")
    key = lock_key_of(gt.probe, "long")
    token = redis_client.get(key)
    second = gt.probe.apply_async(("long",), headers=scheduled("long-entry", gt.probe, lock_ttl_s=0.5))
    while not first.ready():
        held = redis_client.get(key)
        assert held == token or first.ready(), "the lock changed hands while the run was alive"
        time.sleep(0.05)
    assert first.get(timeout=5)
    wait_until(lambda: run_state(second) == "SKIPPED_OVERLAP", timeout_s=5, what="the second attempt skipped")
    [(enter, exit_)] = probe.intervals().values()
    assert exit_ - enter >= 1.5 and probe.ran() == 1
    assert not read_events(redis_client, kind="run_lost")


def test_a_retry_is_not_blocked_by_its_own_lock_and_keeps_its_entry(worker, redis_client, probe_for):
    result = gt.retry_once.apply_async(("r",), headers=scheduled("retry-entry", gt.retry_once))
    assert result.get(timeout=15) == "retried"
    enters = probe_for("r").entered()
    assert [e["retries"] for e in enters] == [0, 1]
    assert {e["entry"] for e in enters} == {"retry-entry"}
    assert enters[1]["fence"] > enters[0]["fence"]
    assert skipped_counts(redis_client) == {}
    assert not read_events(redis_client, kind="run_lost")


def test_stale_holder_is_refused_by_the_fenced_write(worker, redis_client, probe_for):
    probe = probe_for("price")
    redis_client.set(probe.keys["block"] + ":A", 1, ex=60)
    stale = gt.fenced_writer.delay("price", "A")
    wait_until(lambda: probe.entered(), timeout_s=10, what="holder A to start")
    redis_client.delete(lock_key_of(gt.fenced_writer, "price", "A"))  # A stalls past its TTL
    fresh = gt.fenced_writer.delay("price", "B")
    assert fresh.get(timeout=10) == "written"
    redis_client.delete(probe.keys["block"] + ":A")
    assert stale.get(timeout=10) == "refused"
    assert redis_client.get("probe:price:value") == "B"
    a, b = sorted(probe.entered(), key=lambda e: e["fence"])
    assert a["task_id"] == stale.id and b["task_id"] == fresh.id and a["fence"] < b["fence"]


def test_a_holder_that_never_released_is_reported_lost(app, redis_client, probe_for):
    calls: list = []
    set_middlewares(app, [Recorder("history", calls), *guard_middlewares(app)])
    key = lock_key_of(gt.probe, "crashy")
    dead = FencedLock(redis_client, key, ttl_s=30, holder={"task": gt.probe.name, "task_id": "dead-run"})
    dead.try_acquire()
    redis_client.delete(key)  # its worker died; the TTL ran out
    assert gt.probe.apply(args=("crashy",)).state == "SUCCESS"
    [event] = read_events(redis_client, kind="run_lost")
    assert event.data["task_id"] == "dead-run" and event.data["fencing_token"] == dead.fencing_token
    assert ("lost", "history", "dead-run") in calls


def test_a_redelivery_waits_out_its_own_dead_delivery_then_runs(app, redis_client, probe_for):
    key = lock_key_of(gt.probe, "redeliver")
    dead = FencedLock(redis_client, key, ttl_s=0.4, holder={"task_id": "msg-1", "retries": 0})
    assert dead.try_acquire()  # the killed first delivery; nobody renews it
    started = time.monotonic()
    assert gt.probe.apply(args=("redeliver",), task_id="msg-1").state == "SUCCESS"
    assert time.monotonic() - started >= 0.3
    assert probe_for("redeliver").ran() == 1
    assert [e.data["task_id"] for e in read_events(redis_client, kind="run_lost")] == ["msg-1"]


def test_a_redelivery_never_runs_alongside_a_newer_run(app, redis_client, probe_for):
    key = lock_key_of(gt.probe, "redeliver")
    newer = FencedLock(redis_client, key, ttl_s=30, holder={"task_id": "msg-2", "retries": 0})
    assert newer.try_acquire()
    started = time.monotonic()
    assert gt.probe.apply(args=("redeliver",), task_id="msg-1").state == "IGNORED"
    assert time.monotonic() - started < 1  # skipped at once, no waiting on a live newer run
    assert probe_for("redeliver").ran() == 0
    newer.release()


def test_a_waiting_redelivery_gives_way_to_a_newer_run_that_took_the_lock(app, redis_client, probe_for):
    key = lock_key_of(gt.probe, "redeliver")
    dead = FencedLock(redis_client, key, ttl_s=30, holder={"task_id": "msg-1", "retries": 0})
    assert dead.try_acquire()
    newer = FencedLock(redis_client, key, ttl_s=30, holder={"task_id": "msg-2", "retries": 0})

    def meanwhile(_poll_s):
        redis_client.delete(key)  # the dead delivery's TTL runs out...
        assert newer.try_acquire()  # ...and a newer trigger takes the lock first

    set_middlewares(app, [OverlapMiddleware(redis_client, sleep=meanwhile)])
    assert call_guarded(gt.probe, "redeliver", task_id="msg-1") == "skipped"
    assert probe_for("redeliver").ran() == 0
    [event] = read_events(redis_client, kind="overlap_detected")
    assert event.data["holder_task_id"] == "msg-2"


def test_a_buffered_run_gives_up_as_expired_at_its_expires(app, redis_client, probe_for):
    calls: list = []
    set_middlewares(app, [Recorder("history", calls), OverlapMiddleware(redis_client, sleep=lambda s: None)])
    holder = FencedLock(redis_client, lock_key_of(gt.buffered_probe, "late"), ttl_s=30)
    assert holder.try_acquire()
    expires = datetime.fromtimestamp(time.time() - 1, timezone.utc).isoformat()
    assert call_guarded(gt.buffered_probe, "late", request={"expires": expires}) == "skipped"
    assert calls[-1] == ("after", "history", RunStatus.EXPIRED)
    assert probe_for("late").ran() == 0
    assert not redis_client.exists(lock_key_of(gt.buffered_probe, "late") + ":buffer")  # slot given back


def test_hand_triggered_run_takes_the_lock_the_entry_published(worker, app, redis_client, probe_for):
    set_published_policies(app, PublishedPolicies(redis_client, refresh_s=0))
    publish_entry_policies(redis_client, {gt.undeclared_probe.name: RunPolicy(lock_key=())})
    probe = probe_for("nightly")
    probe.block()
    scheduled_run = gt.undeclared_probe.apply_async(("nightly",),
                                                  headers=scheduled("nightly", gt.undeclared_probe, lock_key=[]))
    wait_until(lambda: probe.ran() == 0 and redis_client.keys("beatkeeper:lock:tests.guarded.undeclared_probe"),
               timeout_s=10, what="the scheduled run to hold the task-wide lock")
    by_hand = app.send_task(gt.undeclared_probe.name, args=["other-args"])
    wait_until(lambda: run_state(by_hand) == "SKIPPED_OVERLAP", timeout_s=10, what="the hand-triggered run skipped")
    probe.unblock()
    assert scheduled_run.get(timeout=10)


def test_expired_message_is_reported_to_middlewares(worker, app, redis_client, probe_for):
    calls: list = []
    set_middlewares(app, [Recorder("history", calls), *guard_middlewares(app)])
    result = gt.probe.apply_async(("late",), expires=datetime(2000, 1, 1, tzinfo=timezone.utc))
    wait_until(lambda: ("expired", "history", result.id) in calls, timeout_s=10, what="on_expired")
    assert probe_for("late").ran() == 0
