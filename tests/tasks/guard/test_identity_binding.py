"""The claim binds a run id to its entry's task and to the newest beat: a forged message of another
task carrying an entry's headers neither runs as that entry's run nor blocks the real dispatch; a
dispatch from a beat older than the newest one (the fencing epoch) is refused; and Redis errors
at the claim are retried, then the message is sent back to the queue, never failed."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from celery.exceptions import Reject
from redis.backoff import ConstantBackoff
from redis.retry import Retry

from tasks import headers
from tasks.guard.identity import CLAIM_RETRY_ERRORS, ClaimState, RunIdentityMiddleware, claim_record, run_id_for
from tasks.guard.run import Run, RunStatus
from tests.run_states import run_state
from tests.tasks.beat import ledger_tasks as lt
from tests.servers import RedisServer, wait_until
from tests.tasks.guard.test_identity import RecordingRenewer, ended, run_of, standard_chain  # noqa: F401

FIRE_AT = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
TASK = "tests.identity.job"
ENTRY_PREFIX = "redbeat:"


def store_entry(client, entry: str, task: str) -> None:
    """What beat stores for an entry (``tasks.beat.entry.store_entries``); the claim reads its task."""
    client.hset(ENTRY_PREFIX + entry, "definition", json.dumps({"name": entry, "task": task, "args": [],
                                                                "kwargs": {}, "options": {}, "enabled": True}))


def set_beat_epoch(client, *, fence: int, since: datetime) -> None:
    """What H-beat's lock acquire writes: the newest beat's fence, and when it took the lock."""
    client.hset(headers.BEAT_EPOCH_KEY, mapping={"fence": fence, "since": repr(since.timestamp())})


@pytest.fixture
def identity(redis_client):
    return RunIdentityMiddleware(redis_client, renewer=RecordingRenewer(), entry_key_prefix=ENTRY_PREFIX)


def forged_run(**kwargs) -> Run:
    run = run_of(**kwargs)
    run.task_name = "tests.identity.other"
    return run


# -- entry -> task binding --------------------------------------------------------------------

def test_another_tasks_message_naming_a_stored_entry_runs_as_a_hand_run_and_leaves_the_instant(identity,
                                                                                             redis_client):
    store_entry(redis_client, "feeds", TASK)
    forged = forged_run()
    assert identity.before_run(forged) is None  # it runs, as what it is: a hand-sent message
    assert (forged.entry, forged.fire_at) == ("", None)
    assert claim_record(redis_client, f"task:{forged.task_id}").state is ClaimState.RUNNING
    identity.after_run(forged, ended(RunStatus.SUCCESS))
    real = run_of()
    assert identity.before_run(real) is None  # the real dispatch is not a duplicate
    assert claim_record(redis_client, run_id_for(entry="feeds", fire_at=FIRE_AT, task_id="")).task_id == real.task_id


def test_the_entrys_own_task_is_honoured_and_an_entry_beat_never_stored_keeps_its_headers(identity, redis_client):
    store_entry(redis_client, "feeds", TASK)
    own = run_of()
    assert identity.before_run(own) is None and own.entry == "feeds"
    assert identity.before_run(run_of()).status is RunStatus.SKIPPED_DUPLICATE
    unstored = forged_run(entry="never-stored")  # no dispatch of it to protect: its headers stand
    assert identity.before_run(unstored) is None and unstored.entry == "never-stored"


def test_a_real_worker_runs_the_real_dispatch_after_a_forged_one(standard_chain, worker, redis_client):  # noqa: F811
    store_entry(redis_client, "side-entry", lt.side_effect.name)
    fire_at = datetime.now(timezone.utc).replace(microsecond=0)
    sent = headers.dispatch_headers("side-entry", fire_at)
    forged = lt.record.apply_async(headers=sent)  # another task, the entry's fire-instant headers
    field = f"side-entry|{fire_at.isoformat()}"  # the ledger counts by the headers a body was sent
    wait_until(lambda: lt.ledger(redis_client).get(field) == 1, timeout_s=20,
               what="the forged message to run (as a hand run)")
    real = lt.side_effect.apply_async(("real",), headers=sent)
    assert real.get(timeout=20)  # ran: not skipped as a duplicate of the forged message
    [started] = lt.entered(redis_client, "real")
    assert started["task_id"] == real.id
    record = claim_record(redis_client, run_id_for(entry="side-entry", fire_at=fire_at, task_id=""))
    assert (record.state, record.task_id) == (ClaimState.SUCCEEDED, real.id)
    assert claim_record(redis_client, f"task:{forged.id}").state is ClaimState.SUCCEEDED
    assert lt.ledger(redis_client) == {field: 2}  # the forged body and the real one, once each


# -- the beat fencing epoch -------------------------------------------------------------------

def fenced_run(fence, fire_at: datetime = FIRE_AT) -> Run:
    run = run_of(fire_at=fire_at)
    run.beat_fence = fence
    return run


@pytest.mark.parametrize("fence, fire_at, runs", [
    pytest.param("5", FIRE_AT, True, id="the_newest_beats_dispatch_runs"),
    pytest.param("4", FIRE_AT, False, id="a_stale_beats_dispatch_is_refused"),
    pytest.param("4", FIRE_AT - timedelta(minutes=1), True, id="a_stale_beat_still_answers_for_instants_before_since"),
    pytest.param(None, FIRE_AT, True, id="a_message_without_the_header_is_unaffected"),
])
def test_the_claim_refuses_a_dispatch_from_a_beat_older_than_the_newest(identity, redis_client, fence, fire_at,
                                                                      runs):
    set_beat_epoch(redis_client, fence=5, since=FIRE_AT - timedelta(seconds=10))
    skip = identity.before_run(fenced_run(fence, fire_at))
    if runs:
        assert skip is None
        return
    assert skip.status is RunStatus.SKIPPED_DUPLICATE and skip.store_result
    assert "fence 4" in skip.reason and "fence 5" in skip.reason
    # refused, not claimed: the newest beat's own dispatch of the instant still runs
    assert claim_record(redis_client, run_id_for(entry="feeds", fire_at=fire_at, task_id="")) is None
    assert identity.before_run(fenced_run("5", fire_at)) is None


def test_a_real_worker_refuses_a_stale_fence_and_runs_a_current_one(standard_chain, worker, redis_client):  # noqa: F811
    fire_at = datetime.now(timezone.utc).replace(microsecond=0)
    set_beat_epoch(redis_client, fence=7, since=fire_at - timedelta(seconds=30))
    sent = headers.dispatch_headers("fenced-entry", fire_at)
    stale = lt.side_effect.apply_async(("stale",), headers={**sent, headers.BEAT_FENCE: "6"})
    wait_until(lambda: run_state(stale) == "SKIPPED_DUPLICATE", timeout_s=20, what="the stale dispatch to be refused")
    current = lt.side_effect.apply_async(("current",), headers={**sent, headers.BEAT_FENCE: "7"})
    assert current.get(timeout=20)
    assert lt.entered(redis_client, "stale") == [] and len(lt.entered(redis_client, "current")) == 1
    assert lt.ledger(redis_client) == {f"fenced-entry|{fire_at.isoformat()}": 1}


# -- Redis errors at the claim ----------------------------------------------------------------

def test_a_claim_through_a_redis_that_stays_away_sends_the_message_back(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    import redis

    client = redis.Redis.from_url(server.url, decode_responses=True, socket_connect_timeout=1, retry=Retry(ConstantBackoff(0), 0))
    retry = Retry(ConstantBackoff(0.1), retries=5, supported_errors=CLAIM_RETRY_ERRORS)
    identity = RunIdentityMiddleware(client, renewer=RecordingRenewer(), claim_retry=retry)
    server.kill()
    started = time.monotonic()
    with pytest.raises(Reject) as refused:
        identity.before_run(run_of())
    assert refused.value.requeue  # returned for redelivery, not failed
    assert time.monotonic() - started < 5  # bounded: 5 retries 0.1 s apart


def test_a_claim_retried_across_a_redis_restart_claims_once(tmp_path):
    import threading

    import redis

    server = RedisServer(tmp_path / "redis").start()
    client = redis.Redis.from_url(server.url, decode_responses=True, socket_connect_timeout=1, retry=Retry(ConstantBackoff(0), 0))
    retry = Retry(ConstantBackoff(0.2), retries=50, supported_errors=CLAIM_RETRY_ERRORS)
    identity = RunIdentityMiddleware(client, renewer=RecordingRenewer(), claim_retry=retry)
    server.kill()
    restart = threading.Timer(1.5, server.start)
    restart.start()
    try:
        run = run_of()
        assert identity.before_run(run) is None
        assert run.fencing_token == 1
    finally:
        restart.join()
        server.kill()


@pytest.fixture
def chain_with_redis_away(app, tmp_path):
    """History and metrics on the app's Redis, run identity on a Redis that is down."""
    import redis

    from tests.app_wiring import history_middleware_for
    from tasks.guard.metrics import MetricsMiddleware
    from tests.app_wiring import installed_middlewares, set_middlewares
    from tasks.infra.redis_client import app_redis

    server = RedisServer(tmp_path / "away").start()
    away = redis.Redis.from_url(server.url, decode_responses=True, socket_connect_timeout=1, retry=Retry(ConstantBackoff(0), 0))
    server.kill()
    retry = Retry(ConstantBackoff(0.05), retries=3, supported_errors=CLAIM_RETRY_ERRORS)
    previous = installed_middlewares(app)
    set_middlewares(app, [history_middleware_for(app), MetricsMiddleware(app_redis(app)),
                          RunIdentityMiddleware(away, renewer=RecordingRenewer(), claim_retry=retry)])
    yield
    if previous is None:
        set_middlewares(app, None)
    else:
        set_middlewares(app, previous)


