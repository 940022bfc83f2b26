"""Talk to a running room from Python: ``Client(url, token).query(sql).df``.

See :mod:`cleanroom.client.api` for the calls and :mod:`cleanroom.client.errors`
for the refusals; ``docs/analyst-notebook.ipynb`` is a worked example.
"""

from cleanroom.client.api import Client, Result, checked_url
from cleanroom.client.errors import (
    BadRequest,
    BudgetExhausted,
    Conflict,
    DiskFull,
    Forbidden,
    NotFound,
    QueryRefused,
    RoomError,
    RoomInternal,
    TooLarge,
    Unauthorized,
    Unavailable,
)

__all__ = [
    "BadRequest",
    "BudgetExhausted",
    "Client",
    "Conflict",
    "DiskFull",
    "Forbidden",
    "NotFound",
    "QueryRefused",
    "Result",
    "RoomError",
    "RoomInternal",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "checked_url",
]
