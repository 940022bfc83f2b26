"""The room's refusals as exceptions: one class per API error code, in the errors tree.

Each class is also the matching :mod:`cleanroom.errors` class (a refused query
is a :class:`~cleanroom.errors.UserError`, an exhausted budget a
:class:`~cleanroom.errors.ConflictError`…), so code that catches the tree keeps
working, and a notebook can catch exactly the refusal it expects. The
structured ``details`` of the answer (rule, clause, budget left, reset time)
are attributes.
"""

from __future__ import annotations

from typing import Any

from cleanroom.errors import (
    T_,
    AuthError,
    CleanroomError,
    ConflictError,
    DiskFullError,
    ForbiddenError,
    InternalError,
    NotFoundError,
    TooLargeError,
    UnavailableError,
    UserError,
)


class RoomError(CleanroomError):
    """The room answered with an error: its status, code, sentence, request id and details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        request_id: str = "-",
        details: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.room_details = dict(details or {})
        rule = self.room_details.get("rule")
        if rule:
            text = T_(
                "room refused (%(status)s %(code)s, rule %(rule)s): %(message)s",
                status=status,
                code=code,
                rule=rule,
                message=message,
            )
        else:
            text = T_(
                "room refused (%(status)s %(code)s): %(message)s",
                status=status,
                code=code,
                message=message,
            )
        super().__init__(text)

    @property
    def details(self) -> dict[str, object]:
        """The answer's structured details, as the room sent them."""
        return dict(self.room_details)


class BadRequest(RoomError, UserError):
    """400/422: the request is wrong; the message says how."""


class QueryRefused(RoomError, UserError):
    """``query_rejected``: the query breaks a rule of the policy; ``rule`` names it."""

    @property
    def rule(self) -> str | None:
        """The stable id of the rule broken (e.g. ``person_in_output``)."""
        return self.room_details.get("rule")

    @property
    def clause(self) -> str | None:
        """The piece of the query at fault, when the room could name it."""
        return self.room_details.get("clause")


class Unauthorized(RoomError, AuthError):
    """``unauthorized``: the token is missing, unknown or revoked."""


class Forbidden(RoomError, ForbiddenError):
    """``forbidden``: the token's role may not do this."""


class NotFound(RoomError, NotFoundError):
    """``not_found``: no such thing, or not visible to this token."""


class Conflict(RoomError, ConflictError):
    """``conflict`` and the like: the request clashes with the room's state."""


class BudgetExhausted(RoomError, ConflictError):
    """``budget_exhausted`` (429): asked more than is left; ``resets_at`` says until when."""

    @property
    def budget_left(self) -> float | None:
        """Epsilon left to the party this period."""
        left = self.room_details.get("budget_left")
        return float(left) if left is not None else None

    @property
    def resets_at(self) -> str | None:
        """When the period ends and the budget is whole again (ISO 8601, UTC)."""
        return self.room_details.get("resets_at")

    @property
    def retry_after(self) -> int | None:
        """Seconds until the reset (the answer's ``Retry-After``)."""
        seconds = self.room_details.get("retry_after")
        return int(seconds) if seconds is not None else None


class TooLarge(RoomError, TooLargeError):
    """``too_large``: over the room's size limit."""


class Unavailable(RoomError, UnavailableError):
    """``unavailable``/``store_busy`` (503): nothing changed; try again later."""


class DiskFull(RoomError, DiskFullError):
    """``disk_full`` (507): the room is out of space; nothing changed."""


class RoomInternal(RoomError, InternalError):
    """500: the room's bug; the request id finds it in the service log."""


BY_CODE: dict[str, type[RoomError]] = {
    "query_rejected": QueryRefused,
    "budget_exhausted": BudgetExhausted,
    "unauthorized": Unauthorized,
    "sign_in_required": Unauthorized,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "conflict": Conflict,
    "report_running": Conflict,
    "report_slot_taken": Conflict,
    "too_large": TooLarge,
    "unavailable": Unavailable,
    "store_busy": Unavailable,
    "disk_full": DiskFull,
}
BY_STATUS: dict[int, type[RoomError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    429: BudgetExhausted,
    503: Unavailable,
    507: DiskFull,
}


def from_answer(status: int, body: Any) -> RoomError:
    """The exception for an error answer (any body: a proxy's HTML page too)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return (BY_STATUS.get(status) or (RoomInternal if status >= 500 else BadRequest))(
            status, "http_error", f"the room answered {status} without an error body"
        )
    code = str(error.get("code", "error"))
    kind = BY_CODE.get(code) or BY_STATUS.get(status)
    if kind is None:
        kind = RoomInternal if status >= 500 else BadRequest
    details = error.get("details")
    return kind(
        status,
        code,
        str(error.get("message", ""))[:2000],
        request_id=str(error.get("request_id", "-")),
        details=details if isinstance(details, dict) else {},
    )
