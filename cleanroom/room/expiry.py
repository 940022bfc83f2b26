"""Deleting data whose retention has run out, wherever the room wrote it, and saying so.

Where a dataset version or a match generation is written:

- a dataset version: its table in the encrypted warehouse (``d_<party>__<dataset>__v<N>``);
  while a match on Spark runs, an encrypted Parquet export under ``spark_data``
  (``.match-*``, deleted by the match itself);
- a generation: its analysis tables, in the warehouse (DuckDB backend) or as
  encrypted Parquet under ``spark_data`` (Spark backend), plus the temporary
  views Spark keeps over them;
- DuckDB's spill files (``tmp/``) hold pieces of either only while a statement
  runs, and DuckDB deletes them when it ends.

:func:`expire` marks what is due ``expired`` and writes one ``data.expired``
audit entry in the same transaction (so the trail never claims a deletion that
did not happen, nor misses one), then deletes. Deleting honours readers: a
dataset table a match is reading goes when the match ends, and a generation a
query or report is reading goes when the last of them ends
(``matching.reading``) — never under them. Whatever a crash left undeleted is
deleted by the next pass (:func:`sweep`), which the service runs at start-up
and every ``scheduler_interval`` seconds; ``cleanroom room expire`` runs one
on demand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cleanroom import clock
from cleanroom.room import datasets as versions
from cleanroom.room import generations as matches
from cleanroom.room.matching import retire_when_unread
from cleanroom.room.periodic import Periodic
from cleanroom.room.retention import dataset_deadline, generation_deadline
from cleanroom.room.state import Room

log = logging.getLogger("cleanroom.expiry")


@dataclass(frozen=True)
class Expiry:
    """What one pass expired (names and numbers only) and what it deleted."""

    datasets: list[str] = field(default_factory=list)  # "party.dataset vN"
    generations: list[int] = field(default_factory=list)
    deleted: int = 0  # tables (warehouse or Parquet) deleted by this pass, now or deferred

    def as_dict(self) -> dict[str, Any]:
        """For the API and the CLI."""
        return {
            "datasets": self.datasets,
            "generations": self.generations,
            "deleted": self.deleted,
        }


def expire(room: Room, *, actor: str) -> Expiry:
    """Expire everything past its retention now (room clock), audit it, delete its data."""
    retention = room.active_policy().policy.retention
    now = clock.now()
    datasets: list[str] = []
    generations: list[int] = []
    if retention.active:
        with room.store.transaction() as tx:
            for kept in versions.with_status(tx, "live", "replaced"):
                deadline = dataset_deadline(kept, retention)
                if deadline is not None and deadline.at <= now:
                    versions.expire(tx, kept, clock.stamp(now))
                    datasets.append(kept.label)
            # after the datasets: a generation goes with its inputs
            for match in matches.with_status(tx, "live", "replaced"):
                deadline = generation_deadline(tx, match, retention)
                if deadline is not None and deadline.at <= now:
                    matches.expire(tx, match.generation, clock.stamp(now))
                    generations.append(match.generation)
            if datasets or generations:
                room.audit.append(
                    tx,
                    actor=actor,
                    action="data.expired",
                    target="retention",
                    details={
                        "datasets": datasets,
                        "generations": generations,
                        "dataset_days": retention.dataset_days,
                        "generation_days": retention.generation_days,
                    },
                )
    deleted = sweep(room)
    if datasets or generations:
        log.info(
            "data expired",
            extra={"datasets": len(datasets), "generations": generations, "deleted": deleted},
        )
    return Expiry(datasets, generations, deleted)


def sweep(room: Room) -> int:
    """Delete what is left of every expired dataset version and generation; how many tables.

    Idempotent, so it also finishes a pass a crash interrupted. Tables in use
    are deleted when their readers finish (counted here all the same).
    """
    db = room.store.connection()
    present = room.wh.tables()
    spark = room.settings.spark_data or room.settings.room / "spark"
    deleted = 0
    for expired in versions.with_status(db, "expired"):
        if expired.table_name in present:
            room.drop_when_unread(expired.table_name)  # a running match keeps it till it ends
            deleted += 1
    for match in matches.with_status(db, "expired"):
        left = [t for t in match.tables.values() if t in present or (spark / t).exists()]
        if left:
            retire_when_unread(room, match.generation, _retirement(room, left))
            deleted += len(left)
    return deleted


def _retirement(room: Room, tables: list[str]) -> Callable[[], None]:
    return lambda: room.backend.retire(tables)


class RetentionWatch(Periodic):
    """The service's thread expiring data every ``interval`` seconds (first at start-up)."""

    def __init__(self, room: Room, *, interval: float) -> None:
        super().__init__("retention", room.store, interval=interval, at_start=True, log=log)
        self.room = room

    def tick(self) -> None:
        """One expiry pass, as the scheduler."""
        expire(self.room, actor="scheduler")

    def failed(self, err: Exception) -> None:
        """E.g. a broken audit chain: retried next pass."""
        log.warning("retention pass failed", extra={"error": type(err).__name__})
