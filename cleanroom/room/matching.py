"""Match runs: resolve persons across every live dataset and publish analysis tables.

A match *generation* is a set of tables built together from one snapshot of the
live datasets: the token→person map and, per dataset, the analysis table
``<party>.<dataset>`` with a ``person`` column and no token at all. A generation
goes live in one metadata transaction, so a query always reads tables of a
single generation and never a mix of old and new.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from cleanroom.errors import ConflictError, UserError
from cleanroom.room.auth import User
from cleanroom.room.identity import TokenSource, person_table, resolve
from cleanroom.room.ingest import live_datasets
from cleanroom.room.room import Room
from cleanroom.room.store import now
from cleanroom.room.warehouse import SCHEMA

_running = threading.Lock()


@dataclass(frozen=True)
class Generation:
    """A published match: its number and the analysis table of each dataset."""

    generation: int
    finished_at: str | None
    inputs: dict[str, int]  # "party.dataset" -> dataset version
    tables: dict[str, str]  # "party.dataset" -> warehouse table (and "_persons")

    def public(self) -> dict[str, Any]:
        """What the API shows: which dataset versions, never counts of persons."""
        return {
            "generation": self.generation,
            "finished_at": self.finished_at,
            "inputs": self.inputs,
        }


def live_generation(room: Room) -> Generation | None:
    """The generation queries run against now."""
    row = (
        room.store.connection()
        .execute(
            "SELECT generation, finished_at, inputs, tables FROM matches WHERE status = 'live'"
        )
        .fetchone()
    )
    if row is None:
        return None
    return Generation(
        row["generation"], row["finished_at"], json.loads(row["inputs"]), json.loads(row["tables"])
    )


def run_match(room: Room, user: User) -> Generation:
    """Resolve identities over the live datasets and publish a new generation."""
    if not _running.acquire(blocking=False):
        raise ConflictError("a match is already running")
    try:
        return _run(room, user)
    finally:
        _running.release()


def _run(room: Room, user: User) -> Generation:
    datasets = live_datasets(room)
    if not datasets:
        raise UserError("no dataset has been uploaded yet; nothing to match")
    inputs = {f"{d.party}.{d.dataset}": d.version for d in datasets}
    with room.store.transaction() as tx:
        generation = tx.execute(
            "INSERT INTO matches (started_at, status, inputs) VALUES (?, 'running', ?) "
            "RETURNING generation",
            (now(), json.dumps(inputs)),
        ).fetchone()[0]
    started = time.perf_counter()
    wh = room.wh
    con = wh.cursor()
    tables: dict[str, str] = {"_persons": f"g{generation}__persons"}
    try:
        policy = room.active_policy().policy
        sources = []
        for d in datasets:
            contract = policy.contract(d.party, d.dataset)
            token_columns = list(contract.identifiers) if contract else []
            sources.append((d, TokenSource(f"{SCHEMA}.{d.table_name}", token_columns)))
        stats = resolve(con, [s for _, s in sources], person_map=f"{SCHEMA}.{tables['_persons']}")
        for d, source in sources:
            name = f"g{generation}__{d.party}__{d.dataset}"
            keep = [c for c in d.columns if c not in source.token_columns]
            person_table(
                con,
                source,
                person_map=f"{SCHEMA}.{tables['_persons']}",
                keep_columns=keep,
                out=f"{SCHEMA}.{name}",
            )
            tables[f"{d.party}.{d.dataset}"] = name
        wh.checkpoint()
    except Exception:
        for name in tables.values():
            wh.drop(name)
        with room.store.transaction() as tx:
            tx.execute("UPDATE matches SET status = 'failed' WHERE generation = ?", (generation,))
        raise
    with room.store.transaction() as tx:
        old = tx.execute("SELECT tables FROM matches WHERE status = 'live'").fetchone()
        tx.execute("UPDATE matches SET status = 'replaced' WHERE status = 'live'")
        tx.execute(
            "UPDATE matches SET status = 'live', finished_at = ?, tables = ? WHERE generation = ?",
            (now(), json.dumps(tables), generation),
        )
        room.audit.append(
            tx,
            actor=user.name,
            action="match.run",
            target=f"generation {generation}",
            details={
                "inputs": inputs,
                "seconds": round(time.perf_counter() - started, 3),
                "iterations": stats.iterations,
            },
        )
    if old is not None:
        for name in json.loads(old["tables"]).values():
            wh.drop(name)
    generation_now = live_generation(room)
    assert generation_now is not None
    return generation_now
