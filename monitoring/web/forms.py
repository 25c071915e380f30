"""The confirmation page of each action and the reading of its posted form."""
from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import parse_qs

from monitoring.web.html import Markup, hidden_fields, link, page, tag
from schedules.durations import parse_duration_s

MAX_FORM_BYTES = 64 * 1024

#: action -> (question, what the target is)
ACTIONS = {"run_now": ("Run {target} now, with its arguments?", "entry"),
           "pause": ("Pause {target}? Its runs are skipped (skipped_paused) until resumed.", "entry or task"),
           "resume": ("Resume {target}?", "entry or task"),
           "resume_pipeline": ("Resume pipeline run {target} from its first step not done?", "pipeline run"),
           "requeue_dead_letter": ("Send dead-lettered run {target} again?", "dead letter")}


def confirm_page(action: str, target: str, *, csrf: str) -> bytes:
    question = ACTIONS[action][0].format(target="\0")
    before, _, after = question.partition("\0")
    fields = Markup("")
    if action == "pause":
        fields = Markup('<p><label>Until (ISO-8601 UTC, or a duration such as 2h; empty: until resumed) '
                        '<input name="until" id="until"></label></p>'
                        '<p><label>Reason <input name="reason" id="reason" size="50"></label></p>')
    form = tag("form", hidden_fields({"action": action, "target": target, "csrf": csrf}), fields,
               Markup('<button type="submit" id="confirm">Confirm</button> '), link("/", "Cancel"),
               method="post", action="/action")
    return page("Confirm", tag("div", tag("h1", before, tag("code", target), after), form, class_="box"),
                refresh_s=None)


def result_page(message: str, *, ok: bool, back: str = "/") -> bytes:
    return page("Done" if ok else "Refused", tag("div", tag("p", message, id="result", class_=None if ok else "err"),
                                                 link(back, "Back"), class_="box"), refresh_s=None)


def read_form(environ: dict) -> dict[str, str]:
    """The posted urlencoded form, first value per field (a body over 64 KiB is cut)."""
    try:
        length = min(int(environ.get("CONTENT_LENGTH") or 0), MAX_FORM_BYTES)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length).decode("utf-8", "replace") if length else ""
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def parse_until(text: str, *, now: float) -> float | None:
    """Unix seconds from an ISO-8601 instant (naive means UTC, as ``beatkeeper pause --until``) or a duration."""
    text = text.strip()
    if not text:
        return None
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        try:
            return now + parse_duration_s(text)
        except ValueError:
            raise ValueError(f"until {text!r}: neither an ISO-8601 instant nor a duration such as 2h") from None
    return (instant if instant.tzinfo else instant.replace(tzinfo=timezone.utc)).timestamp()

