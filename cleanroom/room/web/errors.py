"""Errors under ``/ui`` as pages: the app's one error handler asks here for the web's form.

The API answers errors as JSON; a person in a browser gets the same message
on a page with a way back, and a page asked for without a session sends the
browser to sign in (and back to that page afterwards).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from cleanroom.i18n import N_
from cleanroom.room.web.render import HEADERS, PREFIX, page


def is_web(request: Request) -> bool:
    """Whether a request is for the web UI (its errors are pages, not JSON)."""
    path = request.url.path
    return path == PREFIX or path.startswith(PREFIX + "/")


def safe_next(target: str | None) -> str:
    """A same-site UI path to return to after sign-in; anything else goes to the dashboard."""
    if target and target.startswith(PREFIX + "/") and "\\" not in target and "://" not in target:
        return target
    return PREFIX + "/"


def error_page(
    request: Request, status: int, code: str, message: str, message_lang: str = "en"
) -> Response:
    """The page for an error: sign-in for a GET without a session, else the message.

    ``message_lang`` is the language the message is written in (English for a
    message not yet in the catalogs), so the page marks it for the reader.
    """
    if status == 401 and request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(
            f"{PREFIX}/signin?next={quote(safe_next(target), safe='/')}",
            status_code=303,
            headers=HEADERS,
        )
    return page(
        request,
        "error.html",
        {
            "status": status,
            "code": code,
            "message": message,
            "message_lang": message_lang,
            "title": _title(status),
        },
        status=status,
    )


def _title(status: int) -> str:
    return {
        400: N_("That request cannot be done"),
        401: N_("Sign in first"),
        403: N_("Not for your role"),
        404: N_("Not found"),
        409: N_("That clashes with the current state"),
        410: N_("That data has expired"),
        413: N_("Too large"),
        429: N_("Budget exhausted"),
        503: N_("Not possible right now"),
        507: N_("The room's disk is full"),
    }.get(status, N_("Something went wrong on our side"))
