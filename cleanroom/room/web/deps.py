"""Web dependencies: the session behind the cookie, the page's role rule, the checked form.

Every refusal a person could have caused on purpose — a role reaching for a
page it may not use, a form without its CSRF token — is audited like the
API's refusals (``auth.denied``, with the reason and the client address).
A page asked for without a session only sends the browser to the sign-in
page: nothing was attempted yet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from cleanroom.errors import T_, AuthError, ForbiddenError
from cleanroom.room.config import Settings
from cleanroom.room.http.deps import RoomDep, record_denied
from cleanroom.room.prefs import chosen_language
from cleanroom.room.state import Room
from cleanroom.room.web.capabilities import capabilities, may
from cleanroom.room.web.forms import Form, read_form
from cleanroom.room.web.session import Session, Sessions, csrf_matches
from cleanroom.wording import a


class SignInRequired(AuthError):
    """No live session: the browser is sent to the sign-in page."""

    code = "sign_in_required"


def cookie_name(settings: Settings, what: str) -> str:
    """``__Host-`` cookies (HTTPS only, this host only, path /) unless development says http."""
    return f"__Host-cleanroom_{what}" if settings.web_secure_cookies else f"cleanroom_{what}"


def sessions(room: Room) -> Sessions:
    """The room's web sessions."""
    return Sessions(room.store, room.audit, room.users)


def refuse(room: Room, request: Request, actor: str, reason: str, message: str) -> ForbiddenError:
    """Audit a refusal and return the error to raise."""
    record_denied(room, request, actor, reason, via="web")
    return ForbiddenError(message)


def web_session(request: Request, room: RoomDep) -> Session:
    """The signed-in session; also what the page template shows and hides."""
    found = sessions(room).get(request.cookies.get(cookie_name(room.settings, "session")))
    if found is None:
        raise SignInRequired(T_("sign in to continue (your session ended or never began)"))
    request.state.web_session = found
    request.state.language = chosen_language(room, found.user.id) or room.settings.language
    request.state.web_capabilities = capabilities(found.user)
    return found


SessionDep = Annotated[Session, Depends(web_session)]


def _admit(request: Request, room: Room, session: Session, capability: str) -> None:
    if not may(session.user, capability):
        raise refuse(
            room,
            request,
            session.user.name,
            "role",
            f"'{session.user.name}' is {a(session.user.role)}, and this page is not for that role",
        )


def page(capability: str) -> Callable[..., Session]:
    """A dependency admitting only the roles the capability's API route admits."""

    def check(request: Request, room: RoomDep, session: SessionDep) -> Session:
        _admit(request, room, session, capability)
        return session

    return check


def posted(capability: str) -> Callable[..., Awaitable[Form]]:
    """A dependency for a POST: the role rule, then the form with its CSRF token checked."""

    async def check(request: Request, room: RoomDep, session: SessionDep) -> Form:
        _admit(request, room, session, capability)
        form = await read_form(request)
        if not csrf_matches(session.csrf, form.get("csrf") or None):
            raise refuse(
                room,
                request,
                session.user.name,
                "csrf",
                "this form's security token is missing or wrong; reload the page and try again",
            )
        return form

    return check
