"""Database-side exclusion: Postgres advisory locks on a real private Postgres, and SQLite's
fallback to the Redis lock."""
from __future__ import annotations

import signal
import sys

import pytest
from sqlalchemy import create_engine, text

from tasks.locks.advisory import NoLockBackend, advisory_key, database_lock, holders
from tests.postgres import postgres_url  # noqa: F401  (pytest fixture)
from tests.servers import wait_until


@pytest.fixture
def pg_engine(postgres_url):  # noqa: F811
    engine = create_engine(postgres_url, pool_size=2, max_overflow=4)
    yield engine
    engine.dispose()


def test_advisory_key_is_stable_and_fits_a_signed_bigint():
    assert advisory_key("sweep:prices") == advisory_key("sweep:prices") != advisory_key("sweep:feeds")
    assert -2**63 <= advisory_key("sweep:prices") < 2**63


def test_second_sweep_is_refused_while_the_first_holds_the_lock(pg_engine):
    with database_lock(pg_engine, "sweep:prices") as first:
        assert first and first.backend == "postgres"
        assert first.connection.execute(text("SELECT 1")).scalar() == 1  # the sweep's own session
        with database_lock(pg_engine, "sweep:prices") as second:
            assert not second
        with database_lock(pg_engine, "sweep:other") as unrelated:
            assert unrelated
        assert len(holders(pg_engine, "sweep:prices")) == 1
    with database_lock(pg_engine, "sweep:prices") as after:
        assert after
    assert holders(pg_engine, "sweep:prices") == []


def test_a_pooled_connection_does_not_carry_the_lock_to_its_next_user(postgres_url):  # noqa: F811
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0)
    with database_lock(engine, "sweep:pooled") as lease:
        assert lease
    with engine.connect() as reused:  # the same pooled session
        assert reused.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")).scalar() == 0
    engine.dispose()


def test_a_killed_holder_frees_the_lock_without_any_ttl(pg_engine, postgres_url, processes):  # noqa: F811
    dsn = postgres_url.replace("postgresql+psycopg2://", "postgresql://")
    holder = processes.start([sys.executable, "-c", (
        "import psycopg2, time\n"
        f"c = psycopg2.connect({dsn!r}); c.autocommit = True\n"
        f"c.cursor().execute('SELECT pg_advisory_lock({advisory_key('sweep:crash')})')\n"
        "print('locked', flush=True); time.sleep(60)\n")], name="pg-holder")
    wait_until(lambda: holders(pg_engine, "sweep:crash"), timeout_s=20, what="the holder to lock")
    with database_lock(pg_engine, "sweep:crash") as while_alive:
        assert not while_alive
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    wait_until(lambda: not holders(pg_engine, "sweep:crash"), timeout_s=5, what="Postgres to drop the dead session")
    with database_lock(pg_engine, "sweep:crash") as after_crash:
        assert after_crash


def test_a_broken_session_is_discarded_and_the_lock_freed(pg_engine):
    with database_lock(pg_engine, "sweep:broken") as lease:
        backend_pid = lease.connection.execute(text("SELECT pg_backend_pid()")).scalar()
        with pg_engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_pid})
    wait_until(lambda: not holders(pg_engine, "sweep:broken"), timeout_s=5, what="the lock to be freed")
    with database_lock(pg_engine, "sweep:broken") as again:
        assert again


def test_sqlite_falls_back_to_the_redis_lock(tmp_path, redis_client):
    engine = create_engine(f"sqlite:///{tmp_path / 'history.db'}")
    with database_lock(engine, "sweep:prices", redis_client=redis_client, ttl_s=30) as first:
        assert first and first.backend == "redis" and first.fencing_token >= 1
        assert redis_client.exists("beatkeeper:dblock:sweep:prices")
        with database_lock(engine, "sweep:prices", redis_client=redis_client) as second:
            assert not second
    assert not redis_client.exists("beatkeeper:dblock:sweep:prices")


def test_sqlite_without_redis_is_refused_with_the_lock_name(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'history.db'}")
    with pytest.raises(NoLockBackend) as refused:
        with database_lock(engine, "sweep:prices"):
            pass
    assert (refused.value.name, refused.value.dialect) == ("sweep:prices", "sqlite")
