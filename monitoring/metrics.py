"""Prometheus metrics for every run on every worker, counted in Redis.

Why Redis and not prometheus-client's multiprocess mode: multiprocess mode sums the files
that the processes of *one host* write to a shared directory. beatkeeper runs prefork
workers in several containers (and prefork children come and go), so a per-host sum would
need one scrape target per container and a shared volume per host, and a restarted
container would reset its counters. Every process already talks to one Redis: counting
there (``HINCRBY``, atomic, one pipelined round trip per run) gives one consistent total
that survives worker restarts, and any process can serve it. At scrape time a custom
collector reads the hashes and builds the metric families; gauges that describe state
(next fire, heartbeat age, invocations in the last hour) are read from where that state
already lives (redbeat's sorted set, the heartbeat set, the budget windows).

Names follow Prometheus's conventions and sit beside celery-exporter's: a ``beatkeeper_`` prefix,
the task in a ``name`` label (celery-exporter's), ``beatkeeper_build_info``.

Histograms are stored as per-bucket counts (the first bucket an observation fits, not
cumulative) plus a sum per label set; the collector makes them cumulative (the count is the +Inf bucket).
"""
from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib import metadata

import redis
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from monitoring.heartbeats import heartbeat_ages_s
from monitoring.namespace import namespaced

log = logging.getLogger(__name__)

PREFIX = namespaced("beatkeeper:metrics:")
RUNS_KEY = PREFIX + "runs"  # hash: [entry, task, status] -> runs
MISSES_KEY = PREFIX + "misses"  # hash: [entry] -> missed fires
OVERLAPS_KEY = PREFIX + "overlaps"  # hash: [entry, task] -> overlaps detected
DURATION_KEY = PREFIX + "duration"  # histogram hash over [task]
LATENESS_KEY = PREFIX + "lateness"  # histogram hash over [entry]
LAST_SUCCESS_KEY = PREFIX + "last_success"  # sorted set: entry -> unix time of its latest success
#: The budget's rolling windows (written by ``tasks.guard.budget``): a sorted set per task of the
#: instants of the runs it admitted, and the set of tasks that have one.
INVOCATIONS_PREFIX = namespaced("beatkeeper:budget:runs:")
INVOCATION_TASKS_KEY = namespaced("beatkeeper:budget:tasks")
INVOCATION_WINDOW_S = 3600.0
#: redbeat's schedule: score = next fire (unix seconds), member = "<prefix><entry>".
REDBEAT_PREFIX = "redbeat:"
#: The dead-letter list ``tasks.guard.identity`` writes (defined here, imported there: monitoring/ may not
#: import tasks/).
DEAD_LETTERS_KEY = namespaced("beatkeeper:dead_letters")

DURATION_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0)
LATENESS_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

_SEPARATOR = "\t"  # between the JSON labels and the histogram part; JSON escapes a tab, so it never clashes


def invocation_window_key(task: str) -> str:
    """The budget's rolling-hour window of ``task``."""
    return INVOCATIONS_PREFIX + task


def _labels(*values: str) -> str:
    return json.dumps(list(values), separators=(",", ":"))


def _bucket_of(value: float, buckets: Sequence[float]) -> str:
    for bound in buckets:
        if value <= bound:
            return repr(float(bound))
    return "+Inf"


