"""Celery settings for beatkeeper, every one read from the environment.

Loaded by the app with ``config_from_object("celeryconfig")``. Tasks are named
by string only: this module imports from the project only
tasks.infra.redis_tls (TLS options for rediss:// URLs), tasks.infra.redis_sentinel (Sentinel's) and
monitoring.namespace (the deployment's key prefix).

| variable                      | default                         | meaning                               |
|-------------------------------|---------------------------------|---------------------------------------|
| REDIS_URL                     | redis://localhost:6379/0        | beat store, locks, claims, spool      |
| CELERY_BROKER_URL             | REDIS_URL                       | broker: amqp:// (RabbitMQ) or a Redis |
| BEATKEEPER_RABBITMQ_CONSUMER_TIMEOUT | 1800 (seconds)           | the RabbitMQ server's consumer_timeout|
| CELERY_RESULT_BACKEND         | REDIS_URL                       | task results                          |
| DATABASE_URL                  | sqlite:///<data dir>/history.db | execution history                     |
| BEATKEEPER_DATA_DIR           | ./var                           | local state (SQLite history, logs)    |
| BEATKEEPER_TIMEZONE           | UTC                             | default zone of cron/at/windows       |
| BEATKEEPER_LOOP_INTERVAL      | 5 (seconds)                     | beat's longest sleep between ticks    |
| BEATKEEPER_BEAT_LOCK_TIMEOUT  | 30 (seconds)                    | how long a dead beat holds the lock   |
| BEATKEEPER_MAX_LOCK_TTL       | 3600 (seconds)                  | the longest task lock TTL allowed     |
| BEATKEEPER_VISIBILITY_TIMEOUT | max(2 x max lock TTL, 7200) (s) | broker redelivers unacked after this  |
| BEATKEEPER_WORKER_CONCURRENCY | one per core                    | processes of the default worker       |
| BEATKEEPER_MAX_MESSAGE_BYTES  | 1048576                         | largest task message a worker accepts |
| BEATKEEPER_TASK_SENT_EVENTS   | 0                               | task-sent events (celery-exporter)    |
| FLOWER_BASIC_AUTH             | (none: the runner generates one)| Flower's user:password (read by Flower) |
| BEATKEEPER_EVICTION_CHECK     | (error if readable, else warn)  | Redis eviction self-check: error|warn|off |
| BEATKEEPER_REDIS_*_FILE, _TLS_VERIFY | (see tasks/infra/redis_tls.py) | TLS for rediss:// URLs               |
| BEATKEEPER_NAMESPACE          | (none: today's key names)       | deployment name prefixing every key   |
| BEATKEEPER_REDIS_SENTINEL*    | (see tasks/infra/redis_sentinel.py)   | Sentinel names the master (not REDIS_URL) |
"""
from __future__ import annotations

import os

from monitoring.namespace import key_prefix, namespaced  # the one place a deployment's keys are prefixed
from tasks.infra.redis_sentinel import sentinel_settings  # the one place Sentinel options are built
from tasks.infra.redis_tls import redis_ssl_options  # the one place rediss:// options are built


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _env_float(name: str, default: float) -> float:
    return float(_env(name, str(default)))


def _env_flag(name: str, default: bool) -> bool:
    raw = _env(name, "1" if default else "0").strip().lower()
    if raw not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError(f"{name}={raw!r}: expected 1/true/yes/on or 0/false/no/off")
    return raw in ("1", "true", "yes", "on")


redis_url = _env("REDIS_URL", "redis://localhost:6379/0")
database_url = _env("DATABASE_URL", "")  # empty: the history store picks its SQLite default

# -- broker and results ----------------------------------------------------
# The broker may live apart from the state store: RabbitMQ (amqp://) or a second Redis.
broker_url = _env("CELERY_BROKER_URL", redis_url)
result_backend = _env("CELERY_RESULT_BACKEND", redis_url)
# rediss://: certificate checks on by default, CA/client certificate from the settings (None: plain).
broker_use_ssl = redis_ssl_options(broker_url, strict=False)  # refused in one line at start
redis_backend_use_ssl = redis_ssl_options(result_backend, strict=False)
result_expires = 24 * 3600  # seconds
broker_connection_retry_on_startup = True
# A worker rides out a Redis outage of any length: it reconnects for ever instead of
# exiting after Celery's default of 100 attempts (about 50 minutes of backoff).
broker_connection_retry = True
broker_connection_max_retries = None
# Celery's consumer, except that a Redis dying under in-flight tasks no longer stops the
# worker (a Celery 5.7 close-path bug: see tasks/worker_consumer.py).
worker_consumer = "tasks.worker_consumer:BeatkeeperConsumer"
# A task message bigger than this is rejected unread (tasks/poison.py); schedules send small args.
beatkeeper_max_message_bytes = int(_env("BEATKEEPER_MAX_MESSAGE_BYTES", str(1024 * 1024)))

# JSON only: a pickled message is refused by the worker (never executed).
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]
event_serializer = "json"

