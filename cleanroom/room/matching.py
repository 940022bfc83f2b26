"""Match runs: resolve persons across every live dataset and publish analysis tables.

A match *generation* is a set of tables built together from one snapshot of the
live datasets: per dataset, the analysis table ``<party>.<dataset>`` with a
``person`` column and no token at all, built by the room's backend (the
warehouse, or Spark) where its queries read them; the token → person map
behind them is dropped once they exist. A generation goes live in one
metadata transaction, so a query always reads tables of a single generation
and never a mix of old and new.

A query (or report run) reads its generation through :func:`reading`, which
pins it (the room's ``pins``, ``cleanroom.room.inflight``): the match that
replaces a generation drops its tables at once when no one reads them, or else
when its last reader finishes — a re-match under load never pulls tables from
under a running query. A match pins the dataset tables it reads the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from cleanroom.contract.keyed_hash import TOKEN_VERSION
from cleanroom.errors import T_, ConflictError, UserError
from cleanroom.room import generations, inflight
from cleanroom.room.analyses import sequence
from cleanroom.room.auth import Role, User
from cleanroom.room.backends import MatchInput
from cleanroom.room.bounds import choose_for_match
from cleanroom.room.budget import Ledger
from cleanroom.room.datasets import DatasetVersion
from cleanroom.room.generations import MatchRecord
from cleanroom.room.identity import TokenSource
from cleanroom.room.ingest import live_datasets
from cleanroom.room.match_keys import Holding, check_one_key
from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.policy.retention import RetentionPolicy
from cleanroom.room.retention import refuse_expired
from cleanroom.room.selection import GenerationTables
from cleanroom.room.state import Room
from cleanroom.room.suppression import SuppressionList, live_lists
from cleanroom.sql import SCHEMA

log = logging.getLogger("cleanroom.matching")


@dataclass(frozen=True)
class Generation:
    """A published match: its number and the analysis table of each dataset."""

    generation: int
    finished_at: str | None
    inputs: dict[str, int]  # "party.dataset" -> dataset version
    tables: dict[str, str]  # "party.dataset" -> analysis table (GenerationTables when live)
    backend: str = "duckdb"  # where the tables were built
    withheld: dict[str, Any] | None = None  # identity.Withheld.as_dict(): counts only
    bounds: dict[str, Any] | None = None  # bounds.ChosenBounds.as_dict(), when chosen from data
    suppression: dict[str, int] | None = None  # party -> suppression list version applied

    @property
    def suppressed(self) -> bool:
        """Whether opted-out customers were left out of this generation's tables."""
        return bool(self.suppression)

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
            "suppression_applied": self.suppressed,
        }
        if self.bounds:  # chosen with a DP quantile and paid for: the bounds are public
            shown["bounds"] = self.bounds
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
    row = generations.live(room.store.connection())
    if row is None:
        return None
    return Generation(
        row.generation,
        row.finished_at,
        row.inputs,
        # The tables carry the generation's secret selection salt (cleanroom.room.selection).
        GenerationTables.of(row.tables, room.rekey_secret, row.generation),
        row.backend,
        row.withheld,
        row.bounds,
        row.suppression,
    )


@contextmanager
def reading(room: Room, retention: RetentionPolicy | None = None) -> Iterator[Generation | None]:
    """The live generation, pinned until the block ends (None before the first match).

    Refused (:class:`~cleanroom.errors.DataExpired`) when the policy's
    retention has run out for it; ``retention`` is the caller's policy
    snapshot (a query keeps the version it started with), else the active one.

    Reading the live generation and pinning it happen under one lock, and a
    match decides to drop a replaced generation under the same lock after its
    swap committed: a reader either pinned the old generation before that
    decision (and the drop waits for it) or reads the new one.
    """
    with room.pins.lock:
        generation = live_generation(room)
        db = room.store.connection()
        refuse_expired(  # past the policy's retention: refused even before it is deleted
            db,
            generations.live(db),
            retention if retention is not None else room.active_policy().policy.retention,
        )
        if generation and generation.backend == "spark" and room.settings.backend != "spark":
            raise ConflictError(
                T_(
                    "match generation %(generation)s was built on Spark and exists only as "
                    "Spark's Parquet; with backend 'duckdb' run a match again before querying",
                    generation=generation.generation,
                )
            )
        release = pin_generation(room, generation.generation) if generation else None
    try:
        yield generation
    finally:
        if release is not None:
            release()


def pin_generation(room: Room, generation: int) -> Callable[[], None]:
    """Pin a generation as a reader does, returning its release; hold ``room.pins.lock``.

    For a reader that decides what to read under that lock itself (a backup
    takes its metadata snapshot and pins what it names in one step).
    """
    return room.pins.hold([inflight.generation(generation)])


def retire_when_unread(room: Room, generation: int, retire: Callable[[], None]) -> None:
    """Run ``retire`` now if no one reads the generation, else when its last reader ends."""
    _retire_when_unread(room, generation, retire)


def _retire_when_unread(room: Room, generation: int, retire: Callable[[], None]) -> None:
    def quietly() -> None:
        try:
            retire()
        except Exception as err:  # a leftover table is dropped by reconcile at the next start
            log.warning(
                "replaced generation not dropped",
                extra={"generation": generation, "error": type(err).__name__},
            )

    room.pins.when_unread(inflight.generation(generation), quietly)


