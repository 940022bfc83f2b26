"""The record of report runs: one ``report_runs`` row per scheduled slot or manual run.

The row is written *before* anything is charged, so every attempt — done,
refused or failed — leaves a trace with its reason. Claiming a slot is an
INSERT under ``UNIQUE (report, slot)`` in one ``BEGIN IMMEDIATE`` transaction:
of two ticks (or two processes) that find the same slot due, exactly one gets
the row and goes on to charge; the other is told the slot is taken.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from cleanroom.errors import T_, ConflictError, NotFoundError
from cleanroom.room.epsilon import Epsilon
from cleanroom.room.store import MetaStore, now
from cleanroom.sql import quote_column

Status = Literal["running", "done", "refused", "failed"]
Trigger = Literal["schedule", "manual"]


class SlotTaken(ConflictError):
    """A scheduled slot that already has a run (running or finished): each slot runs once."""

    code = "report_slot_taken"

    def __init__(self, run: ReportRun) -> None:
        self.run = run
        super().__init__(
            T_(
                "report '%(report)s' slot %(slot)s is already %(status)s (run %(run)s)",
                report=run.report,
                slot=run.slot,
                status=run.status,
                run=run.id,
            )
        )


class ReportBusy(ConflictError):
    """A run of this report is still going; runs of one report never overlap."""

    code = "report_running"


@dataclass(frozen=True)
class ReportRun:
    """One run as recorded."""

    id: str
    report: str
    slot: str
    trigger: Trigger
    actor: str
    status: Status
    policy_version: int
    generation: int | None
    epsilon: Fraction
    charge_id: int | None
    refunded: bool
    inputs: dict[str, Any]
    outputs: str | None
    files: list[str]
    error: str | None
    started_at: str
    finished_at: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; the output directory stays server-side (files are downloaded by name)."""
        return {
            "run_id": self.id,
            "report": self.report,
            "slot": self.slot,
            "trigger": self.trigger,
            "actor": self.actor,
            "status": self.status,
            "policy_version": self.policy_version,
            "generation": self.generation,
            "epsilon": str(self.epsilon),
            "epsilon_float": float(self.epsilon),
            "charge_id": self.charge_id,
            "refunded": self.refunded,
            "inputs": self.inputs,
            "files": self.files,
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


_COLUMNS = ", ".join(
    map(
        quote_column,
        (
            "id", "report", "slot", "trigger", "actor", "status", "policy_version", "generation",
            "epsilon", "charge_id", "refunded", "inputs", "outputs", "files", "error",
            "started_at", "finished_at",
        ),
    )
)  # fmt: skip


class RunLog:
    """Reads and writes ``report_runs``."""

    def __init__(self, store: MetaStore) -> None:
        self._store = store

    def claim(
        self,
        run_id: str,
        report: str,
        slot: str,
        *,
        trigger: Trigger,
        actor: str,
        policy_version: int,
        generation: int | None,
        epsilon: Fraction,
        inputs: dict[str, Any],
    ) -> ReportRun:
        """Record a run as ``running``, or refuse: the slot is taken, or the report is busy."""
        try:
            with self._store.transaction() as db:
                taken = _one(db, "report = ? AND slot = ?", (report, slot))
                if taken is not None:
                    raise SlotTaken(taken)
                busy = _one(db, "report = ? AND status = 'running'", (report,))
                if busy is not None:
                    raise ReportBusy(
                        T_(
                            "report '%(report)s' is already running (run %(busy)s, started "
                            "%(started_at)s); try again when it has finished",
                            report=report,
                            busy=busy.id,
                            started_at=busy.started_at,
                        )
                    )
                db.execute(
                    "INSERT INTO report_runs (id, report, slot, trigger, actor, status,"
                    " policy_version, generation, epsilon, inputs, started_at)"
                    " VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        report,
                        slot,
                        trigger,
                        actor,
                        policy_version,
                        generation,
                        str(epsilon),
                        json.dumps(inputs, sort_keys=True),
                        now(),
                    ),
                )
        except sqlite3.IntegrityError:  # pragma: no cover - the checks above run first
            raise ReportBusy(
                T_(
                    "report '%(report)s' slot %(slot)s was claimed concurrently",
                    report=report,
                    slot=slot,
                )
            ) from None
        return self.get(report, run_id)

    def set_charge(self, run_id: str, charge_id: int) -> None:
        """Remember the ledger charge that pays for the run (before any section runs)."""
        self._store.connection().execute(
            "UPDATE report_runs SET charge_id = ? WHERE id = ?", (charge_id, run_id)
        )

    def finish(
        self,
        db: sqlite3.Connection,
        run_id: str,
        status: Status,
        *,
        error: str | None = None,
        refunded: bool = False,
        outputs: str | None = None,
        files: list[str] | None = None,
    ) -> bool:
        """Close a running run inside the caller's transaction; False if it was closed already."""
        cursor = db.execute(
            "UPDATE report_runs SET status = ?, error = ?, refunded = ?, outputs = ?, files = ?,"
            " finished_at = ? WHERE id = ? AND status = 'running'",
            (status, error, int(refunded), outputs, json.dumps(files or []), now(), run_id),
        )
        return cursor.rowcount == 1

    def get(self, report: str, run_id: str) -> ReportRun:
        """One run of one report."""
        found = _one(self._store.connection(), "report = ? AND id = ?", (report, run_id))
        if found is None:
            raise NotFoundError(
                T_("report '%(report)s' has no run '%(run_id)s'", report=report, run_id=run_id[:40])
            )
        return found

    def recent(self, report: str, *, limit: int = 50) -> list[ReportRun]:
        """The latest runs of a report, newest first."""
        rows = (
            self._store.connection()
            .execute(
                f"SELECT {_COLUMNS} FROM report_runs WHERE report = ?"  # noqa: S608
                " ORDER BY started_at DESC, rowid DESC LIMIT ?",
                (report, limit),
            )
            .fetchall()
        )
        return [_run(row) for row in rows]

    def last(self, report: str) -> ReportRun | None:
        """The latest run of a report, if any."""
        runs = self.recent(report, limit=1)
        return runs[0] if runs else None

    def last_scheduled_slot(self, report: str) -> str | None:
        """The latest slot the scheduler claimed for a report (whatever came of it)."""
        row = (
            self._store.connection()
            .execute(
                "SELECT max(slot) FROM report_runs WHERE report = ? AND trigger = 'schedule'",
                (report,),
            )
            .fetchone()
        )
        return str(row[0]) if row and row[0] is not None else None

    def every(self) -> list[ReportRun]:
        """Every run, oldest first (for the ledger check)."""
        rows = self._store.connection().execute(
            f"SELECT {_COLUMNS} FROM report_runs ORDER BY started_at, id"  # noqa: S608
        )
        return [_run(row) for row in rows]

    def interrupted(self) -> list[ReportRun]:
        """Runs still marked running: at service start, they were cut off by a stop."""
        rows = (
            self._store.connection()
            .execute(f"SELECT {_COLUMNS} FROM report_runs WHERE status = 'running'")  # noqa: S608
            .fetchall()
        )
        return [_run(row) for row in rows]


def _one(db: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> ReportRun | None:
    # ``where`` is one of this module's literals, never caller text.
    row = db.execute(f"SELECT {_COLUMNS} FROM report_runs WHERE {where}", args).fetchone()  # noqa: S608
    return _run(row) if row is not None else None


def _run(row: sqlite3.Row) -> ReportRun:
    return ReportRun(
        id=row["id"],
        report=row["report"],
        slot=row["slot"],
        trigger=row["trigger"],
        actor=row["actor"],
        status=row["status"],
        policy_version=int(row["policy_version"]),
        generation=row["generation"],
        epsilon=Epsilon(row["epsilon"]),
        charge_id=row["charge_id"],
        refunded=bool(row["refunded"]),
        inputs=json.loads(row["inputs"]),
        outputs=row["outputs"],
        files=json.loads(row["files"]),
        error=row["error"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )
