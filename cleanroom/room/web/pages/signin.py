"""Sign in with a bearer token, sign out.

The sign-in form has no session yet to tie a CSRF token to, so it uses a
double-submit token: a random value in a short-lived ``SameSite=Strict``
cookie that the form must echo. Another site can neither read the cookie nor
make the browser send it, so it cannot sign a browser in to an account of its
choosing (login CSRF). A failed sign-in is audited like a refused API call.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from cleanroom.errors import AuthError, UserError
from cleanroom.i18n import N_
from cleanroom.room.http.deps import RoomDep, client_of, record_denied
from cleanroom.room.state import Room
from cleanroom.room.web.deps import (
    SessionDep,
    cookie_name,
    posted,
    refuse,
    sessions,
)
from cleanroom.room.web.errors import safe_next
from cleanroom.room.web.forms import Form, read_form
from cleanroom.room.web.render import HEADERS, PREFIX, page
from cleanroom.room.web.session import LIFETIME, csrf_matches

router = APIRouter()
SIGNIN_SECONDS = 15 * 60
# User-facing sentences of this page, in one place for the message catalogs.
EXPIRED = "the sign-in form expired or did not come from this site; reload it and try again"
NEEDS_HTTPS = (
    "sign-in needs HTTPS: the room's session cookie is sent only over https://, and this "
    "page was opened over plain http://; open the room's https:// address (on a test "
    "machine, a development room may set web_secure_cookies: false)"
)
SignOutForm = Annotated[Form, Depends(posted("dashboard"))]


def _cookie(response: Response, room: Room, what: str, value: str, seconds: int) -> None:
    response.set_cookie(
        cookie_name(room.settings, what),
        value,
        max_age=seconds,
        path="/",
        secure=room.settings.web_secure_cookies,
        httponly=True,
        samesite="strict",
    )


def _forget(response: Response, room: Room, what: str) -> None:
    """Expire a cookie (with the attributes it was set with: ``__Host-`` needs them)."""
    response.delete_cookie(
        cookie_name(room.settings, what),
        path="/",
        secure=room.settings.web_secure_cookies,
        httponly=True,
        samesite="strict",
    )


def _form(
    request: Request, room: Room, *, error: str | UserError | None, next_: str, status: int
) -> Response:
    token = secrets.token_urlsafe(24)
    response = page(
        request,
        "signin.html",
        {"title": N_("Sign in"), "signin_token": token, "error": error, "next": next_},
        status=status,
    )
    _cookie(response, room, "signin", token, SIGNIN_SECONDS)
    return response


@router.get("/signin")
def signin_form(request: Request, room: RoomDep, next: str | None = None) -> Response:
    """The sign-in page (or the dashboard, when already signed in)."""
    current = sessions(room).get(request.cookies.get(cookie_name(room.settings, "session")))
    if current is not None:
        return RedirectResponse(safe_next(next), status_code=303, headers=HEADERS)
    return _form(request, room, error=None, next_=safe_next(next), status=200)


@router.post("/signin")
async def signin(request: Request, room: RoomDep) -> Response:
    """Check the token; on success a new session, its cookie, and the page asked for."""
    form = await read_form(request)
    expected = request.cookies.get(cookie_name(room.settings, "signin"))
    if not expected and room.settings.web_secure_cookies and request.url.scheme == "http":
        # The browser kept the HTTPS-only cookie to itself: not an expired form.
        raise refuse(room, request, "anonymous", "csrf", NEEDS_HTTPS)
    if not expected or not csrf_matches(expected, form.get("csrf") or None):
        raise refuse(room, request, "anonymous", "csrf", EXPIRED)
    target = safe_next(form.get("next"))
    try:
        user = room.users.authenticate(form.get("token").strip() or None)
    except AuthError as err:
        record_denied(room, request, "anonymous", err.code, via="web")
        return _form(request, room, error=err, next_=target, status=401)
    session_id, _ = sessions(room).start(user, client=client_of(request))
    response = RedirectResponse(target, status_code=303, headers=HEADERS)
    _cookie(response, room, "session", session_id, int(LIFETIME.total_seconds()))
    _forget(response, room, "signin")
    return response


@router.post("/signout")
def signout(request: Request, room: RoomDep, session: SessionDep, form: SignOutForm) -> Response:
    """End the session (CSRF-checked: another site cannot sign you out either)."""
    sessions(room).end(request.cookies.get(cookie_name(room.settings, "session"), ""), session.user)
    response = RedirectResponse(f"{PREFIX}/signin", status_code=303, headers=HEADERS)
    _forget(response, room, "session")
    return response
