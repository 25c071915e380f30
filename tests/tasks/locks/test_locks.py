"""The Redis lock, fencing tokens and renewal, against real Redis (no Celery)."""
from __future__ import annotations

import threading
import time

import pytest
from redis.exceptions import LockNotOwnedError

from tasks.locks.fencing import StaleFencingToken, fenced_set
from tasks.locks.fenced import FencedLock, LockNotAcquired, Renewer, exclusive, lock_held
from tests.servers import wait_until


def test_acquire_is_exclusive_and_reports_the_holder(redis_client):
    first = FencedLock(redis_client, "lk", ttl_s=10, holder={"task_id": "a"})
    second = FencedLock(redis_client, "lk", ttl_s=10, holder={"task_id": "b"})
    assert first.try_acquire()
    assert not second.try_acquire()
    assert second.current_holder == {"task_id": "a"}
    assert 9 < second.remaining_ttl_s <= 10
    first.release()
    assert second.try_acquire()


def test_fencing_tokens_increase_with_every_holder(redis_client):
    tokens = []
    for _ in range(3):
        lock = FencedLock(redis_client, "lk", ttl_s=10)
        assert lock.try_acquire()
        tokens.append(lock.fencing_token)
        lock.release()
    assert tokens == sorted(tokens) and len(set(tokens)) == 3


def test_only_the_holder_can_release(redis_client):
    holder = FencedLock(redis_client, "lk", ttl_s=10)
    assert holder.try_acquire()
    impostor = FencedLock(redis_client, "lk", ttl_s=10)
    impostor.local.token = b"not-the-token"
    with pytest.raises(LockNotOwnedError):
        impostor.release()
    assert redis_client.exists("lk")
    holder.release()
    assert not redis_client.exists("lk")


def test_clean_release_leaves_no_holder_record_so_nobody_is_reported_lost(redis_client):
    first = FencedLock(redis_client, "lk", ttl_s=10, holder={"task_id": "a"})
    first.try_acquire()
    first.release()
    second = FencedLock(redis_client, "lk", ttl_s=10)
    assert second.try_acquire()
    assert second.lost_holder is None


def test_a_holder_whose_lock_expired_is_reported_lost_to_the_next(redis_client):
    dead = FencedLock(redis_client, "lk", ttl_s=10, holder={"task_id": "dead"})
    dead.try_acquire()
    redis_client.delete("lk")  # its TTL ran out: it never released
    nxt = FencedLock(redis_client, "lk", ttl_s=10)
    assert nxt.try_acquire()
    assert nxt.lost_holder == {"task_id": "dead", "fence": dead.fencing_token}


def test_handoff_token_lets_a_retry_take_over_without_reporting_a_loss(redis_client):
    first = FencedLock(redis_client, "lk", ttl_s=10, holder={"task_id": "t"})
    first.try_acquire()
    wrong = FencedLock(redis_client, "lk", ttl_s=10)
    assert not wrong.try_acquire(handoff_token="someone-else")
    retry = FencedLock(redis_client, "lk", ttl_s=10, holder={"task_id": "t", "retries": 1})
    assert retry.try_acquire(handoff_token=first.token)
    assert retry.fencing_token == first.fencing_token + 1
    assert retry.lost_holder is None
    with pytest.raises(LockNotOwnedError):  # the predecessor's late release is refused
        first.release()
    assert redis_client.get("lk") == retry.token


def test_stale_holder_gets_a_lower_fencing_token_and_its_write_is_refused(redis_client):
    stale = FencedLock(redis_client, "lk", ttl_s=10)
    assert stale.try_acquire()
    fenced_set(redis_client, "price", "stale-before-pause", fencing_token=stale.fencing_token)
    redis_client.delete("lk")  # simulated pause: the stale holder's TTL ran out
    fresh = FencedLock(redis_client, "lk", ttl_s=10)
    assert fresh.try_acquire()
    assert fresh.fencing_token > stale.fencing_token
    fenced_set(redis_client, "price", "fresh", fencing_token=fresh.fencing_token)
    with pytest.raises(StaleFencingToken) as refused:
        fenced_set(redis_client, "price", "stale-after-pause", fencing_token=stale.fencing_token)
    assert (refused.value.resource, refused.value.token, refused.value.highest) == (
        "price", stale.fencing_token, fresh.fencing_token)
    assert redis_client.get("price") == "fresh"
    fenced_set(redis_client, "price", "fresh-again", fencing_token=fresh.fencing_token)  # same holder
    assert redis_client.get("price") == "fresh-again"


def test_acquire_and_release_take_two_round_trips(redis_client):
    calls = []
    original = redis_client.execute_command

    def counting(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    redis_client.execute_command = counting
    lock = FencedLock(redis_client, "lk", ttl_s=10)
    # Scripts are loaded into Redis once (redis-py retries EVALSHA after NOSCRIPT), not per lock.
    redis_client.execute_command("SCRIPT", "LOAD", FencedLock.LUA_ACQUIRE_SCRIPT)
    redis_client.execute_command("SCRIPT", "LOAD", FencedLock.LUA_RELEASE_SCRIPT)
    calls.clear()
    assert lock.try_acquire()
    lock.release()
    assert calls == ["EVALSHA", "EVALSHA"]


def test_renewal_keeps_a_lock_alive_past_three_ttls(redis_client):
    renewer = Renewer()
    lock = FencedLock(redis_client, "lk", ttl_s=0.3)
    assert lock.try_acquire()
    renewer.watch(lock)
    deadline = time.monotonic() + 0.9  # three TTLs
    while time.monotonic() < deadline:
        assert redis_client.get("lk") == lock.token
        time.sleep(0.05)
    renewer.unwatch(lock)
    lock.release()


def test_renewal_reports_a_lock_that_vanished_under_its_holder(redis_client):
    renewer = Renewer()
    lost = threading.Event()
    lock = FencedLock(redis_client, "lk", ttl_s=0.3)
    lock.try_acquire()
    renewer.watch(lock, on_lost=lambda _lock: lost.set())
    redis_client.delete("lk")
    assert lost.wait(timeout=2)
    assert not renewer.watching(lock)


def test_unwatched_lock_expires_after_its_ttl(redis_client):
    lock = FencedLock(redis_client, "lk", ttl_s=0.2)
    lock.try_acquire()
    wait_until(lambda: not redis_client.exists("lk"), timeout_s=2, what="the lock to expire")


def test_lock_held_yields_falsy_lease_to_the_second_comer(redis_client):
    with lock_held(redis_client, "lk", ttl_s=10, holder={"task_id": "a"}) as first:
        assert first and first.fencing_token >= 1
        with lock_held(redis_client, "lk", ttl_s=10) as second:
            assert not second
            assert second.holder == {"task_id": "a"}
    assert not redis_client.exists("lk")


def test_exclusive_decorator_raises_lock_not_acquired_with_the_key(redis_client):
    @exclusive(lambda feed_id: f"feed:{feed_id}", client=redis_client, ttl_s=10)
    def sweep(feed_id):
        return feed_id * 2

    assert sweep(21) == 42
    with lock_held(redis_client, "feed:7", ttl_s=10):
        with pytest.raises(LockNotAcquired) as refused:
            sweep(7)
    assert refused.value.key == "feed:7"