def test_a_run_sent_back_by_the_claim_is_recorded_as_a_retry_not_a_failure(chain_with_redis_away, app,
                                                                          redis_client):
    from tests.app_wiring import history_store_for
    from tests.tasks.conftest import call_guarded

    sent = headers.dispatch_headers("sent-back-entry", FIRE_AT)
    with pytest.raises(Reject) as refused:
        call_guarded(lt.record, request=dict(sent))
    assert refused.value.requeue
    assert lt.ledger(redis_client) == {}
    spooled = [json.loads(raw) for raw in redis_client.lrange(history_store_for(app).spool_key, 0, -1)]
    assert [r["status"] for r in spooled if r["entry"] == "sent-back-entry"] == ["retry"]


def test_redis_away_in_a_middleware_after_the_claim_sends_the_message_back_and_frees_the_run(app, redis_client,
                                                                                             tmp_path):
    import redis

    from tests.app_wiring import history_middleware_for, history_store_for
    from tasks.guard.identity import identity_middleware_for
    from tests.app_wiring import installed_middlewares, set_middlewares
    from tasks.guard.pause import PauseMiddleware
    from tasks.infra.redis_client import app_redis
    from tests.tasks.conftest import call_guarded

    server = RedisServer(tmp_path / "away").start()
    away = redis.Redis.from_url(server.url, decode_responses=True, socket_connect_timeout=1, retry=Retry(ConstantBackoff(0), 0))
    server.kill()
    client = app_redis(app)
    previous = installed_middlewares(app)
    set_middlewares(app, [history_middleware_for(app), identity_middleware_for(app, client), PauseMiddleware(away)])
    try:
        sent = headers.dispatch_headers("paused-away-entry", FIRE_AT)
        task_id = "the-message"
        with pytest.raises(Reject) as refused:
            call_guarded(lt.record, task_id=task_id, request=dict(sent))
        assert refused.value.requeue and lt.ledger(redis_client) == {}
        record = claim_record(redis_client, run_id_for(entry="paused-away-entry", fire_at=FIRE_AT, task_id=""))
        assert record.state is ClaimState.FAILED  # free for the same message delivered again
        set_middlewares(app, [history_middleware_for(app), identity_middleware_for(app, client),
                              PauseMiddleware(client)])
        assert call_guarded(lt.record, task_id=task_id, request=dict(sent)) == "ran"  # Redis is back
        assert lt.ledger(redis_client) == {f"paused-away-entry|{FIRE_AT.isoformat()}": 1}
        spooled = [json.loads(raw) for raw in redis_client.lrange(history_store_for(app).spool_key, 0, -1)]
        assert [r["status"] for r in spooled if r["entry"] == "paused-away-entry"] == ["retry", "success"]
    finally:
        if previous is None:
            set_middlewares(app, None)
        else:
            set_middlewares(app, previous)
