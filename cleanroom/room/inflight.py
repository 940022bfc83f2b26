"""What is in use in this process now: readers' pins and work that runs one at a time.

One service process holds a room (DuckDB locks its warehouse file), so state
kept in the process sees every reader and writer. It belongs to the
:class:`~cleanroom.room.state.Room` it is about, never to a module: two rooms
opened in one process (a test suite, a restore beside a served room) share
nothing, and closing a room forgets it.

* :class:`Pins` keeps tables alive under their readers. A query or a report
  run pins its generation (``matching.reading``), a match pins the dataset and
  opt-out tables it reads, a backup pins both. Whatever would drop them — a
  re-match retiring the generation it replaced, an upload replacing a dataset
  version, expiry, a match-key retirement — goes through
  :meth:`Pins.when_unread`: the drop runs at once when no one reads, else when
  the last reader lets go. Deciding what to read and pinning it happen under
  :attr:`Pins.lock`, and so does every decision to drop, so a reader either
  pinned before a drop was decided (and the drop waits) or reads what
  replaced it.
* :class:`Busy` refuses a second start of work that must run once at a time
  (a match; an upload of one party's dataset).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager

from cleanroom.errors import CleanroomError

log = logging.getLogger("cleanroom.inflight")

Key = tuple[str, str | int]  # what a pin holds: a warehouse table, or a whole generation


def table(name: str) -> Key:
    """The pin of one warehouse table (a dataset version, an opt-out list)."""
    return ("table", name)


def generation(number: int) -> Key:
    """The pin of a match generation: every table it published."""
    return ("generation", number)


class Pins:
    """Readers' pins on tables and generations, and the drops waiting for them to end."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # held while deciding what to read, or whether to drop
        self._readers: Counter[Key] = Counter()
        self._waiting: dict[Key, Callable[[], None]] = {}

    def hold(self, keys: Iterable[Key]) -> Callable[[], None]:
        """Pin ``keys`` until the returned release is called (once); hold :attr:`lock`.

        The caller holds the lock so that reading what is live and pinning it
        are one step (module docstring).
        """
        held = list(keys)
        self._readers.update(held)
        return lambda: self._release(held)

    def when_unread(self, key: Key, drop: Callable[[], None]) -> None:
        """Run ``drop`` now if no one holds ``key``, else when its last reader lets go.

        A failure now is the caller's. One at the last release is only logged
        (the reader has its own work to finish): a table left behind is dropped
        at the next start (``ingest.reconcile``).
        """
        with self.lock:
            if self._readers.get(key, 0) > 0:
                self._waiting[key] = drop  # the latest decision stands
                return
        drop()

    @property
    def idle(self) -> bool:
        """No pin held and no drop waiting."""
        with self.lock:
            return not self._readers and not self._waiting

    def _release(self, keys: list[Key]) -> None:
        with self.lock:
            self._readers.subtract(keys)
            due = [
                (key, self._waiting.pop(key))
                for key in dict.fromkeys(keys)
                if self._readers[key] <= 0 and key in self._waiting
            ]
            self._readers = +self._readers  # forget the zeros
        for key, drop in due:
            try:
                drop()
            except Exception as err:
                log.warning(
                    "a drop waiting for its readers failed; the next start retries it",
                    extra={"pin": f"{key[0]} {key[1]}", "error": type(err).__name__},
                )


class Busy:
    """Work that runs once at a time per key: a second start is refused, never queued."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[Hashable] = set()

    @contextmanager
    def only_one(self, key: Hashable, refusal: CleanroomError) -> Iterator[None]:
        """Run the block as the one holder of ``key``, else raise ``refusal``."""
        with self._lock:
            if key in self._running:
                raise refusal
            self._running.add(key)
        try:
            yield
        finally:
            with self._lock:
                self._running.discard(key)
