"""What does "no overlap" cost?

Questions, all measured in the same run against a private loopback redis-server:

1. one Redis round trip (PING) on loopback;
2. FencedLock acquire + release: microseconds and round trips (counted at the client),
   next to redis-py's plain Lock (target: within 3 round trips);
3. no-op task throughput through one real prefork worker (``-c 2``): a plain Celery task
   (``base=celery.Task``, no guard) versus the guarded task (lock on a per-message key, so the
   lock is always free and its cost is all that is measured), alternating on the same worker.
   Two workers: one with only the overlap and long-run middlewares (the guard's own cost;
   target >= 85 % of plain) and one with the app's standard middleware stack (informative).

Each throughput round pre-loads N messages into a queue the worker does not consume yet,
then tells it to consume (``add_consumer``) and times until the queue is drained and every
message acknowledged (late acks), so worker start-up and publishing are not measured.

    .venv/bin/python bench/bench_lock.py [--tasks 500] [--rounds 6]

Worker throughput on a shared 2-core machine drifts by tens of percent between rounds, so
rounds alternate the order (plain first, then guarded first) and the ratio reported is the
median of each round's guarded/plain pair; the in-process row isolates the guard's own cost.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import print_load_at_start_and_end  # noqa: E402

from bench.workers import wait_ready  # noqa: E402

from celery import Task  # noqa: E402

STACK_ENV = "BENCH_LOCK_STACK"  # "guard": overlap + long-run only; "standard": the app's own list


def _define_tasks():
    from tasks.application import app

    @app.task(name="bench.plain_noop", base=Task)
    def plain_noop(i: int) -> None:
        return None

    @app.task(name="bench.guarded_noop", lock_key=["i"], max_runs_per_hour=10**9)
    def guarded_noop(i: int) -> None:
        return None

    if os.environ.get(STACK_ENV) == "guard":
        from tasks.guard.longrun import LongRunMiddleware
        from tasks.guard.overlap import OverlapMiddleware
        from tasks.infra.redis_client import app_redis

        client = app_redis(app)
        app.beatkeeper.replace(middlewares=[OverlapMiddleware(client), LongRunMiddleware(client)])
    return plain_noop, guarded_noop


if __name__ != "__main__":  # imported by the bench's worker through BEATKEEPER_TASK_MODULES
    plain_noop, guarded_noop = _define_tasks()


def per_call_us(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def measure_redis(client, n: int) -> dict[str, float]:
    from redis.lock import Lock

    from tasks.locks.fenced import FencedLock

    client.ping()
    ping_us = min(per_call_us(client.ping, n) for _ in range(3))

    def fenced():
        lock = FencedLock(client, "bench:lock", ttl_s=30)
        lock.try_acquire()
        lock.release()

    def plain():
        lock = Lock(client, "bench:plain", timeout=30, blocking=False)
        lock.acquire()
        lock.release()

    fenced(), plain()  # load the scripts once
    fenced_us = min(per_call_us(fenced, n) for _ in range(3))
    plain_us = min(per_call_us(plain, n) for _ in range(3))

    calls = []
    original = client.execute_command
    client.execute_command = lambda *a, **k: calls.append(a[0]) or original(*a, **k)
    fenced()
    fenced_trips = len(calls)
    calls.clear()
    plain()
    plain_trips = len(calls)
    del client.execute_command
    return {"ping_us": ping_us, "fenced_us": fenced_us, "fenced_trips": fenced_trips,
            "plain_lock_us": plain_us, "plain_lock_trips": plain_trips}


def measure_guard_in_process(app, n: int) -> dict[str, float]:
    """Per-run cost of the guarded path (overlap + long-run middlewares) against calling the body,
    in this process, without broker or worker: the guard's own cost, free of worker noise."""
    import uuid

    from celery.app.task import Context

    from tasks.guard.longrun import LongRunMiddleware
    from tasks.guard.overlap import OverlapMiddleware
    from tasks.infra.redis_client import app_redis

    client = app_redis(app)
    app.beatkeeper.replace(middlewares=[OverlapMiddleware(client), LongRunMiddleware(client)])
    counter = iter(range(10**9))

    def guarded():
        guarded_noop.request_stack.push(Context(id=uuid.uuid4().hex, called_directly=False, is_eager=True,
                                                retries=0, hostname="bench", delivery_info={}))
        try:
            guarded_noop(next(counter))
        finally:
            guarded_noop.request_stack.pop()

    def body_only():
        guarded_noop.run(next(counter))

    guarded()
    return {"body_us": min(per_call_us(body_only, n) for _ in range(3)),
            "guarded_us": min(per_call_us(guarded, n) for _ in range(3))}


