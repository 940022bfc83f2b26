"""Match runs: resolve persons across every live dataset and publish analysis tables.

A match *generation* is a set of tables built together from one snapshot of the
live datasets: per dataset, the analysis table ``<party>.<dataset>`` with a
``person`` column and no token at all, built by the room's backend (the
warehouse, or Spark) where its queries read them; the token → person map
behind them is dropped once they exist. A generation goes live in one
metadata transaction, so a query always reads tables of a single generation
and never a mix of old and new.

A query (or report run) reads its generation through :func:`reading`, which
pins it: the match that replaces a generation drops its tables at once when no
one reads them, or else when its last reader finishes — a re-match under load
never pulls tables from under a running query.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cleanroom.errors import T_, ConflictError, UserError
from cleanroom.keyed_hash import TOKEN_VERSION
from cleanroom.room.auth import Role, User
from cleanroom.room.backends import MatchInput
from cleanroom.room.identity import TokenSource
from cleanroom.room.ingest import DatasetVersion, live_datasets
from cleanroom.room.room import Room
from cleanroom.room.store import now
from cleanroom.room.warehouse import SCHEMA

_running = threading.Lock()
log = logging.getLogger("cleanroom.matching")

# Pinned generations, per room directory and generation number (one process serves a room).
_pins_lock = threading.Lock()
_readers: Counter[tuple[str, int]] = Counter()
_retiring: dict[tuple[str, int], Callable[[], None]] = {}


@dataclass(frozen=True)
class Generation:
    """A published match: its number and the analysis table of each dataset."""

    generation: int
    finished_at: str | None
    inputs: dict[str, int]  # "party.dataset" -> dataset version
    tables: dict[str, str]  # "party.dataset" -> analysis table
    backend: str = "duckdb"  # where the tables were built
    withheld: dict[str, Any] | None = None  # identity.Withheld.as_dict(): counts only

    def public(self, user: User | None = None) -> dict[str, Any]:
        """What the API shows: which dataset versions, never counts of persons.

        Links the identity limits withheld (counts only, never an identifier)
        go to reviewers and room admins in full, and to a party's users as the
        number of that party's own links; other parties' numbers stay hidden.
        """
        shown: dict[str, Any] = {
            "generation": self.generation,
            "finished_at": self.finished_at,
            "inputs": self.inputs,
        }
        withheld = self.withheld or {}
        if user is None or not withheld:
            return shown
        if user.role in (Role.room_admin, Role.reviewer):
            shown["withheld"] = withheld
        elif user.party is not None:
            shown["withheld"] = {"links": int(withheld.get("by_party", {}).get(user.party, 0))}
        return shown


def live_generation(room: Room) -> Generation | None:
    """The generation queries run against now."""
    row = (
        room.store.connection()
        .execute(
            "SELECT generation, finished_at, inputs, tables, backend, withheld FROM matches "
            "WHERE status = 'live'"
        )
        .fetchone()
    )
    if row is None:
        return None
    return Generation(
        row["generation"],
        row["finished_at"],
        json.loads(row["inputs"]),
        json.loads(row["tables"]),
        row["backend"],
        json.loads(row["withheld"]),
    )


@contextmanager
def reading(room: Room) -> Iterator[Generation | None]:
    """The live generation, pinned until the block ends (None before the first match).

    Reading the live generation and pinning it happen under one lock, and a
    match decides to drop a replaced generation under the same lock after its
    swap committed: a reader either pinned the old generation before that
    decision (and the drop waits for it) or reads the new one.
    """
    with _pins_lock:
        generation = live_generation(room)
        if generation and generation.backend == "spark" and room.settings.backend != "spark":
            raise ConflictError(
                T_(
                    "match generation %(generation)s was built on Spark and exists only as "
                    "Spark's Parquet; with backend 'duckdb' run a match again before querying",
                    generation=generation.generation,
                )
            )
        key = (str(room.paths.root), generation.generation) if generation else None
        if key is not None:
            _readers[key] += 1
    try:
        yield generation
    finally:
        if key is not None:
            _release(key)


def _release(key: tuple[str, int]) -> None:
    with _pins_lock:
        _readers[key] -= 1
        if _readers[key] > 0:
            return
        del _readers[key]
        retire = _retiring.pop(key, None)
    if retire is not None:
        _retire_now(key, retire)


def _retire_when_unread(room: Room, generation: int, retire: Callable[[], None]) -> None:
    key = (str(room.paths.root), generation)
    with _pins_lock:
        if _readers.get(key):
            _retiring[key] = retire  # the last reader drops it
            return
    _retire_now(key, retire)


def _retire_now(key: tuple[str, int], retire: Callable[[], None]) -> None:
    try:
        retire()
    except Exception as err:  # a leftover table is dropped by reconcile at the next start
        log.warning(
            "replaced generation not dropped",
            extra={"generation": key[1], "error": type(err).__name__},
        )


def run_match(room: Room, user: User) -> Generation:
    """Resolve identities over the live datasets and publish a new generation."""
    room.audit.require_intact()  # a generation must be recorded: refuse before any work
    if not _running.acquire(blocking=False):
        raise ConflictError(T_("a match is already running"))
    try:
        return _run(room, user)
    finally:
        _running.release()


def _run(room: Room, user: User) -> Generation:
    # The snapshot's tables stay readable until the match ends, whatever is uploaded meanwhile.
    with room.wh.pin_lock:
        datasets = live_datasets(room)
        pinned = [d.table_name for d in datasets]
        room.wh.pin(pinned)
    try:
        return _match(room, user, datasets)
    finally:
        room.wh.unpin(pinned)


def _match(room: Room, user: User, datasets: list[DatasetVersion]) -> Generation:
    if not datasets:
        raise UserError(T_("no dataset has been uploaded yet; nothing to match"))
    stale = sorted(f"{d.party}.{d.dataset}" for d in datasets if d.token_version != TOKEN_VERSION)
    if stale:
        raise ConflictError(
            T_(
                "dataset(s) %(stale)s were uploaded with an older token definition, "
                "whose tokens never join today's; prepare and upload them again, then "
                "match",
                stale=", ".join(stale),
            )
        )
    versions = {f"{d.party}.{d.dataset}": d.version for d in datasets}
    with room.store.transaction() as tx:
        generation = tx.execute(
            "INSERT INTO matches (started_at, status, inputs, backend) "
            "VALUES (?, 'running', ?, ?) RETURNING generation",
            (now(), json.dumps(versions), room.backend.name),
        ).fetchone()[0]
    started = time.perf_counter()
    tables: dict[str, str] = {}
    try:
        policy = room.active_policy().policy
        inputs = []
        for d in datasets:
            contract = policy.contract(d.party, d.dataset)
            kinds = {c: t.value for c, t in contract.identifiers.items()} if contract else {}
            token_columns = list(kinds)
            name = f"g{generation}__{d.party}__{d.dataset}"
            inputs.append(
                MatchInput(
                    TokenSource(f"{SCHEMA}.{d.table_name}", token_columns, kinds, d.party),
                    [c for c in d.columns if c not in token_columns],
                    name,
                )
            )
            tables[f"{d.party}.{d.dataset}"] = name
        stats = room.backend.match(
            inputs,
            policy.identity.max_per_person.by_type(),
            policy.identity.max_foreign_merges.limit(),
        )
    except Exception:
        _abandon(room, generation, tables)
        raise
    withheld = stats.withheld.as_dict()
    if stats.withheld.links:
        log.warning(
            "identity limits withheld links",
            extra={"generation": generation, "links": stats.withheld.links},
        )
    try:
        old = _publish(
            room, user, generation, tables, versions, started, stats.iterations, withheld
        )
    except Exception:  # not published (e.g. the audit chain broke meanwhile): never `running`
        _abandon(room, generation, tables)
        raise
    if old is not None:
        old_tables = list(json.loads(old["tables"]).values())
        _retire_when_unread(room, int(old["generation"]), lambda: room.backend.retire(old_tables))
    generation_now = live_generation(room)
    assert generation_now is not None
    return generation_now


def _abandon(room: Room, generation: int, tables: dict[str, str]) -> None:
    room.backend.retire(tables.values())
    with room.store.transaction() as tx:
        tx.execute("UPDATE matches SET status = 'failed' WHERE generation = ?", (generation,))


def _publish(
    room: Room,
    user: User,
    generation: int,
    tables: dict[str, str],
    versions: dict[str, int],
    started: float,
    iterations: int,
    withheld: dict[str, Any],
) -> Any:
    """Make the generation live and record it, in one transaction; the one it replaced."""
    with room.store.transaction() as tx:
        old = tx.execute("SELECT generation, tables FROM matches WHERE status = 'live'").fetchone()
        tx.execute("UPDATE matches SET status = 'replaced' WHERE status = 'live'")
        tx.execute(
            "UPDATE matches SET status = 'live', finished_at = ?, tables = ?, withheld = ? "
            "WHERE generation = ?",
            (now(), json.dumps(tables), json.dumps(withheld), generation),
        )
        room.audit.append(
            tx,
            actor=user.name,
            action="match.run",
            target=f"generation {generation}",
            details={
                "inputs": versions,
                "seconds": round(time.perf_counter() - started, 3),
                "iterations": iterations,
                "withheld": withheld,
            },
        )
    return old