def run_match(room: Room, user: User) -> Generation:
    """Resolve identities over the live datasets and publish a new generation."""
    room.audit.require_intact()  # a generation must be recorded: refuse before any work
    with room.busy.only_one("match", ConflictError(T_("a match is already running"))):
        from cleanroom.room.expiry import expire  # it retires generations through this module

        expire(room, actor=user.name)  # never match data whose retention has run out
        return _run(room, user)


def _run(room: Room, user: User) -> Generation:
    # The snapshot's tables stay readable until the match ends, whatever is uploaded meanwhile.
    with room.pins.lock:
        datasets = live_datasets(room)
        lists = live_lists(room.store.connection())
        pinned = [d.table_name for d in datasets] + [s.table_name for s in lists]
        release = room.pins.hold(inflight.table(name) for name in pinned)
    try:
        return _match(room, user, datasets, lists)
    finally:
        release()


def _match(
    room: Room, user: User, datasets: list[DatasetVersion], lists: list[SuppressionList]
) -> Generation:
    if not datasets:
        raise UserError(T_("no dataset has been uploaded yet; nothing to match"))
    policy = room.active_policy().policy
    match_key = check_one_key(
        [Holding(d.party, d.dataset, d.match_key_id or policy.match_key_id) for d in datasets]
        + [Holding(s.party, "suppression list", s.match_key_id) for s in lists],
        policy,
    )
    stale = sorted(
        [f"{d.party}.{d.dataset}" for d in datasets if d.token_version != TOKEN_VERSION]
        + [f"{s.party} (suppression list)" for s in lists if s.token_version != TOKEN_VERSION]
    )
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
    suppression = {s.party: s.version for s in lists}
    with room.store.transaction() as tx:
        generation = generations.start(
            tx,
            inputs=versions,
            backend=room.backend.name,
            suppression=suppression,
            match_key_id=match_key,
        )
    started = time.perf_counter()
    tables: dict[str, str] = {}
    try:
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
            suppressed=[s.table_name for s in lists],
        )
        if room.backend.name == "duckdb":  # journeys' event order, once per generation
            tables.update(sequence.prepare(room.wh.cursor(), policy, tables, f"g{generation}"))
    except Exception:
        _abandon(room, generation, tables)
        raise
    withheld = stats.withheld.as_dict()
    if stats.withheld.links:
        log.warning(
            "identity limits withheld links",
            extra={"generation": generation, "links": stats.withheld.links},
        )
    charges: list[int] = []
    try:
        chosen = _choose_bounds(room, user, policy, generation, tables, charges)
        old = _publish(
            room,
            user,
            generation,
            tables,
            versions,
            started,
            stats.iterations,
            withheld,
            chosen,
            {"lists": suppression, "match_key_id": match_key},
        )
    except Exception as err:  # not published (the audit chain broke meanwhile): never `running`
        _refund(room, user, charges, err)
        _abandon(room, generation, tables)
        raise
    if old is not None:
        old_tables = list(old.tables.values())
        _retire_when_unread(room, old.generation, lambda: room.backend.retire(old_tables))
    generation_now = live_generation(room)
    assert generation_now is not None
    return generation_now


def _choose_bounds(
    room: Room,
    user: User,
    policy: CollaborationPolicy,
    generation: int,
    tables: dict[str, str],
    charges: list[int],
) -> dict[str, Any] | None:
    """The generation's per-person bounds, when the policy has them chosen from the data.

    The quantile's epsilon is charged to the share the policy names, in its own
    transaction, before any count is read (``cleanroom.room.bounds``); the
    charge's id goes into ``charges`` so a failure before publishing refunds it.
    """
    privacy = policy.privacy
    if privacy is None or privacy.adaptive_bounds is None:
        return None
    adaptive = privacy.adaptive_bounds

    def charge(epsilon: Fraction) -> None:
        ledger = Ledger(room.store, room.audit, room.settings.zone)
        charges.append(
            ledger.charge(
                adaptive.charged_to,
                epsilon,
                policy=privacy.budget,
                generation=generation,
                actor=user.name,
            )
        )

    chosen = choose_for_match(room.backend.cursor(), policy, sequence.datasets(tables), charge)
    return chosen.as_dict() if chosen else None


def _refund(room: Room, user: User, charges: list[int], err: Exception) -> None:
    """Give back a bounds charge whose match failed before anything was recorded."""
    for charge in charges:
        try:
            Ledger(room.store, room.audit, room.settings.zone).refund(
                charge, actor=user.name, reason=type(err).__name__
            )
        except Exception as again:  # never less accounted than spent: the charge stands
            log.warning("bounds charge not refunded", extra={"error": type(again).__name__})


def _abandon(room: Room, generation: int, tables: dict[str, str]) -> None:
    room.backend.retire(tables.values())
    with room.store.transaction() as tx:
        generations.fail(tx, generation)


def _publish(
    room: Room,
    user: User,
    generation: int,
    tables: dict[str, str],
    versions: dict[str, int],
    started: float,
    iterations: int,
    withheld: dict[str, Any],
    bounds: dict[str, Any] | None,
    applied: dict[str, Any],
) -> MatchRecord | None:
    """Make the generation live and record it, in one transaction; the one it replaced."""
    with room.store.transaction() as tx:
        old = generations.publish(tx, generation, tables=tables, withheld=withheld, bounds=bounds)
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
                **({"bounds": bounds} if bounds else {}),
                # Which lists' versions applied (never how many persons they removed),
                # and the match key the generation's tokens were made under.
                "suppression": applied["lists"],
                "match_key_id": applied["match_key_id"],
            },
        )
    return old