def count_standard_round_trips(app, runs: int = 5) -> dict[str, float]:
    """Redis round trips of one guarded no-op run through the app's standard middleware stack, in
    this process: before the body (the start) and after it (the finish). Counted at the client,
    every request written to any Redis connection of this process (a pipeline or script is one);
    the median over ``runs`` runs (the first, which loads scripts, left out)."""
    import uuid

    from celery.app.task import Context
    from redis.connection import Connection

    from tasks.guard import standard_middlewares
    from tasks.guard.middleware import set_middlewares

    set_middlewares(app, standard_middlewares(app))
    sent = [0]
    at_body: list[int] = []
    original = Connection.send_packed_command

    def counted(self, command, check_health=True):
        sent[0] += 1
        return original(self, command, check_health)

    def body(i: int) -> None:
        at_body.append(sent[0])
    starts, finishes = [], []
    Connection.send_packed_command = counted
    original_run = guarded_noop.run
    guarded_noop.run = body
    try:
        for i in range(runs + 1):
            sent[0] = 0
            guarded_noop.request_stack.push(Context(id=uuid.uuid4().hex, called_directly=False, is_eager=True,
                                                    retries=0, hostname="bench", delivery_info={}))
            try:
                guarded_noop(i)
            finally:
                guarded_noop.request_stack.pop()
            if i:
                starts.append(at_body[-1])
                finishes.append(sent[0] - at_body[-1])
    finally:
        Connection.send_packed_command = original
        guarded_noop.run = original_run
    return {"start_trips": statistics.median(starts), "finish_trips": statistics.median(finishes)}


def start_worker(name: str, stack: str, logdir: Path) -> subprocess.Popen:
    env = {**os.environ, "BEATKEEPER_TASK_MODULES": "bench.bench_lock", STACK_ENV: stack}
    log = open(logdir / f"{name}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "tasks", "worker", "-n", f"{name}@%h",
                             "-P", "prefork", "-c", "2", "-Q", "default", "--without-gossip",
                             "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc


def drain_rate(app, client, task, hostname: str, n: int, queue: str) -> float:
    """Tasks per second for ``n`` pre-loaded messages of ``task``."""
    for i in range(n):
        task.apply_async((i,), queue=queue)
    start = time.perf_counter()
    app.control.add_consumer(queue, destination=[hostname], reply=True, timeout=5)
    while client.llen(queue) or client.hlen("unacked"):
        time.sleep(0.002)
    elapsed = time.perf_counter() - start
    app.control.cancel_consumer(queue, destination=[hostname], reply=True, timeout=5)
    return n / elapsed


def measure_throughput(app, client, stack: str, n: int, rounds: int, logdir: Path) -> dict[str, list[float]]:
    name = f"bench-{stack}"
    hostname = f"{name}@{socket.gethostname()}"
    proc = start_worker(name, stack, logdir)
    try:
        wait_ready(app, hostname)
        rates: dict[str, list[float]] = {"plain": [], "guarded": []}
        drain_rate(app, client, plain_noop, hostname, min(n, 200), "bench-warm")  # fork, connect, import
        drain_rate(app, client, guarded_noop, hostname, min(n, 200), "bench-warm")
        for r in range(rounds):
            order = ["plain", "guarded"] if r % 2 == 0 else ["guarded", "plain"]
            for kind in order:
                task = plain_noop if kind == "plain" else guarded_noop
                rates[kind].append(drain_rate(app, client, task, hostname, n, f"bench-{kind}"))
        return rates
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500, help="messages per throughput round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--pings", type=int, default=5000)
    options = parser.parse_args()
    print_load_at_start_and_end()

    from tests.servers import RedisServer

    workdir = Path(tempfile.mkdtemp(prefix="bench-lock-"))
    server = RedisServer(workdir / "redis").start()
    os.environ["REDIS_URL"] = server.url
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'history.db'}")
    os.environ.setdefault("BEATKEEPER_DATA_DIR", str(workdir / "data"))
    try:
        global plain_noop, guarded_noop
        plain_noop, guarded_noop = _define_tasks()
        from tasks.application import app
        from tasks.infra.redis_client import app_redis

        client = app_redis(app)
        redis_figures = measure_redis(client, options.pings)
        redis_figures.update(count_standard_round_trips(app))
        redis_figures.update(measure_guard_in_process(app, options.pings))
        throughput = {stack: measure_throughput(app, client, stack, options.tasks, options.rounds, workdir)
                      for stack in ("guard", "standard")}
    finally:
        server.kill()
    report(redis_figures, throughput, options)


