"""The service's periodic re-verification of the whole audit chain.

Appends check only what was written since the last verified tip (see
:mod:`cleanroom.room.audit`), so an edit of an *older* entry made while the
service runs would otherwise go unnoticed until the next start. Every
``audit_verify_interval`` seconds this thread verifies the whole chain (one
streaming pass: one HMAC per entry, no write lock held) and the verdict is
remembered, so a break found here stops recorded actions at once.
"""

from __future__ import annotations

import logging
import threading

from cleanroom.room.audit import AuditLog
from cleanroom.room.store import MetaStore

log = logging.getLogger("cleanroom.audit")


class AuditWatch:
    """A daemon thread verifying the chain every ``interval`` seconds (first after one)."""

    def __init__(self, audit: AuditLog, store: MetaStore, *, interval: float) -> None:
        self.audit, self.store, self.interval = audit, store, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="audit-watch", daemon=True)

    def start(self) -> AuditWatch:
        """Start the thread."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the verification in progress, if any."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.audit.verify()  # remembers a break; logs it the first time
                except Exception:  # a failed pass must not end the watch for good
                    log.exception("audit re-verification failed")
        finally:
            self.store.close()  # this thread's SQLite connection
