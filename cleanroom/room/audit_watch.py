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

from cleanroom.room.audit import AuditLog
from cleanroom.room.periodic import Periodic
from cleanroom.room.store import MetaStore

log = logging.getLogger("cleanroom.audit")


class AuditWatch(Periodic):
    """A daemon thread verifying the chain every ``interval`` seconds (first after one)."""

    def __init__(self, audit: AuditLog, store: MetaStore, *, interval: float) -> None:
        super().__init__("audit-watch", store, interval=interval, at_start=False, log=log)
        self.audit = audit

    def tick(self) -> None:
        """Verify the whole chain; a break is remembered and logged the first time."""
        self.audit.verify()

    def failed(self, err: Exception) -> None:
        """The verification itself failed (not a break): said, retried next pass."""
        log.exception("audit re-verification failed", exc_info=err)