def report(redis_figures: dict[str, float], throughput: dict[str, dict[str, list[float]]], options) -> None:
    f = redis_figures
    print(f"\n### Redis lock cost (loopback, best of 3 x {options.pings})\n")
    print("| measure | µs | round trips | in PINGs |")
    print("|---|---:|---:|---:|")
    print(f"| PING | {f['ping_us']:.1f} | 1 | 1.00 |")
    print(f"| FencedLock acquire+release | {f['fenced_us']:.1f} | {f['fenced_trips']} | "
          f"{f['fenced_us'] / f['ping_us']:.2f} |")
    print(f"| redis-py Lock acquire+release | {f['plain_lock_us']:.1f} | {f['plain_lock_trips']} | "
          f"{f['plain_lock_us'] / f['ping_us']:.2f} |")
    overhead = f["guarded_us"] - f["body_us"]
    print(f"| guarded no-op run, in process (overlap + long-run) | {f['guarded_us']:.1f} | 2 | "
          f"{f['guarded_us'] / f['ping_us']:.2f} |")
    print(f"| of which the guard (run, policy, lock) | {overhead:.1f} | 2 | {overhead / f['ping_us']:.2f} |")
    print(f"| guarded no-op run, standard stack: round trips at start / at finish | | "
          f"{f['start_trips']:g} / {f['finish_trips']:g} | (targets: <= 2 / <= 1) |")
    print(f"\n### No-op task throughput, one prefork worker -c 2 "
          f"({options.rounds} alternating rounds x {options.tasks} tasks, median)\n")
    print("| middlewares | plain tasks/s | guarded tasks/s | guarded / plain (median of rounds) "
          "| range of round ratios | target |")
    print("|---|---:|---:|---:|---|---|")
    for stack, rates in throughput.items():
        plain, guarded = statistics.median(rates["plain"]), statistics.median(rates["guarded"])
        ratios = [g / p for g, p in zip(rates["guarded"], rates["plain"], strict=True)]
        label = "overlap + long-run" if stack == "guard" else "standard stack"
        target = ">= 85 %" if stack == "guard" else "(informative)"
        print(f"| {label} | {plain:.0f} | {guarded:.0f} | {statistics.median(ratios):.1%} | "
              f"{min(ratios):.0%} .. {max(ratios):.0%} | {target} |")
    print("\nper-round rates:", {s: {k: [round(x) for x in v] for k, v in r.items()} for s, r in throughput.items()})


if __name__ == "__main__":
    main()
