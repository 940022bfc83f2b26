"""Pages: Jinja2 with autoescaping, the reader's language, and the headers every page carries.

Every user-facing string in a template goes through gettext (Jinja's i18n
extension, catalogs in :mod:`cleanroom.i18n`); numbers and times through
the language's filters (Persian digits and Solar Hijri dates in ``fa``),
times in the room's time zone.

Everything a user or a party wrote (policy comments and descriptions, party
names, SQL, audit details) reaches the page through autoescaping; nothing is
marked safe except the result chart's ``<img>``, which escapes its alternative text.

Every page is sent with a Content-Security-Policy that allows only this
origin's stylesheet, script and frames (report pages), no inline script,
and no framing of the UI itself; ``no-store`` keeps results and policies out
of shared caches and the back-button cache of a shared laptop.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context

from cleanroom import accuracy
from cleanroom.errors import CleanroomError
from cleanroom.i18n import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    Language,
    current,
    direction,
    formats,
    labels,
    language_of,
    localize_html,
    message_language,
    released,
    translations,
)
from cleanroom.i18n import cut as cut_text

HERE = Path(__file__).parent
PREFIX = "/ui"

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; "
    "img-src 'self' data:; font-src 'self'; frame-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def number(value: Any) -> str:
    """A number as an English reader reads it (also the CLI's and the charts' default)."""
    return formats.number(value, "en")


def age(stamp: str | None, now: datetime | None = None) -> str:
    """How long ago a moment was, in English."""
    return formats.age(stamp, "en", now)


def when(stamp: str | None) -> str:
    """An ISO-8601 time as an English reader reads it, in UTC."""
    return formats.when(stamp, "en", "UTC")


def keys_of(rows: list[dict[str, Any]]) -> list[str]:
    """Every key of a list of records, in first-seen order (the columns of a table)."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _environment(language: Language) -> Environment:
    """One environment per language: its catalog installed, its number and date filters."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]

    @pass_context
    def when_filter(context: Context, stamp: str | None, gregorian: bool = False) -> str:
        return formats.when(stamp, language, context["timezone"], gregorian=gregorian)

    @pass_context
    def brand(context: Context, party: str) -> str:
        return str(context.get("party_names", {}).get(party, party))

    @pass_context
    def rule(context: Context, entry: dict[str, Any]) -> str:
        return released.rule(entry, language, context.get("party_names"))

    @pass_context
    def shown(context: Context, value: Any) -> str:
        return current.display(str(value), language, context.get("party_names"))

    catalog = translations(language)
    env.filters["brand"] = brand
    env.filters["shown"] = shown
    env.filters["tr"] = lambda message: catalog.gettext(str(message)) if message else ""
    env.filters["number"] = lambda value: formats.number(value, language)
    env.filters["digits"] = lambda value: formats.digits(str(value), language)
    env.filters["age"] = lambda stamp: formats.age(stamp, language)
    env.filters["label"] = lambda word: labels.label(word, language)
    env.filters["keys_of"] = keys_of
    # A server message (an error, a Text, or a stored one) in the page's language, and
    # the ``lang`` it is then written in (English for a message not in the catalogs).
    env.filters["msg"] = lambda message: localize_html(message, language) if message else ""
    env.filters["msglang"] = lambda message: message_language(message, language)
    env.filters["when"] = when_filter
    env.filters["cut"] = lambda disclosure: cut_text.sentence(disclosure, language)
    env.tests["cell"] = accuracy.is_cell
    env.filters["reading"] = lambda cell: released.shown(cell, language)
    env.filters["rule"] = rule
    env.filters["evidence"] = lambda value: released.evidence(value, language) or ""
    env.globals["legend"] = lambda noise, ranges: released.legend(
        language, noise=noise, ranges=ranges
    )
    env.globals["marks"] = lambda result: released.marks(
        released.cells_in([result.get("rows"), *(v for k, v in result.items() if k != "rows")])
    )
    env.globals["prefix"] = PREFIX
    env.globals["lang"] = language
    env.globals["words"] = frozenset(labels.WORDS)
    env.globals["dir"] = direction(language)
    env.globals["languages"] = LANGUAGES
    env.globals["comma"] = "، " if language == "fa" else ", "
    return env


ENVS = {language: _environment(language) for language in LANGUAGES}


def language_for(request: Request) -> Language:
    """The page's language: the signed-in person's choice, else ``?lang=``, else the room's."""
    chosen = getattr(request.state, "language", None)
    if chosen is not None:
        return language_of(chosen)
    room = getattr(request.app.state, "room", None)
    default = language_of(room.settings.language) if room is not None else DEFAULT_LANGUAGE
    return language_of(request.query_params.get("lang"), default)


def party_names(request: Request, language: Language) -> dict[str, str]:
    """Each party's display name (the brand) from the policy in force, by party id."""
    room = getattr(request.app.state, "room", None)
    if room is None:
        return {}
    try:
        parties = room.active_policy().policy.parties
    except CleanroomError:  # no policy yet: ids are all there is
        return {}
    return {party: spec.names.get(language, spec.name) for party, spec in parties.items()}


def timezone_for(request: Request) -> str:
    """The room's time zone (what every time on a page is shown in)."""
    room = getattr(request.app.state, "room", None)
    return room.settings.timezone if room is not None else formats.DEFAULT_TIMEZONE


def page(
    request: Request, template: str, context: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    """Render a page with the signed-in user's navigation and the security headers."""
    session = getattr(request.state, "web_session", None)
    language = language_for(request)
    body = (
        ENVS[language]
        .get_template(template)
        .render(
            {
                "timezone": timezone_for(request),
                "party_names": party_names(request, language),
                "session": session,
                "user": session.user if session else None,
                "can": getattr(request.state, "web_capabilities", frozenset()),
                "path": request.url.path,
                "title": "",
                **context,
            }
        )
    )
    return HTMLResponse(body, status_code=status, headers=HEADERS)
