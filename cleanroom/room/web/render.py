"""Pages: Jinja2 with autoescaping, number formatting, and the headers every page carries.

Everything a user or a party wrote (policy comments and descriptions, party
names, SQL, audit details) reaches the page through autoescaping; nothing is
marked safe except the server-drawn chart, which escapes its own labels.

Every page is sent with a Content-Security-Policy that allows only this
origin's stylesheet, script and frames (report pages), no inline script,
and no framing of the UI itself; ``no-store`` keeps results and policies out
of shared caches and the back-button cache of a shared laptop.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from cleanroom import clock
from cleanroom.room.web.charts import is_number

HERE = Path(__file__).parent
PREFIX = "/ui"

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; "
    "img-src 'self' data:; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def number(value: Any) -> str:
    """A released or plain number, readable: thousands separators, a few significant digits."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.4g}"


def age(stamp: str | None, now: datetime | None = None) -> str:
    """How long ago an ISO-8601 UTC time was, in the largest whole unit."""
    if not stamp:
        return "never"
    try:
        then = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = int(((now or clock.now()) - then).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def when(stamp: str | None) -> str:
    """An ISO-8601 time as ``2026-12-01 00:00 UTC`` (what a person reads; UTC everywhere)."""
    if not stamp:
        return "—"
    try:
        at = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if at.tzinfo is not None:
        at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%d %H:%M UTC")


def keys_of(rows: list[dict[str, Any]]) -> list[str]:
    """Every key of a list of records, in first-seen order (the columns of a table)."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["number"] = number
    env.filters["age"] = age
    env.filters["keys_of"] = keys_of
    env.filters["when"] = when
    env.tests["released"] = is_number
    env.globals["prefix"] = PREFIX
    return env


ENV = _environment()


def page(
    request: Request, template: str, context: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    """Render a page with the signed-in user's navigation and the security headers."""
    session = getattr(request.state, "web_session", None)
    body = ENV.get_template(template).render(
        {
            "session": session,
            "user": session.user if session else None,
            "can": getattr(request.state, "web_capabilities", frozenset()),
            "path": request.url.path,
            "title": "",
            **context,
        }
    )
    return HTMLResponse(body, status_code=status, headers=HEADERS)