class RunMetrics:
    """Writes the counters and histograms of each run to Redis, in one pipelined round trip."""

    def __init__(self, client: redis.Redis):
        self.client = client

    def record_run(self, *, entry: str, task: str, status: str, finished_at: float,
                   duration_s: float | None = None, lateness_s: float | None = None,
                   pipeline: redis.client.Pipeline | None = None) -> None:
        """Count one run that ended with ``status``; observe its duration and lateness when known.

        With ``pipeline`` the commands are only queued there (its owner sends them).
        """
        if pipeline is not None:
            self._queue_run(pipeline, entry=entry, task=task, status=status, finished_at=finished_at,
                            duration_s=duration_s, lateness_s=lateness_s)
            return
        with self.client.pipeline(transaction=False) as pipe:
            self._queue_run(pipe, entry=entry, task=task, status=status, finished_at=finished_at,
                            duration_s=duration_s, lateness_s=lateness_s)
            pipe.execute()

    @staticmethod
    def _queue_run(pipe, *, entry: str, task: str, status: str, finished_at: float, duration_s: float | None,
                   lateness_s: float | None) -> None:
        pipe.hincrby(RUNS_KEY, _labels(entry, task, status), 1)
        if status == "skipped_overlap":
            pipe.hincrby(OVERLAPS_KEY, _labels(entry, task), 1)
        if duration_s is not None:
            _observe(pipe, DURATION_KEY, _labels(task), duration_s, DURATION_BUCKETS_S)
        if lateness_s is not None and entry:
            _observe(pipe, LATENESS_KEY, _labels(entry), lateness_s, LATENESS_BUCKETS_S)
        if status == "success" and entry:
            pipe.zadd(LAST_SUCCESS_KEY, {entry: finished_at}, gt=True)

    def record_miss(self, *, entry: str, count: int = 1) -> None:
        """Count ``count`` fires of ``entry`` that never ran (the monitor calls this)."""
        self.client.hincrby(MISSES_KEY, _labels(entry), count)


def _observe(pipe, key: str, labels: str, value: float, buckets: Sequence[float]) -> None:
    pipe.hincrby(key, f"{labels}{_SEPARATOR}le={_bucket_of(value, buckets)}", 1)
    pipe.hincrbyfloat(key, f"{labels}{_SEPARATOR}sum", value)  # the count is the sum of the buckets


class BeatkeeperCollector(Collector):
    """Builds every beatkeeper metric family from Redis at scrape time."""

    def __init__(self, client: redis.Redis, *, clock: Callable[[], float] = time.time,
                 redbeat_prefix: str = REDBEAT_PREFIX):
        self.client = client
        self.clock = clock
        self.redbeat_prefix = redbeat_prefix

    def describe(self) -> Iterable[Metric]:
        return []  # nothing up front: registering must not read Redis

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        with self.client.pipeline(transaction=False) as pipe:
            for key in (RUNS_KEY, MISSES_KEY, OVERLAPS_KEY, DURATION_KEY, LATENESS_KEY):
                pipe.hgetall(key)
            pipe.zrange(LAST_SUCCESS_KEY, 0, -1, withscores=True)
            pipe.zrange(self.redbeat_prefix + ":schedule", 0, -1, withscores=True)
            pipe.smembers(INVOCATION_TASKS_KEY)
            pipe.llen(DEAD_LETTERS_KEY)
            runs, misses, overlaps, durations, lateness, last_success, next_fires, tasks, dead_letters = pipe.execute()

        yield build_info()
        yield _counter("beatkeeper_schedule_runs", "Runs that ended, by schedule entry ('' by hand), task and status.",
                       ["entry", "name", "status"], runs)
        yield _counter("beatkeeper_schedule_miss", "Scheduled fires that never ran.", ["entry"], misses)
        yield _counter("beatkeeper_task_overlap_detected",
                       "Runs that found the previous run of their job still running.", ["entry", "name"], overlaps)
        yield _histogram("beatkeeper_task_duration_seconds", "Seconds a task's body ran.", ["name"], durations,
                         DURATION_BUCKETS_S)
        yield _histogram("beatkeeper_schedule_lateness_seconds",
                         "Seconds from the scheduled fire instant to the start.", ["entry"], lateness,
                         LATENESS_BUCKETS_S)
        yield self._invocations(sorted(t for t in tasks), now)
        yield _gauge("beatkeeper_heartbeat_age_seconds", "Seconds since each component's last heartbeat.",
                     "component", heartbeat_ages_s(self.client, now=now).items())
        yield _gauge("beatkeeper_schedule_next_fire_timestamp", "Unix time of each entry's next scheduled fire.",
                     "entry", ((member.removeprefix(self.redbeat_prefix), score) for member, score in next_fires))
        yield _gauge("beatkeeper_schedule_last_success_timestamp", "Unix time each entry last ran successfully.",
                     "entry", ((member, score) for member, score in last_success))
        yield GaugeMetricFamily("beatkeeper_dead_letters", "Dead-lettered runs kept for a person to look at "
                                "(`beatkeeper dead-letters`).", value=dead_letters)

    def _invocations(self, tasks: list[str], now: float) -> Metric:
        with self.client.pipeline(transaction=False) as pipe:
            for task in tasks:
                pipe.zcount(invocation_window_key(task), f"({now - INVOCATION_WINDOW_S}", now)
            counts = pipe.execute() if tasks else []
        return _gauge("beatkeeper_task_invocations_per_hour",
                      "Runs each task's budget admitted in the last rolling hour.", "name", zip(tasks, counts))


