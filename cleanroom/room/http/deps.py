"""Request dependencies of both faces: the room, its engine and report runner, the user.

The API's routes and the web UI's pages take the same room, engine and runner,
and check roles the same way (every refusal audited); both import them from here,
never from each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cleanroom.errors import AuthError, ForbiddenError
from cleanroom.room import metrics
from cleanroom.room.auth import Role, User, require
from cleanroom.room.logs import scrub
from cleanroom.room.prefs import chosen_language
from cleanroom.room.query.engine import Engine
from cleanroom.room.reports.runner import ReportRunner
from cleanroom.room.state import Room

_bearer = HTTPBearer(auto_error=False, description="A token from `cleanroom users add`.")


def get_room(request: Request) -> Room:
    """The one Room the app was created with."""
    room: Room = request.app.state.room
    return room


RoomDep = Annotated[Room, Depends(get_room)]


def get_engine(request: Request) -> Engine:
    """The app's one engine (it holds the ledger)."""
    found: Engine = request.app.state.engine
    return found


EngineDep = Annotated[Engine, Depends(get_engine)]


def get_runner(request: Request) -> ReportRunner:
    """The app's one report runner (the scheduler uses the same)."""
    runner: ReportRunner = request.app.state.reports
    return runner


RunnerDep = Annotated[ReportRunner, Depends(get_runner)]


def client_of(request: Request) -> str | None:
    """The caller's address, for the trail."""
    return request.client.host if request.client else None


def record_denied(room: Room, request: Request, actor: str, reason: str, **extra: str) -> None:
    """Count and audit a refused request: who, why, from where — never its credentials."""
    metrics.AUTH_DENIED.labels(reason).inc()
    room.audit.record_refusal(
        actor=actor,
        action="auth.denied",
        target=scrub(f"{request.method} {request.url.path}")[:200],
        outcome="denied",
        details={"reason": reason, "client": client_of(request), **extra},
    )


def _deny(room: Room, request: Request, actor: str, reason: str, err: Exception) -> None:
    record_denied(room, request, actor, reason)
    raise err


def current_user(
    request: Request,
    room: RoomDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user behind the bearer token; a refusal is audited with the client address."""
    try:
        user = room.users.authenticate(credentials.credentials if credentials else None)
    except AuthError as err:
        _deny(room, request, "anonymous", err.code, err)
        raise
    # The language the person chose (web or CLI): API messages read in it unless the
    # request's Accept-Language asks for another (see cleanroom.room.http.app).
    request.state.chosen_language = chosen_language(room, user.id)
    return user


UserDep = Annotated[User, Depends(current_user)]


# Each role check made by ``roles()``, with the roles it admits: the web UI reads them
# (``admitted``) so that it shows a page or a button to exactly the roles the matching
# API route admits, from one set of rules.
_ADMITTED: dict[object, frozenset[Role]] = {}


def roles(*allowed: Role) -> Callable[..., User]:
    """A dependency admitting only ``allowed`` roles."""

    def check(request: Request, room: RoomDep, user: UserDep) -> User:
        try:
            require(user, *allowed)
        except ForbiddenError as err:
            _deny(room, request, user.name, "role", err)
        return user

    _ADMITTED[check] = frozenset(allowed)
    return check


def admitted(dependency: Callable[..., object]) -> frozenset[Role] | None:
    """The roles a dependency made by :func:`roles` admits (None for any other dependency)."""
    return _ADMITTED.get(dependency)