# UTC internally; zones live on schedule entries, never on the process.
enable_utc = True
timezone = "UTC"

# -- delivery ---------------------------------------------------------------
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
# Processes of the default worker; the singleton worker always runs one (-c 1).
worker_concurrency = int(_env("BEATKEEPER_WORKER_CONCURRENCY", "0")) or None  # None: one per core
task_track_started = True
# Task-sent events (BEATKEEPER_TASK_SENT_EVENTS=1) feed celery-exporter's sent and queue-wait
# metrics and Flower's "sent" state, at the price of one more broker round trip per publish
# (a beat sending 1,000 entries at one instant pays 1,000 more). Off by default; Flower still
# sees received/started/succeeded from the workers.
task_send_sent_event = _env_flag("BEATKEEPER_TASK_SENT_EVENTS", False)
worker_send_task_events = True

#: The longest lock TTL a task may hold (seconds); locks are renewed while
#: their task runs, so this bounds only how long a dead worker's lock lingers.
max_lock_ttl_s = _env_float("BEATKEEPER_MAX_LOCK_TTL", 3600)

# The Redis broker redelivers an unacknowledged message once visibility_timeout
# passes, even when the first worker is still running it (late acks). It must
# therefore exceed the longest lock TTL and the longest task runtime, or a long
# run is handed to a second worker while the first still holds its lock. `beatkeeper check`
# refuses a lock_ttl or expires beyond it (an expires equal to it is fine: a redelivered
# message is then always past its expiry and dropped, never run twice).
broker_transport_options = {
    "visibility_timeout": int(_env_float("BEATKEEPER_VISIBILITY_TIMEOUT", max(2 * max_lock_ttl_s, 7200))),  # seconds
    "global_keyprefix": key_prefix(),  # BEATKEEPER_NAMESPACE: queues, unacked, bindings, pub/sub ("": none)
}
if broker_url.split("://", 1)[0] in ("amqp", "amqps", "pyamqp"):
    # RabbitMQ confirms each publish once it holds the message: a send that returned is in the
    # broker, so beat does not watch for lost dispatches there (tasks.beat.delivery_watch).
    broker_transport_options["confirm_publish"] = True
#: The RabbitMQ server's consumer_timeout (seconds): it closes the channel of a delivery unacked for
#: longer, and late acks hold one for the whole run. AMQP does not expose it: this is what the
#: operator states (default: RabbitMQ's own default, 30 min); see tasks/infra/broker.py.
rabbitmq_consumer_timeout_s = _env_float("BEATKEEPER_RABBITMQ_CONSUMER_TIMEOUT", 1800)
result_backend_transport_options = {"retry_policy": {"max_retries": 3}, "global_keyprefix": key_prefix()}

# -- queues -----------------------------------------------------------------
task_default_queue = "default"
task_create_missing_queues = True
#: Tasks routed by name; schedule entries may also set ``queue`` themselves.
task_routes = {
    "beatkeeper.singleton.*": {"queue": "singleton"},
}

# -- beat (redbeat) ---------------------------------------------------------
beat_scheduler = "tasks.beat:BeatkeeperScheduler"  # through tasks/beat/__init__.py
beat_max_loop_interval = _env_float("BEATKEEPER_LOOP_INTERVAL", 5)  # seconds
redbeat_redis_url = redis_url
redbeat_redis_options: dict = {}  # the beat's own client settings (none needed)
redbeat_redis_use_ssl = redis_ssl_options(redis_url, strict=False)
redbeat_key_prefix = namespaced(_env("BEATKEEPER_REDBEAT_PREFIX", "redbeat:"))  # and so the lock key
# A standby beat takes over once the dead leader's lock expires: keep it short
# (lock timeout >= 5 x loop interval, so a live leader always renews in time).
redbeat_lock_timeout = int(_env_float("BEATKEEPER_BEAT_LOCK_TIMEOUT", 30))  # seconds

# -- Redis Sentinel ------------------------------------------------------------
# With BEATKEEPER_REDIS_SENTINELS set, the sentinels name the master of every client: the broker,
# the result backend (unless CELERY_RESULT_BACKEND names another), redbeat and beatkeeper's own
# clients (tasks.infra.redis_client), each following a failover on its next reconnect. REDIS_URL is unused.
redis_sentinel = sentinel_settings(os.environ, strict=False)  # bad settings: refused in one line at start
if redis_sentinel is not None:
    redis_url = redis_sentinel.redbeat_url()  # redbeat's scheme; beatkeeper's clients ask the sentinels
    broker_url = redis_sentinel.broker_url()
    broker_use_ssl = redis_sentinel.tls
    broker_transport_options.update(redis_sentinel.transport_options())
    if not os.environ.get("CELERY_RESULT_BACKEND"):
        result_backend = broker_url
        redis_backend_use_ssl = redis_sentinel.tls
        result_backend_transport_options.update(redis_sentinel.transport_options())
    redbeat_redis_url = redis_url
    redbeat_redis_options = redis_sentinel.redbeat_options()
    redbeat_redis_use_ssl = redis_sentinel.tls
