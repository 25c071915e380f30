"""The dashboard's pages as HTML, from the data functions' JSON (so page and JSON never disagree).
Every value is escaped by ``monitoring.web.html``; links carry names as query parameters."""
from __future__ import annotations

import functools
import html
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote_plus

from monitoring.history import RUN_STATUSES
from monitoring.web.html import Markup, e, join, link, page, state_label, table, tag
from monitoring.web.overview_data import ROW_STATES
from monitoring.web.svg import durations_plot, run_strip


def overview_page(data: dict[str, Any]) -> bytes:
    f = data["filters"]
    queues = sorted(data.get("queues") or {}) or sorted({r["queue"] for r in data["entries"]})
    form = tag("form", "State ", _select("state", [""] + list(ROW_STATES), f["state"]), " Queue ",
               _select("queue", [""] + queues, f["queue"]), " ",
               Markup(f'<input type="search" name="search" value="{e(f["search"])}" placeholder="entry or task">'),
               " ", Markup('<button type="submit">Filter</button>'), method="get", action="/")
    headers = ("entry", "state", "task", "schedule", "next fires (local · UTC)", "next DST", "last run",
               "late", "took", "last runs", "paused", "budget", "alerts", "")
    rows = Markup("".join(_overview_row(r) for r in data["entries"]))  # one f-string a row: 1,000 rows stay fast
    head = Markup("".join(f"<th>{e(h)}</th>" for h in headers))
    body = join([tag("h1", "Schedule"), _problems(data), form,
                 tag("p", f"{len(data['entries'])} of {data['entries_total']} entries · at {_utc(data['at'])} · ",
                     link("/overview.json", "JSON", **{k: v for k, v in f.items() if v}), class_="muted"),
                 Markup(f'<table id="entries"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>')])
    return page("Overview", body)


def _overview_row(r: dict[str, Any]) -> str:
    start, q = _name_cell(r["name"])
    # instants and seconds below are formatted here from datetimes and numbers: nothing to escape
    fires = "".join(f"<div>{f['local']} · <small>{_utc(f['utc'])}</small></div>" for f in r["next_fires"]) or "-"
    last = r["last_run"]
    last_text = "-" if last is None else (
        f"{_esc(last['status'])} <small>{_utc(last['finished_at'])}</small>"
        + (f'<div class="err">{_esc(last["detail"])}</div>' if last["detail"] else ""))
    pause = r["pause"]
    paused = "-" if pause is None else (
        f"until {_utc(pause['until']) if pause['until'] else 'resumed'}"
        + (f'<div class="muted">{_esc(pause["reason"])}</div>' if pause["reason"] else "")
        + (f"<small>by {_esc(pause['by'])}</small>" if pause["by"] else ""))
    budget = r["budget"]
    used = f"{budget['used_last_hour']}/{budget['per_hour']} per h" if budget["per_hour"] else "-"
    dst = "-" if r["next_dst"] is None else _dst_cell(r["next_dst"]["effect"], r["next_dst"]["detail"])
    toggle = "resume" if pause else "pause"
    return (f"{start}{_state_cell(r['row_state'])}{_definition_cells(r['task'], r['schedule'], r['timezone'])}"
            f"<td>{fires}</td><td>{dst}</td><td>{last_text}</td>"
            f"<td>{_seconds(r['lateness_s'])}</td><td>{_seconds(r['duration_s'])}</td>"
            f"<td>{_strip(tuple((x['status'], x['lateness_s']) for x in r['recent_runs']))}</td><td>{paused}</td>"
            f"<td>{used}</td><td>{_esc(', '.join(r['alerts'])) or '-'}</td>"
            f'<td><a href="/confirm?action=run_now&amp;target={q}">run now</a> '
            f'<a href="/confirm?action={toggle}&amp;target={q}">{toggle}</a></td></tr>')


# The parts of a row that change only with the entry's definition (or that a few values cover),
# kept between renders: the page is drawn again every few seconds for the same entries.
_esc = html.escape


@functools.lru_cache(maxsize=16_384)
def _name_cell(name: str) -> tuple[str, str]:
    """The row's start up to the entry's link, and the name quoted for the action links."""
    q = _esc(quote_plus(name))
    return f'<tr><td><a href="/entry?name={q}">{_esc(name)}</a></td>', q


