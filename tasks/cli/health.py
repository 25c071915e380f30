"""``beatkeeper health worker NAME`` / ``beatkeeper health beat``: the container healthchecks.

worker: the worker named ``NAME@<this host>`` (compose starts them ``-n NAME@%h``) answers
Celery's ``inspect ping`` -- the worker itself, not merely some worker of the cluster.
beat: Redis answers and the beat lock is held: the beat of this container holds it, or it
stands by behind the beat that does (redbeat's standby blocks on that lock). With no lock
held at all, no beat dispatches: unhealthy.

Exit 0 healthy, 1 unhealthy (one line saying why).
"""
from __future__ import annotations

import socket

import click

from tasks import app
from tasks.infra.redis_client import app_redis

PING_TIMEOUT_S = 5.0


def worker_answers(name: str, hostname: str | None = None, timeout_s: float = PING_TIMEOUT_S) -> bool:
    app_redis(app).ping()  # Redis away: one line naming REDIS_URL (exit 3), not a ping that retries
    node = f"{name}@{hostname or socket.gethostname()}"
    replies = app.control.ping(destination=[node], timeout=timeout_s) or []
    return any(node in reply for reply in replies)


def beat_lock_key() -> str:
    from redbeat.schedulers import RedBeatConfig

    return RedBeatConfig(app).lock_key


def beat_lock_held() -> bool:
    return bool(app_redis(app).exists(beat_lock_key()))


@click.group("health")
def command() -> None:
    """Exit 0 when this container's worker or beat is healthy, 1 (one line) when not."""


@command.command("worker")
@click.argument("name", default="default")
def worker(name: str) -> None:
    """The worker NAME@<this host> answers a ping."""
    if not worker_answers(name):
        raise click.ClickException(f"worker {name}@{socket.gethostname()} did not answer a ping "
                                   f"within {PING_TIMEOUT_S:g} s")
    click.echo(f"worker {name}@{socket.gethostname()}: pong")


@command.command("beat")
def beat() -> None:
    """The beat lock is held (by this beat, or by the leader this one stands by for)."""
    key = beat_lock_key()
    if not beat_lock_held():
        raise click.ClickException(f"no beat holds the beat lock {key!r}: nothing dispatches")
    click.echo(f"beat lock {key!r} held")
