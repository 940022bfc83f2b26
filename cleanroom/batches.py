"""Work on a stream of batches in a thread pool, results in input order, memory bounded.

The paths that touch every row — the party's ``prepare``, the room's ingest,
the synthetic generator's writer — spend their time in native code that
releases the GIL (Polars, DuckDB, Arrow). Worked one batch at a time, one of the machine's cores sat
idle; with the next batch worked while the last is written, both run. The
results come back in input order, so counts, row numbers and the first error
raised are those of a sequential run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def in_order(pool: Executor, work: Callable[[T], R], items: Iterable[T], ahead: int) -> Iterator[R]:
    """``work`` over ``items`` on ``pool``, at most ``ahead`` waiting, results in order.

    At most ``ahead`` + 1 items are in flight at once; the first item whose
    work fails raises first, as a sequential loop would.
    """
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(pool.submit(work, item))
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
