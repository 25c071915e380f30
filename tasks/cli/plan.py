"""``beatkeeper plan``: fires, DST changes and projected cost of the schedule over a window.

``--json`` prints :meth:`schedules.plan.Plan.to_json` (every fire unless ``--fires N``);
the text form lists at most ``--fires`` (default 20) fires per entry.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import timedelta, timezone
from pathlib import Path

import click
import redis

from schedules.plan import CURRENCY, DEFAULT_COST_PER_WORKER_HOUR, DEFAULT_EXPECTED_RUNTIME_S, Plan, build_plan
from tasks import app
from tasks.cli.common import LoadedSchedule, config_option, load_schedule, local_and_utc, parse_instant, utc_now
from tasks.infra_errors import infra_error_line

DEFAULT_DAYS = 7.0
DEFAULT_FIRES_SHOWN = 20  # text form: a long list helps nobody; the count says the rest


@click.command("plan")
@config_option
@click.option("--start", help="Window start, ISO-8601 (naive means UTC). Default: now.")
@click.option("--end", help="Window end, ISO-8601 (naive means UTC). Exclusive with --days.")
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=None,
              help=f"Window length in days (default {DEFAULT_DAYS:g}).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--cost-per-worker-hour", type=click.FloatRange(min=0), default=DEFAULT_COST_PER_WORKER_HOUR,
              show_default=True, help=f"Price of one worker-hour in {CURRENCY}.")
@click.option("--fires", "fires_shown", type=click.IntRange(min=0), default=None,
              help=f"Fires listed per entry (default: {DEFAULT_FIRES_SHOWN} in text, all with --json).")
@click.option("--compare", "compare_paths", multiple=True, type=click.Path(path_type=Path),
              help="Another schedule file (repeatable): its runs and cost side by side with this one's.")
def command(config_path: Path | None, start: str | None, end: str | None, days: float | None,
            as_json: bool, cost_per_worker_hour: float, fires_shown: int | None,
            compare_paths: tuple[Path, ...]) -> None:
    """Show when each entry fires, what DST does to it, and what it costs."""
    now = utc_now()
    start_at = now if start is None else parse_instant(start, option="--start")
    if end is not None and days is not None:
        raise click.UsageError("give --end or --days, not both")
    end_at = (start_at + timedelta(days=days or DEFAULT_DAYS)) if end is None else parse_instant(end, option="--end")
    if end_at <= start_at:
        raise click.UsageError(f"the window is empty: end {end_at.isoformat()} is not after start {start_at.isoformat()}")
    loaded = load_schedule(config_path, now=now)
    if config_path is None:  # the deployment's schedule: its dynamic entries too
        loaded = with_dynamic_entries(loaded)
    plan = build_plan(loaded.schedule, start=start_at, end=end_at,
                      cost_per_worker_hour=cost_per_worker_hour, left_out=loaded.left_out)
    compared = [(_label(config_path), plan)]
    for path in compare_paths:
        other = load_schedule(path, now=now)
        compared.append((_label(path), build_plan(other.schedule, start=start_at, end=end_at,
                                                  cost_per_worker_hour=cost_per_worker_hour,
                                                  left_out=other.left_out)))
    if as_json:
        body = plan.to_json(max_fires=fires_shown)
        if compare_paths:
            body["compare"] = [{"schedule": label, "total": p.total.to_json()} for label, p in compared]
        click.echo(json.dumps(body, indent=2))
    else:
        text = render_text(plan, fires_shown=DEFAULT_FIRES_SHOWN if fires_shown is None else fires_shown)
        click.echo(text + ("\n\n" + "\n".join(compare_table(compared)) if compare_paths else ""))


def with_dynamic_entries(loaded: LoadedSchedule) -> LoadedSchedule:
    """``loaded`` plus the dynamic entries stored in Redis (``tasks.dynamic_entries``); Redis
    unreachable: the file's entries only, said in one line on stderr."""
    from tasks.dynamic_specs import dynamic_specs, short_redis

    client = short_redis(app.conf.redis_url)
    try:
        found = dynamic_specs(client, loaded.now)
    except redis.RedisError as exc:
        click.echo(f"warning: dynamic entries not shown: {infra_error_line(exc) or exc}", err=True)
        return loaded
    finally:
        client.close()
    schedule = replace(loaded.schedule, entries={**loaded.schedule.entries, **found})
    return replace(loaded, schedule=schedule, kept={**loaded.kept, **found})


def _label(path: Path | None) -> str:
    return "the platform schedule" if path is None else Path(path).stem


def render_text(plan: Plan, *, fires_shown: int) -> str:
    """The plan for people: fires per entry, the DST table, the cost table."""
    utc = timezone.utc
    lines = [f"plan {plan.start.astimezone(utc).isoformat()} .. {plan.end.astimezone(utc).isoformat()} "
             f"({plan.window_hours:g} h)", ""]
    for name, entry in plan.entries.items():
        lines.append(f"{name}: {entry.spec.task}, {entry.spec.trigger.describe()}")
        if entry.left_out:
            lines.append(f"  LEFT OUT: {entry.left_out}")
            continue
        shown = itertools.islice(entry.iter_fires(), fires_shown)
        lines.extend(f"  {local_and_utc(fire, entry.spec.timezone)}" for fire in shown)
        if entry.fire_count > fires_shown:
            lines.append(f"  ... {entry.fire_count - fires_shown} more ({entry.fire_count} in all)")
        if not entry.fire_count:
            lines.append("  (no fires in the window)")
    inside = [row for row in plan.dst if row.in_window]
    beyond = [row for row in plan.dst if not row.in_window]
    lines += ["", "DST changes in the window:" if inside else "DST changes in the window: none"]
    lines += _dst_lines(inside)
    if beyond:
        lines += ["", "next DST changes, after the window (BEYOND THE WINDOW):", *_dst_lines(beyond)]
    lines += ["", *_cost_table(plan)]
    return "\n".join(lines)


def _dst_lines(rows) -> list[str]:
    lines = []
    for row in rows:
        change = row.transition
        lines.append(f"  {change.at.strftime('%Y-%m-%dT%H:%M:%SZ')} {row.timezone} {change.kind} "
                     f"{_offset(change.offset_before_s)} -> {_offset(change.offset_after_s)}")
        lines.extend(f"    {entry}: {effect.effect}: {effect.detail}" for entry, effect in row.effects.items())
    return lines


def compare_table(compared: list[tuple[str, Plan]]) -> list[str]:
    """Each schedule's totals on one row: runs per hour/day/month, worker-hours and cost."""
    header = ("schedule", "runs/h", "runs/day", "runs/month", "worker-h/month", f"{CURRENCY}/month")
    cells = [header] + [(label, *(f"{v:,.2f}" for v in (p.total.runs_per_hour, p.total.runs_per_day,
                                                         p.total.runs_per_month, p.total.worker_hours_per_month,
                                                         p.total.cost_per_month)))
                        for label, p in compared]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["compared (totals):", *("  " + "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                                                     for i, (cell, w) in enumerate(zip(row, widths)))
                                    for row in cells)]


def _offset(seconds: int) -> str:
    sign = "+" if seconds >= 0 else "-"
    hours, rest = divmod(abs(seconds), 3600)
    return f"{sign}{hours:02d}:{rest // 60:02d}"


def _cost_table(plan: Plan) -> list[str]:
    header = ("entry", "runs/h", "runs/day", "runs/month", "worker-h/month", f"{CURRENCY}/month")
    rows = [(name, c.runs_per_hour, c.runs_per_day, c.runs_per_month, c.worker_hours_per_month, c.cost_per_month)
            for name, c in [*plan.costs.items(), ("TOTAL", plan.total)]]
    cells = [header] + [(r[0], *(f"{v:,.2f}" for v in r[1:])) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    table = ["  " + "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                              for i, (cell, w) in enumerate(zip(row, widths))) for row in cells]
    assumed = sorted(n for n in plan.costs if plan.entries[n].spec.expected_runtime_s is None)
    notes = [f"cost at {plan.cost_per_worker_hour:g} {CURRENCY} per worker-hour, 30-day month, "
             f"scaled from the fires in the window, rounded up to whole days or weeks of a calendar"]
    if assumed:
        notes.append(f"no expected_runtime, assumed {DEFAULT_EXPECTED_RUNTIME_S:g} s per run: {', '.join(assumed)}")
    return ["cost projection:", *table, *(f"  note: {n}" for n in notes)]