@functools.lru_cache(maxsize=16_384)
def _definition_cells(task: str, schedule: str, timezone_name: str) -> str:
    return f'<td>{_esc(task)}</td><td>{_esc(schedule)}<div class="muted">{_esc(timezone_name)}</div></td>'


@functools.lru_cache(maxsize=64)
def _state_cell(state: str) -> str:
    return f'<td><span class="s {_esc(state.replace(" ", "-"))}">{_esc(state)}</span></td>'


@functools.lru_cache(maxsize=1024)
def _dst_cell(effect: str, detail: str) -> str:
    return f'<span title="{_esc(detail)}">{_esc(effect)}</span>'


@functools.lru_cache(maxsize=16_384)  # an entry's last runs are the same until it runs again
def _strip(runs: tuple[tuple[str, float | None], ...]) -> str:
    return run_strip(runs)


def entry_page(data: dict[str, Any]) -> bytes:
    name, row, history = data["name"], data["status"], data["history"]
    head = join([tag("h1", name, " ", state_label(row["row_state"])),
                 tag("p", row["task"], " · ", row["schedule"], " (", row["timezone"], ") · queue ", row["queue"], " · ",
                     link("/entry.json", "JSON", name=name), " · ", link("/badge.svg", "badge", name=name), " · ",
                     link("/confirm", "run now", action="run_now", target=name), " · ",
                     link("/confirm", "resume", action="resume", target=name) if row["pause"] else
                     link("/confirm", "pause", action="pause", target=name))])
    args = tag("p", "args ", tag("code", _json(data["args"])), " kwargs ", tag("code", _json(data["kwargs"])))
    policy = table(("policy", "value"), [(k, "-" if v is None else _json(v)) for k, v in data["policy"].items()])
    filters = tag("form", *(Markup(f'<label><input type="checkbox" name="status" value="{e(s)}"'
                                   f'{" checked" if s in history["statuses"] else ""}>{e(s)}</label> ')
                            for s in RUN_STATUSES),
                  Markup(f'<input type="hidden" name="name" value="{e(name)}"><button type="submit">Filter</button>'),
                  method="get", action="/entry")
    runs = [(r["status"], _utc(r["finished_at"]), _utc(r["fire_at"]) if r["fire_at"] else "by hand",
             _seconds(r["lateness_s"]), _seconds(r["duration_s"]), r["attempt"], r["hostname"],
             join([r["error_type"] or "", ": " if r["error_type"] else "", r["error_message"] or r["reason"] or ""]),
             link(r["flower_url"], r["task_id"]) if r["flower_url"] else r["task_id"]) for r in history["runs"]]
    pages = max(1, -(-history["total"] // history["page_size"]))
    pager = join([link("/entry", "« newer", name=name, status=history["statuses"], page=history["page"] - 1)
                  if history["page"] > 1 else "", f" page {history['page']} of {pages} ({history['total']} runs) ",
                  link("/entry", "older »", name=name, status=history["statuses"], page=history["page"] + 1)
                  if history["page"] < pages else ""])
    plot = durations_plot([(datetime.fromisoformat(r["finished_at"]), r["duration_s"], r["lateness_s"])
                           for r in history["runs"]])
    dst = table(("change (UTC)", "kind", "effect", "detail"),
                [(_utc(row["at_utc"]), row["kind"], row["effects"][name]["effect"], row["effects"][name]["detail"])
                 for row in data["dst"] if name in row["effects"]]) if data["dst"] else tag("p", "no DST change in the "
                                                                                               "year ahead", class_="muted")
    body = join([head, _problems({"problems": [history["problem"]] if history["problem"] else []}),
                 tag("p", data["description"]) if data["description"] else "", args,
                 tag("h2", "Durations and lateness"), tag("div", plot, class_="box"),
                 tag("h2", "History"), filters, pager,
                 table(("status", "finished (UTC)", "instant (UTC)", "late", "took", "attempt", "host", "error / reason",
                        "task id"), runs, id="history"),
                 tag("h2", "Policy"), policy, tag("h2", "DST in the year ahead"), dst])
    return page(name, body)


def platform_page(data: dict[str, Any]) -> bytes:
    beats = [(component, _seconds(age)) for component, age in sorted(data["heartbeat_ages_s"].items())]
    lock = "not held: beat is not running" if data["beat_lock_ttl_s"] is None else f"held, {data['beat_lock_ttl_s']:.0f} s left"
    queues = data["queues"]
    queue_rows = [] if queues is None else [(q, f["pending"], join(f["consumers"], ", ") or "NO CONSUMER",
                                            len(f["entries"])) for q, f in sorted(queues.items())]
    locks = [(x["key"], _seconds(x["ttl_s"]) if x["ttl_s"] is not None else "no expiry",
              _json(x["holder"]) if x["holder"] else "?") for x in data["locks"]]
    letters = [(x.get("run_id"), x.get("entry") or "-", x.get("task"), _json(x.get("args")), _json(x.get("kwargs")),
                x.get("deaths"), _utc_s(x.get("at")),
                link("/confirm", "requeue", action="requeue_dead_letter", target=x.get("run_id", "")))
               for x in data["dead_letters"]]
    runs = [(r["run_id"], r["pipeline"], r["state"], r["entry"] or "by hand", _utc(r["created_at"]),
             join([tag("div", s["step"], ": ", s["status"], f" ({s['attempts']})" if s["attempts"] else "",
                       tag("span", " ", s["error"], class_="err") if s["error"] else "") for s in r["steps"]]),
             r["error"] or "", link("/confirm", "resume", action="resume_pipeline", target=r["run_id"])
             if r["state"] in ("failed", "stalled", "abandoned") else "") for r in data["pipeline_runs"]]
    body = join([tag("h1", "Platform"), _problems(data), tag("p", link("/platform.json", "JSON"), class_="muted"),
                 tag("h2", "Heartbeats"), table(("component", "age"), beats), tag("p", "beat lock: ", lock),
                 tag("h2", "Queues"), table(("queue", "waiting", "consumers", "entries"), queue_rows)
                 if queues is not None else tag("p", "not known yet: the monitor has not evaluated", class_="muted"),
                 tag("h2", "Locks held"), table(("key", "left", "holder"), locks),
                 tag("h2", "Dead letters"), table(("run", "entry", "task", "args", "kwargs", "deaths", "at", ""), letters),
                 tag("h2", "Pipeline runs"), table(("run", "pipeline", "state", "entry", "created", "steps", "error", ""),
                                                   runs)])
    return page("Platform", body)


def alerts_page(data: dict[str, Any]) -> bytes:
    firing = [(a["severity"], a["rule"], _subject(a["subject"]), a["summary"], _utc_s(a["since"])) for a in data["firing"]]
    resolved = [(a["severity"], a["rule"], _subject(a["subject"]), a["summary"], _utc_s(a["since"]),
                 _utc_s(a["resolved_at"])) for a in data["resolved"]]
    body = join([tag("h1", "Alerts"), _problems(data), tag("p", link("/alerts.json", "JSON"), class_="muted"),
                 tag("h2", f"Firing ({len(firing)})"), table(("severity", "rule", "subject", "summary", "since"), firing),
                 tag("h2", "Recently resolved"),
                 table(("severity", "rule", "subject", "summary", "since", "resolved"), resolved)])
    return page("Alerts", body)


def _subject(subject: str) -> Markup:
    return link("/entry", subject, name=subject)


def _select(name: str, options: list[str], chosen: str) -> Markup:
    items = join(Markup(f'<option value="{e(o)}"{" selected" if o == chosen else ""}>{e(o or "any")}</option>')
                 for o in options)
    return Markup(f'<select name="{e(name)}">{items}</select>')


def _problems(data: dict[str, Any]) -> Markup:
    problems = data.get("problems") or []
    return tag("div", *(tag("div", p) for p in problems), class_="box err") if problems else Markup("")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s" if abs(value) < 120 else f"{value / 60:.0f} min"


def _utc(iso: str | None) -> str:
    if not iso:
        return "-"
    if iso.endswith("+00:00") and len(iso) >= 25:  # the JSON's instants are UTC already: no parsing
        return iso[:10] + " " + iso[11:19] + "Z"
    return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _utc_s(unix_s: float | None) -> str:
    return "-" if unix_s is None else datetime.fromtimestamp(float(unix_s), timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)