def build_info() -> Metric:
    """``beatkeeper_build_info{version, celery, python} 1``: which code answers (Prometheus's convention)."""
    family = GaugeMetricFamily("beatkeeper_build_info", "beatkeeper's version, with Celery's and Python's.",
                               labels=["version", "celery", "python"])
    family.add_metric([package_version("beatkeeper"), package_version("celery"), platform.python_version()], 1.0)
    return family


def package_version(distribution: str) -> str:
    """An installed distribution's version; 'unknown' when it is not installed (run from a checkout)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def _counter(name: str, documentation: str, labels: list[str], raw: dict) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for field, value in sorted((k, int(v)) for k, v in raw.items()):
        family.add_metric(json.loads(field), value)
    return family


def _gauge(name: str, documentation: str, label: str, samples: Iterable[tuple[str, float]]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for value_label, value in samples:
        family.add_metric([value_label], float(value))
    return family


def _histogram(name: str, documentation: str, labels: list[str], raw: dict, buckets: Sequence[float]) -> Metric:
    per_series: dict[str, dict[str, float]] = {}
    for field, value in raw.items():
        series, part = field.split(_SEPARATOR, 1)
        per_series.setdefault(series, {})[part] = float(value)
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for series, parts in sorted(per_series.items()):
        cumulative, points = 0.0, []
        for bound in [repr(float(b)) for b in buckets] + ["+Inf"]:
            cumulative += parts.get(f"le={bound}", 0.0)
            points.append((bound, cumulative))
        family.add_metric(json.loads(series), points, sum_value=parts.get("sum", 0.0))
    return family



def metrics_registry(client: redis.Redis, *, clock: Callable[[], float] = time.time,
                     redbeat_prefix: str = REDBEAT_PREFIX) -> CollectorRegistry:
    """A registry holding only beatkeeper's collector (no process metrics of the serving process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BeatkeeperCollector(client, clock=clock, redbeat_prefix=redbeat_prefix))
    return registry


def exposition(registry: CollectorRegistry, *, accept: str | None = None) -> tuple[bytes, str]:
    """The ``/metrics`` body and its content type, in the format ``accept`` asks for (default: text)."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def metrics_wsgi_app(registry: CollectorRegistry) -> Callable:
    """A WSGI app answering ``GET /metrics`` with the registry's exposition; 404 elsewhere
    (the monitor mounts it: ``monitoring.server``)."""

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") not in ("/metrics", "/metrics/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"beatkeeper: metrics are at /metrics\n"]
        try:
            body, content_type = exposition(registry, accept=environ.get("HTTP_ACCEPT"))
        except Exception as exc:  # Redis down: say so with a 503, never hang the scraper
            log.warning("metrics scrape failed: %r", exc)
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [f"beatkeeper: metrics unavailable: {type(exc).__name__}\n".encode()]
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    return app
