"""Who sees which page and which button: the API's own role rules, read from its routes.

Every page and every form of the web UI does what one API route does, and is
shown to exactly the roles that route admits. The roles are not repeated
here: they are read from the route's dependencies (``roles(...)`` in
:mod:`cleanroom.room.http.deps`), so the UI and the API cannot drift apart. A
route that only needs a signed-in user admits every role. The web UI does not
import the API: the app that mounts both hands the API's routes over
(:func:`use_routes`, from :mod:`cleanroom.room.http.app`).

Hiding a button is for the person; the check that counts is the same domain
code the API calls (the lifecycle refuses an author's own approval whatever
the page showed), and the page routes refuse the roles they do not admit.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from cleanroom.errors import InternalError
from cleanroom.room.auth import Role, User
from cleanroom.room.http.deps import admitted

# capability -> the API route (method, path) whose role rule it follows
CAPABILITIES: dict[str, tuple[str, str]] = {
    "dashboard": ("GET", "/api/v1/datasets"),
    "budget": ("GET", "/api/v1/budget"),
    "console": ("POST", "/api/v1/queries"),
    "history": ("GET", "/api/v1/queries"),
    "policy.active": ("GET", "/api/v1/policies/active"),
    "policy.history": ("GET", "/api/v1/policies"),
    "policy.propose": ("POST", "/api/v1/policies"),
    "policy.approve": ("POST", "/api/v1/policies/{version}/approve"),
    "policy.reject": ("POST", "/api/v1/policies/{version}/reject"),
    "policy.rollback": ("POST", "/api/v1/policies/{version}/rollback"),
    "audit": ("GET", "/api/v1/audit"),
    "reports": ("GET", "/api/v1/reports"),
    "reports.run": ("POST", "/api/v1/reports/{name}/run"),
}

# The API's routes, as the app mounted them. Every app of a process mounts the same
# routes, so one list serves them all.
_ROUTES: list[APIRoute] = []


def use_routes(routes: Iterable[BaseRoute]) -> None:
    """Read the role rules from these routes (the app's, once its API routers are mounted)."""
    _ROUTES[:] = [route for route in routes if isinstance(route, APIRoute)]
    roles_for.cache_clear()


def _roles_of(dependant: Dependant) -> frozenset[Role] | None:
    for dependency in dependant.dependencies:
        found = admitted(dependency.call) if dependency.call is not None else None
        if found is None:
            found = _roles_of(dependency)
        if found is not None:
            return found
    return None


@cache
def roles_for(capability: str) -> frozenset[Role]:
    """The roles the API route behind ``capability`` admits."""
    method, path = CAPABILITIES[capability]
    for route in _ROUTES:
        if route.path == path and method in (route.methods or ()):
            found = _roles_of(route.dependant)
            return found if found is not None else frozenset(Role)
    raise InternalError(f"the web capability '{capability}' names no API route {method} {path}")


def may(user: User, capability: str) -> bool:
    """Whether ``user``'s role may use a capability."""
    return user.revoked_at is None and user.role in roles_for(capability)


def capabilities(user: User) -> frozenset[str]:
    """Every capability the user has: what the templates show and hide."""
    return frozenset(c for c in CAPABILITIES if may(user, c))
