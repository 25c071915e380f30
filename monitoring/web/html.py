"""A tiny HTML helper: every value that reaches a page goes through :func:`e` (escaped), so
entry names, arguments and error messages written by user code are shown as text.

Markup is built with :class:`Markup` (already-safe HTML) and :func:`tag`; plain strings are
always escaped. No template engine: a dozen small pages do not pay for one.
"""
from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from urllib.parse import urlencode

#: Seconds between the pages' own reloads (meta refresh: no JavaScript).
REFRESH_S = 15

_STYLE = """
body{font:14px system-ui,sans-serif;margin:0;color:#1d2733;background:#f6f7f9}
header{background:#1d2733;color:#fff;padding:.5em 1em}header a{color:#cfe3ff;margin-right:1em}
main{padding:1em}table{border-collapse:collapse;background:#fff;width:100%}
th,td{border-bottom:1px solid #e3e6ea;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#eef1f4}.s{display:inline-block;padding:0 .4em;border-radius:3px;color:#fff;font-size:12px}
.ok{background:#2e7d32}.paused{background:#6d6d6d}.running{background:#1565c0}.late{background:#ef6c00}
.missed{background:#c62828}.failing{background:#b71c1c}.never-ran{background:#90a4ae}
.skipped-by-overlap{background:#8e24aa}.dead-lettered{background:#4e342e}.not-registered{background:#455a64}
.muted{color:#6b7785}form.inline{display:inline}.err{color:#b71c1c}small{color:#6b7785}
.box{background:#fff;padding:.6em 1em;margin:.6em 0;border:1px solid #e3e6ea}
"""


class Markup(str):
    """HTML that is already safe: not escaped again."""


def e(value: object) -> Markup:
    """``value`` as text in HTML (Markup passes through)."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[object], sep: str = "") -> Markup:
    return Markup(sep.join(e(p) for p in parts))


def tag(name: str, *children: object, **attrs: object) -> Markup:
    """``<name attrs>children</name>``; ``class_`` for class, ``None``/False attributes left out."""
    rendered = "".join(f' {k.rstrip("_").replace("_", "-")}="{e(v)}"' if v is not True else f" {k.rstrip('_')}"
                       for k, v in attrs.items() if v is not None and v is not False)
    return Markup(f"<{name}{rendered}>{join(children)}</{name}>")


def link(href: str, text: object, **params: object) -> Markup:
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")}, doseq=True)
    return tag("a", text, href=href + (f"?{query}" if query else ""))


def state_label(state: str) -> Markup:
    return tag("span", state, class_=f"s {state.replace(' ', '-')}")


def table(headers: Iterable[str], rows: Iterable[Iterable[object]], **attrs: object) -> Markup:
    head = tag("tr", *(tag("th", h) for h in headers))
    body = join(tag("tr", *(tag("td", c) for c in row)) for row in rows)
    return tag("table", Markup(f"<thead>{head}</thead><tbody>{body}</tbody>"), **attrs)


def page(title: str, body: Markup, *, refresh_s: int | None = REFRESH_S, base: str = "") -> bytes:
    """A whole page: the navigation, ``body``, and a meta refresh (None for pages with a form to fill)."""
    nav = join([tag("strong", "beatkeeper"), " ", link(f"{base}/", "Overview"), link(f"{base}/platform", "Platform"),
                link(f"{base}/alerts", "Alerts")])
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_s)}">' if refresh_s else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">{refresh}'
            f'<meta name="viewport" content="width=device-width"><title>{e(title)} · beatkeeper</title>'
            f"<style>{_STYLE}</style></head><body><header>{nav}</header><main>{body}</main></body></html>").encode()


def hidden_fields(fields: Mapping[str, object]) -> Markup:
    return join(Markup(f'<input type="hidden" name="{e(k)}" value="{e(v)}">') for k, v in fields.items())
