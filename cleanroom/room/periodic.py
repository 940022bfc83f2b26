"""A service thread that does one pass of work every ``interval`` seconds.

The audit chain's re-verification and retention's expiry are both such
passes: each on its own daemon thread, stopped after the pass in progress,
a failed pass logged and retried next time (never ending the thread), and
the thread's own SQLite connection closed when it ends.
"""

from __future__ import annotations

import logging
import threading
from typing import Self

from cleanroom.room.store import MetaStore


class Periodic:
    """Subclasses say what one pass does (:meth:`tick`) and what a failure logs."""

    def __init__(
        self, name: str, store: MetaStore, *, interval: float, at_start: bool, log: logging.Logger
    ) -> None:
        self.store, self.interval, self.at_start, self.log = store, interval, at_start, log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Self:
        """Start the thread."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the pass in progress, if any."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def tick(self) -> None:
        """One pass of the work."""
        raise NotImplementedError

    def failed(self, err: Exception) -> None:
        """A pass raised: say so (the next pass retries)."""
        self.log.exception("%s pass failed", self._thread.name, exc_info=err)

    def _loop(self) -> None:
        try:
            if not self.at_start and self._stop.wait(self.interval):
                return
            while not self._stop.is_set():
                try:
                    self.tick()
                except Exception as err:  # a failed pass must not end the thread for good
                    self.failed(err)
                self._stop.wait(self.interval)
        finally:
            self.store.close()  # this thread's SQLite connection
