"""Every setting beatkeeper reads, in one table; ``beatkeeper settings`` prints it as ``.env.example``.

``.env`` is read by ``make run`` (``tasks.cli.runner``) and by every compose service (``env_file``), so
one file configures both. tests/containers/test_settings_table.py fails when the code reads a
variable this table lacks, or when ``.env.example`` is not what this command prints.
"""
from __future__ import annotations

from typing import NamedTuple

import click


class Setting(NamedTuple):
    name: str
    default: str  # as a user would write it; "" when there is none
    meaning: str
    required: bool = False  # compose refuses to start without it: uncommented in .env.example


GENERATED_BY = "beatkeeper settings > .env.example"

SECTIONS: dict[str, tuple[Setting, ...]] = {
    "Secrets (compose refuses to start without them; make run generates Flower's)": (
        Setting("REDIS_PASSWORD", "", "compose: Redis's password (REDIS_URL is built from it); with Sentinel, the "
                "master's and replicas' password", required=True),
        Setting("POSTGRES_PASSWORD", "", "compose: Postgres's password (DATABASE_URL is built from it)",
                required=True),
        Setting("FLOWER_BASIC_AUTH", "", "Flower's user:password, both non-empty (make run: generated in "
                "the data dir)", required=True),
    ),
    "Connections": (
        Setting("REDIS_URL", "redis://localhost:6379/0", "broker, beat store (redbeat), locks, heartbeats "
                "(make run: a local redis-server when unset; compose: built from REDIS_PASSWORD)"),
        Setting("CELERY_BROKER_URL", "REDIS_URL", "the broker apart from the state store: amqp:// (RabbitMQ, "
                "publisher confirms) or a second Redis"),
        Setting("BEATKEEPER_RABBITMQ_CONSUMER_TIMEOUT", "1800", "RabbitMQ: the server's consumer_timeout in "
                "seconds, as set in rabbitmq.conf (beat warns when a run may outlast it)"),
        Setting("CELERY_RESULT_BACKEND", "REDIS_URL", "task results"),
        Setting("DATABASE_URL", "sqlite:///<data dir>/history.db", "execution history, the deployment's one "
                "database: every host the same (compose: its Postgres)"),
        Setting("BEATKEEPER_DATA_DIR", "./var", "local state: SQLite history, generated credentials, logs "
                "(image: /var/lib/beatkeeper)"),
        Setting("BEATKEEPER_LOCAL_REDIS_PORT", "6379", "make run: port of the local redis-server"),
        Setting("BEATKEEPER_REDIS_CA_FILE", "the system's CAs", "rediss://: PEM bundle of the CA that signed "
                "Redis's certificate"),
        Setting("BEATKEEPER_REDIS_CERT_FILE", "", "rediss://: client certificate, when the server asks for one"),
        Setting("BEATKEEPER_REDIS_KEY_FILE", "", "rediss://: the client certificate's key"),
        Setting("BEATKEEPER_REDIS_TLS_VERIFY", "required", "rediss://: required, optional or none"),
        Setting("BEATKEEPER_NAMESPACE", "", "deployment name: prefixes every key (beatkeeper's, redbeat's, "
                "kombu's, results') so two deployments share one Redis database; unset: today's key names"),
        Setting("BEATKEEPER_REDIS_SENTINELS", "", "host:port,host:port,... of Redis Sentinels: they name the master "
                "of every client (REDIS_URL is then unused)"),
        Setting("BEATKEEPER_REDIS_SENTINEL_MASTER", "mymaster", "Sentinel: the master's name in the sentinels' "
                "configuration"),
        Setting("BEATKEEPER_REDIS_SENTINEL_PASSWORD", "", "Sentinel: the sentinels' own password (requirepass)"),
        Setting("BEATKEEPER_REDIS_SENTINEL_DB", "0", "Sentinel: the database number on the master"),
        Setting("BEATKEEPER_REDIS_SENTINEL_TLS", "0", "Sentinel: 1 for TLS to the sentinels and the master (with "
                "the BEATKEEPER_REDIS_CA_FILE/CERT_FILE/KEY_FILE/TLS_VERIFY settings)"),
        Setting("BEATKEEPER_EVICTION_CHECK", "error when readable, warn when not", "Redis eviction policy "
                "check at beat start: error, warn or off"),
    ),
    "Your code and schedule": (
        Setting("BEATKEEPER_TASK_MODULES", "", "task modules beyond tasks/user/, comma-separated"),
        Setting("BEATKEEPER_EXAMPLE", "", "run one of examples/ with the platform (transit, founders, booking, "
                "gift_exchange)"),
        Setting("BEATKEEPER_SCHEDULE", "schedules/user.yaml", "your schedule file (a path), added to the "
                "platform's"),
        Setting("BEATKEEPER_DISABLE", "", "entries beat leaves out (name1,name2); also "
                "<NAME>_SCHEDULER_DISABLED=1"),
        Setting("BEATKEEPER_TIMEZONE", "UTC", "default zone of cron, at and windows entries"),
        Setting("BEATKEEPER_MIN_INTERVAL", "10", "seconds: refuse entries that fire more often"),
        Setting("BEATKEEPER_MAX_RUNS_PER_HOUR", "1000", "per-task budget of projected runs per hour"),
        Setting("BEATKEEPER_MAX_LOCK_TTL", "3600", "seconds: the longest lock_ttl an entry or task may set"),
        Setting("BEATKEEPER_VISIBILITY_TIMEOUT", "max(2 x BEATKEEPER_MAX_LOCK_TTL, 7200)", "seconds: the "
                "broker redelivers an unacknowledged message after this"),
    ),
    "Beat and workers": (
        Setting("BEATKEEPER_LOOP_INTERVAL", "5", "seconds: beat's longest sleep between ticks"),
        Setting("BEATKEEPER_BEAT_LOCK_TIMEOUT", "30", "seconds: how long a dead beat holds the beat lock"),
        Setting("BEATKEEPER_REDBEAT_PREFIX", "redbeat:", "prefix of beat's keys in Redis"),
        Setting("BEATKEEPER_WORKER_CONCURRENCY", "0", "processes of the default worker (0: one per core)"),
        Setting("BEATKEEPER_HISTORY_DAYS", "30", "days of execution history kept"),
        Setting("BEATKEEPER_MAX_MESSAGE_BYTES", "1048576", "bytes: a larger task message is rejected, not run"),
        Setting("BEATKEEPER_TASK_SENT_EVENTS", "0", "1: task-sent events (celery-exporter's sent and queue-wait "
                "metrics; one more event per task)"),
        Setting("BEATKEEPER_DEBUG", "", "1: the CLI prints the traceback of an unexpected failure"),
    ),
    "Web surfaces": (
        Setting("FLOWER_PORT", "5555", "Flower's port"),
        Setting("FLOWER_HOST_PORT", "5555", "compose: the port of 127.0.0.1 that Flower is published on"),
        Setting("MONITOR_HOST_PORT", "8736", "compose: the port of 127.0.0.1 that the monitor is published on"),
        Setting("FLOWER_ADDRESS", "127.0.0.1", "Flower's address (compose: 0.0.0.0 inside the container)"),
        Setting("BEATKEEPER_MONITOR_BASIC_AUTH", "FLOWER_BASIC_AUTH", "the monitor's user:password (all but "
                "/healthz)"),
        Setting("BEATKEEPER_MONITOR_HOST", "127.0.0.1", "the monitor's address (compose: 0.0.0.0 inside the "
                "container)"),
        Setting("BEATKEEPER_MONITOR_PORT", "8736", "the monitor's port: the dashboard, /metrics, /healthz, /readyz"),
        Setting("BEATKEEPER_MONITOR_METRICS_OPEN", "0", "1: /metrics answers without credentials"),
        Setting("BEATKEEPER_FLOWER_URL", "", "Flower's address as a browser reaches it: the dashboard links runs "
                "there"),
        Setting("BEATKEEPER_MONITOR_INTERVAL", "5", "seconds between two evaluations of the alert rules"),
        Setting("BEATKEEPER_INSPECT_TIMEOUT", "1", "seconds the monitor waits for workers to answer inspect"),
        Setting("BEATKEEPER_SCHEDULE_REFRESH", "60", "seconds between two reads of the published schedule"),
    ),
    "Alerts": (
        Setting("BEATKEEPER_ALERT_WEBHOOK_URL", "", "POST each alert (JSON) here"),
        Setting("BEATKEEPER_ALERT_SMTP_HOST", "", "send each alert by e-mail through this server"),
        Setting("BEATKEEPER_ALERT_SMTP_PORT", "25", "its port"),
        Setting("BEATKEEPER_ALERT_SMTP_TLS", "ssl on 465, starttls on 587, else none", "ssl, starttls or none"),
        Setting("BEATKEEPER_ALERT_SMTP_USER", "", "login (none: no login)"),
        Setting("BEATKEEPER_ALERT_SMTP_PASSWORD", "", "its password"),
        Setting("BEATKEEPER_ALERT_SMTP_FROM", "beatkeeper@<host name>", "sender address"),
        Setting("BEATKEEPER_ALERT_SMTP_TO", "", "recipients, comma-separated (required with SMTP_HOST)"),
        Setting("BEATKEEPER_ALERT_SINK_ATTEMPTS", "8", "deliveries tried per alert before giving up"),
        Setting("BEATKEEPER_ALERT_REPEAT", "3600", "seconds: repeat a firing alert this often"),
        Setting("BEATKEEPER_ALERT_HEARTBEAT_MAX_AGE", "180", "seconds: heartbeat older than this alerts"),
        Setting("BEATKEEPER_MISSED_GRACE", "60", "seconds a run may be late before it counts as missed"),
        Setting("BEATKEEPER_MISSED_GRACE_FRACTION", "0.1", "... or this fraction of the entry's interval"),
        Setting("BEATKEEPER_ALERT_CONSECUTIVE_FAILURES", "3", "failures in a row that alert"),
        Setting("BEATKEEPER_ALERT_INVOCATIONS_PER_HOUR", "1000", "runs per hour of a plain task that alert"),
        Setting("BEATKEEPER_ALERT_EVENT_QUIET", "900", "seconds without task events that alert"),
        Setting("BEATKEEPER_ALERT_WORKERS_FOR", "30", "seconds with no worker answering before it alerts"),
    ),
    "Transit example (BEATKEEPER_EXAMPLE=transit): the GTFS pipeline": (
        Setting("GTFS_STATIC_URL", "", "the static GTFS feed to import"),
        Setting("GTFS_DATABASE_URL", "sqlite:///<data dir>/gtfs/gtfs.db", "where it is imported"),
        Setting("GTFS_PUBLISH_URL", "<data dir>/gtfs/published", "where the result is published"),
        Setting("GTFS_RT_URL", "", "the GTFS-RT feed each poll fetches (none: polls are recorded, nothing fetched)"),
    ),
    "Gift-exchange example (BEATKEEPER_EXAMPLE=gift_exchange): its database and mail server": (
        Setting("GIFT_DATABASE_URL", "sqlite:///<data dir>/gift_exchange.db", "its tables (or postgresql+psycopg2://)"),
        Setting("GIFT_SMTP_HOST", "", "the SMTP server its e-mails go through (required to send)"),
        Setting("GIFT_SMTP_PORT", "25", "its port"),
        Setting("GIFT_SMTP_TLS", "ssl on 465, starttls on 587, else none", "ssl, starttls or none"),
        Setting("GIFT_SMTP_USER", "", "login (none: no login)"),
        Setting("GIFT_SMTP_PASSWORD", "", "its password"),
        Setting("GIFT_SMTP_FROM", "sneaky-klaus@<host name>", "sender address"),
    ),
}

SETTINGS: dict[str, Setting] = {s.name: s for group in SECTIONS.values() for s in group}


def env_example() -> str:
    lines = [f"# Generated by `{GENERATED_BY}` from tasks/cli/settings.py: edit the table, not this file.",
             "# Copy to .env (never commit it) and fill in the secrets. `make run` and every compose service",
             "# read .env; a variable set in the shell wins. Commented lines show each default."]
    for title, settings in SECTIONS.items():
        lines += ["", f"## {title}"]
        for setting in settings:
            default = f" (default: {setting.default})" if setting.default else ""
            lines.append(f"# {setting.meaning}{default}")
            if setting.required:
                lines.append(f"{setting.name}=")
            elif setting.default and not setting.default.startswith(("max(", "<", "REDIS_URL", "FLOWER_", "ssl ")) \
                    and "<" not in setting.default:
                lines.append(f"# {setting.name}={setting.default}")
            else:
                lines.append(f"# {setting.name}=")
    return "\n".join(lines) + "\n"


@click.command("settings")
def command() -> None:
    """Print every setting with its default, as .env.example."""
    click.echo(env_example(), nl=False)
