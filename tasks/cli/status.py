"""``beatkeeper status``: one screen for the 3 a.m. reader (``--json`` for scripts).

Heartbeat ages, beat's lock, workers and queues, then each entry: its state, last run,
next fire (in its zone and UTC) and pause; then the locks held and the alerts firing.
Whatever could not be read is listed at the end instead of being left out.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

import click
import redis

from monitoring.rules import CeleryWorkers
from monitoring.status import EntryStatus, StatusReport, gather_status
from tasks import app
from tasks.infra.broker import broker_queues
from tasks.cli import EXIT_UNREACHABLE
from tasks.cli.common import local_and_utc, utc_now
from tasks.cli.monitor import monitor_redis
from tasks.dynamic.specs import readable_dynamic_specs
from tasks.wiring import platform_keys, queue_router, specs_loader
from tasks.infra.errors import infra_error_line
from tasks.guard.pause import PauseStore

ENTRY_COLUMNS = ("entry", "state", "task", "last run", "next fire", "paused")


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option("--no-workers", is_flag=True, help="Do not ask the workers which queues they consume (faster).")
@click.option("--inspect-timeout", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Seconds the workers get to answer.")
def command(as_json: bool, no_workers: bool, inspect_timeout: float) -> None:
    """Show heartbeats, workers and queues, every entry's last and next run, locks and firing alerts."""
    now = utc_now()
    specs = specs_loader(app)(now)  # the schedule's own problems are said first
    client = monitor_redis(app.conf.redis_url, timeout_s=2.0, retries=False)
    specs.update(readable_dynamic_specs(client, now))  # the dynamic entries, when Redis answers
    unreachable = None
    try:
        client.ping()
    except redis.RedisError as exc:  # said first, then what could be read (schedule, history); exit 3
        unreachable = infra_error_line(exc)
        click.echo(f"beatkeeper: {unreachable} (what could be read follows)", err=True)
        no_workers = True  # the workers are asked through the same Redis
    pauses: dict[str, str] = {}
    try:
        pauses = {p.name: p.describe() for p in PauseStore(client).list_pauses(now=now.timestamp())}
    except redis.RedisError:
        pass  # gather_status reports Redis being unreachable
    report = gather_status(client=client, specs=specs, now=now, history=app.beatkeeper.history,
                           workers=None if no_workers else CeleryWorkers(app, timeout_s=inspect_timeout),
                           pauses=pauses, keys=platform_keys(app), queue_of=queue_router(app),
                           broker=broker_queues(app))  # queue depth from the broker, wherever it is
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else render(report))
    if unreachable is not None:
        click.get_current_context().exit(EXIT_UNREACHABLE)


def render(report: StatusReport) -> str:
    """The one screen."""
    lines = [f"beatkeeper status at {_utc(report.at)}", ""]
    ages = report.heartbeat_ages_s
    beats = "  ".join(f"{component} {_age(age)} ago" for component, age in sorted(ages.items()))
    lines.append(f"heartbeats   {beats or 'none recorded'}")
    redis_away = any(p.startswith("Redis is unreachable") for p in report.problems)
    lock = "unknown: Redis is unreachable" if redis_away else "not held: beat is not running" \
        if report.beat_lock_ttl_s is None else f"held ({report.beat_lock_ttl_s:.0f} s left)"
    lines.append(f"beat lock    {lock}")
    if report.workers is None:
        lines.append("workers      not asked")
    else:
        lines.append("workers      " + ("; ".join(f"{w}: {', '.join(q)}" for w, q in sorted(report.workers.items()))
                                       or "none answered"))
    for queue, facts in sorted(report.queues.items()):
        consumers = len(facts["consumers"])
        unconsumed = report.workers is not None and not consumers and (facts["entries"] or facts["pending"])
        warn = "  << NO CONSUMER" if unconsumed else ""
        asked = "" if report.workers is None else f", {consumers} consumer(s)"
        lines.append(f"queue        {queue}: {facts['pending']} waiting{asked}{warn}")
    lines += ["", _table([ENTRY_COLUMNS] + [_entry_row(e) for e in report.entries])]
    lines += ["", f"locks held ({len(report.locks)})"]
    for lock_ in report.locks:
        holder = lock_["holder"] or {}
        ttl = "no expiry" if lock_["ttl_s"] is None else f"{lock_['ttl_s']:.0f} s left"
        lines.append(f"  {lock_['key']}  {holder.get('task_id', '?')} on {holder.get('hostname') or '?'}, {ttl}")
    lines += ["", f"firing alerts ({len(report.alerts)})"]
    for alert in report.alerts:
        since = datetime.fromtimestamp(alert["since"], timezone.utc)
        lines.append(f"  [{alert['severity']}] {alert['rule']} {alert['subject']}: {alert['summary']} "
                     f"(since {_utc(since)})")
    if report.problems:
        lines += ["", "could not read"] + [f"  {p}" for p in report.problems]
    return "\n".join(lines)


def _entry_row(entry: EntryStatus) -> tuple[str, ...]:
    last = entry.last_run
    last_text = "-" if last is None else f"{last['status']} at {_utc(last['finished_at'])}"
    nxt = "-" if entry.next_fire_at is None else local_and_utc(entry.next_fire_at, entry.timezone)
    return (entry.name, entry.state.upper() if entry.state != "ok" else "ok", entry.task, last_text, nxt,
            entry.paused or "-")


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def _utc(instant: datetime) -> str:
    return instant.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _age(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
