"""The room's bad days: environment failures as clear errors, and fault points for crash tests.

*Classifying.* A full disk or a metadata store locked by another process is
neither the caller's mistake nor our bug, and a bare 500 would hide what an
operator must do. :func:`unavailable` recognizes those low-level exceptions
(SQLite, the OS, DuckDB) and returns the matching
:class:`~cleanroom.errors.UnavailableError` — 503 ``store_busy`` or 507
``disk_full`` — whose message says that nothing was changed. Every write path
already commits all or nothing (metadata in one transaction, warehouse tables
renamed into place only when whole), so "nothing was changed" is true by
construction; the crash tests in ``tests/security/test_faults.py`` check it.

*Fault points.* The crash tests must SIGKILL the service at exact places:
between a query's budget charge and the storing of its result, inside the
transaction that activates a policy, in the middle of a report run. Racing a
timer against a fast machine would make them flaky, so the code names those
places with :func:`pause`, and a *development* room whose ``fault_pause``
setting names one sleeps there (announcing it in the service log) while the
test kills it. It is inert in production twice over: the setting is refused
outside ``environment: development``, and when it is unset :func:`pause` is one
dictionary lookup.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
import time

import duckdb

from cleanroom.errors import T_, DiskFullError, StoreBusyError, UnavailableError, UserError
from cleanroom.room.config import Settings
from cleanroom.room.store import is_locked

log = logging.getLogger("cleanroom.faults")

POINTS = {
    "query.release": "a query's epsilon is charged and its noisy result computed, not yet stored",
    "policy.activate": "inside the transaction that activates an approved policy version",
    "report.section": "a report run is charged; before each section runs (#N: the N-th)",
    "backup.stream": "a backup is being streamed; before each table (#N: the N-th)",
}
PAUSE_SECONDS = 300.0

_armed: dict[str, int] = {}  # point -> the passage to pause at; empty in production
_passes: dict[str, int] = {}
_lock = threading.Lock()

_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DISK_MESSAGES = ("No space left", "File too large", "Disk quota exceeded", "disk is full")


def unavailable(err: BaseException) -> UnavailableError | None:
    """The environment failure behind ``err`` as an error fit to show, or None if it is not one."""
    if isinstance(err, UnavailableError):
        return err
    if isinstance(err, sqlite3.OperationalError):
        if is_locked(err):
            return StoreBusyError(
                T_(
                    "the metadata store is locked by another process; nothing was changed, "
                    "retry shortly"
                )
            )
        if (getattr(err, "sqlite_errorcode", None) or 0) & 0xFF == sqlite3.SQLITE_FULL:
            return _disk_full()
    if isinstance(err, OSError) and err.errno in _DISK_ERRNOS:
        return _disk_full()
    if isinstance(err, duckdb.IOException) and any(m in str(err) for m in _DISK_MESSAGES):
        return _disk_full()
    return None


def _disk_full() -> DiskFullError:
    return DiskFullError(
        T_(
            "the room's storage refused a write (disk full, or over a file-size "
            "limit); nothing was stored: free space, then retry"
        )
    )


def arm(settings: Settings) -> None:
    """Arm the fault point a development room's ``fault_pause`` names (process-wide)."""
    if settings.fault_pause is None or settings.environment != "development":
        return
    point, _, nth = settings.fault_pause.partition("#")
    if point not in POINTS:
        raise UserError(
            T_(
                "fault_pause: no fault point '%(point)s'; the points are %(sorted)s",
                point=point,
                sorted=", ".join(sorted(POINTS)),
            )
        )
    _armed[point] = int(nth or 1)


def pause(point: str) -> None:
    """Sleep here if this point is armed and this is its chosen passage (crash tests only)."""
    if point not in _armed:
        return
    with _lock:
        _passes[point] = passage = _passes.get(point, 0) + 1
    if passage != _armed[point]:
        return
    log.warning(
        "fault point %s reached (passage %d): pausing %g s for a crash test",
        point,
        passage,
        PAUSE_SECONDS,
    )
    time.sleep(PAUSE_SECONDS)
