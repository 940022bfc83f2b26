"""When a match generation's data expires, from the policy's retention and the room's clock.

A generation's analysis tables hold the rows of every dataset version it was
built from, so it lives no longer than the first of them (``dataset_days``
after its upload), nor longer than ``generation_days`` after its match. This
module only decides; :mod:`cleanroom.room.expiry` deletes. Queries, templates
and reports ask :func:`refuse_expired` through ``matching.reading`` before they
read a row, so a generation past its time is refused at once — before the
scheduler's next pass has deleted it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from cleanroom import clock
from cleanroom.errors import T_, DataExpired, Text
from cleanroom.room import datasets, generations
from cleanroom.room.datasets import DatasetVersion
from cleanroom.room.generations import MatchRecord
from cleanroom.room.policy.retention import RetentionPolicy


@dataclass(frozen=True)
class Deadline:
    """When a generation (or dataset version) expires, and the rule that says so."""

    at: datetime
    reason: Text


def _parse(stamp: str) -> datetime:
    return clock.aware(datetime.fromisoformat(stamp))


def dataset_deadline(row: DatasetVersion, retention: RetentionPolicy) -> Deadline | None:
    """A dataset version's expiry: when it was expired, or when its retention ends."""
    label = row.label
    if row.status == "expired" and row.expired_at is not None:
        return Deadline(
            _parse(row.expired_at), T_("%(label)s was deleted under the retention", label=label)
        )
    at = retention.dataset_expiry(_parse(row.uploaded_at))
    if at is None:
        return None
    return Deadline(
        at,
        T_(
            "built from %(label)s, kept %(days)s days after upload",
            label=label,
            days=retention.dataset_days,
        ),
    )


def generation_deadline(
    db: sqlite3.Connection, row: MatchRecord, retention: RetentionPolicy
) -> Deadline | None:
    """A generation's expiry: the earliest of its own and its inputs' (None: never)."""
    if row.status == "expired" and row.expired_at is not None:
        return Deadline(_parse(row.expired_at), T_("deleted under the policy's retention"))
    found: list[Deadline] = []
    if row.finished_at:
        at = retention.generation_expiry(_parse(row.finished_at))
        if at is not None:
            kept = T_("kept %(days)s days after its match", days=retention.generation_days)
            found.append(Deadline(at, kept))
    for name, version in row.inputs.items():
        party, dataset = name.split(".", 1)
        source = datasets.get(db, party, dataset, version)
        if source is not None and (deadline := dataset_deadline(source, retention)) is not None:
            found.append(deadline)
    return min(found, key=lambda d: d.at) if found else None


def refuse_expired(
    db: sqlite3.Connection, live: MatchRecord | None, retention: RetentionPolicy
) -> None:
    """Raise :class:`DataExpired` when the data a query would read is past its retention.

    ``live`` is the live generation (None when there is none: then the
    newest generation, if the retention deleted it, is what the caller asked
    for and the refusal says so).
    """
    if live is None:
        newest = generations.newest_published(db)
        if newest is not None and newest.status == "expired":
            raise DataExpired(  # expiry stamps expired_at with the status, in one UPDATE
                newest.generation,
                newest.expired_at or "",
                T_("deleted under the policy's retention"),
            )
        return
    deadline = generation_deadline(db, live, retention)
    if deadline is not None and deadline.at <= clock.now():
        raise DataExpired(live.generation, clock.stamp(deadline.at), deadline.reason)
