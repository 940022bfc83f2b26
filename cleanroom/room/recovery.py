"""After a crash: close the queries a dead process left running, and check the ledger agrees.

The rule. A query's epsilon is charged before its data is read; its noisy
result is stored (status ``done``, with its ``query.run`` audit entry) in one
transaction, and only then returned. So a query still ``running`` when the
service starts was cut off before that transaction: its answer existed only in
the memory of the dead process and reached no one, and an answer nobody saw
costs no privacy. :func:`recover_queries` marks it ``failed`` and refunds its
charge, audited (``budget.refund``, then ``query.recovered``). Report runs
follow the runner's rule (:meth:`~cleanroom.room.reports.runner.ReportRunner.recover`):
refunded when no section's result was stored, charged in full otherwise.

:func:`check_ledger` states what these rules keep true, for the crash tests, the
load benchmark and an operator after an incident: every charge is either
refunded (its query failed or was refused, nothing stored) or paid for exactly
one stored result — a fresh query answer, or a report run that is done or
stored at least one section — and no party is over its share.

Every table is read through its owner (:mod:`~cleanroom.room.query.records`,
:class:`~cleanroom.room.budget.Ledger`, :class:`~cleanroom.room.reports.runs.RunLog`,
:mod:`~cleanroom.room.generations`); what a charge paid for is its own column.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from cleanroom import clock
from cleanroom.room import generations
from cleanroom.room.budget import Charge, Ledger, period_bounds
from cleanroom.room.ingest import reconcile
from cleanroom.room.query import records
from cleanroom.room.query.records import QueryRecord
from cleanroom.room.reports.runner import ReportRunner
from cleanroom.room.reports.runs import ReportRun, RunLog
from cleanroom.room.state import Room

log = logging.getLogger("cleanroom.recovery")

RECOVERY = "recovery"  # the actor of recovery's audit entries


@dataclass(frozen=True)
class Recovery:
    """What start-up recovery did, and what it left for an operator (and why)."""

    tables_dropped: int = 0
    queries: list[str] = field(default_factory=list)
    refunds: list[int] = field(default_factory=list)
    report_runs: list[str] = field(default_factory=list)
    matches: list[int] = field(default_factory=list)
    left: dict[str, int] = field(default_factory=dict)  # kind -> rows left as they were
    reason: str | None = None  # why something was left


def recover(room: Room, reports: ReportRunner) -> Recovery:
    """At start-up: settle what a stopped service left behind; never stop the room starting.

    Every settlement is audited and logged. Settling is recorded, so with a
    broken audit chain none is made: the rows stay as they are (a standing
    charge is never less privacy accounted than was spent), the log says what
    was left and why, and the next start after ``cleanroom audit reanchor``
    settles them. A step that fails for any other reason is logged and the
    rest go on: a room that cannot start helps no one investigate.
    """
    dropped = len(reconcile(room))  # unreferenced tables and spool files: nothing to record
    verification = room.audit.check()
    if not verification.recording:
        left = pending(room)
        reason = (
            f"audit chain broken at entry {verification.broken_at}: {verification.open_problems[0]}"
        )
        log.error(
            "start-up recovery left for the operator: the audit chain is broken",
            extra={"entry": verification.broken_at, **left},
        )
        return Recovery(tables_dropped=dropped, left=left, reason=reason)
    done: dict[str, Any] = {}
    steps: dict[str, Callable[[], Any]] = {
        "matches": lambda: recover_matches(room),
        "queries": lambda: recover_queries(room),
        "refunds": lambda: refund_failed_queries(room),
        "report_runs": reports.recover,
    }
    for name, step in steps.items():
        try:
            done[name] = step()
        except Exception as err:  # logged, left for the next start: never unstartable
            log.error(
                "start-up recovery step failed; left for the operator",
                extra={"step": name, "error": type(err).__name__},
            )
            done[name] = []
    if done["report_runs"]:
        log.warning(
            "report runs cut off by a stop marked failed",
            extra={"report_runs": len(done["report_runs"])},
        )
    return Recovery(tables_dropped=dropped, **done)


def pending(room: Room) -> dict[str, int]:
    """Rows a stopped service left unsettled, by kind (for the log and the operator)."""
    db = room.store.connection()
    return {
        "queries": len(records.running(db)),
        "report_runs": len(RunLog(room.store).interrupted()),
        "matches": len(generations.with_status(db, "running")),
        "refunds": len(_unrefunded(room)),
    }


def recover_matches(room: Room) -> list[int]:
    """Fail every match a stopped service left ``running``, audited and logged; their generations.

    A match publishes its generation in one transaction with its audit entry,
    so one still ``running`` never went live; its half-built tables were
    dropped by :func:`~cleanroom.room.ingest.reconcile`.
    """
    db = room.store.connection()
    cut = [m.generation for m in generations.with_status(db, "running")]
    reason = "interrupted: the service stopped before the generation was published"
    for generation in cut:
        with room.store.transaction() as tx:
            if generations.fail(tx, generation, finished=True):
                room.audit.append(
                    tx,
                    actor=RECOVERY,
                    action="match.recovered",
                    target=f"generation {generation}",
                    outcome="failed",
                    details={"generation": generation, "reason": reason},
                )
    if cut:
        log.warning("matches cut off by a stop marked failed", extra={"matches": len(cut)})
    return cut


def _unrefunded(room: Room) -> list[int]:
    """Standing charges of queries that failed or were refused, in the order made.

    Such a query stored no result, so a charge still standing for it is one
    whose refund could not be made or recorded at the time.
    """
    unanswered = records.closed_unanswered(room.store.connection())
    ledger = Ledger(room.store, room.audit, room.settings.zone)
    return [c.id for c in ledger.standing_for_queries(unanswered)]


def refund_failed_queries(room: Room) -> list[int]:
    """Refund the charges of failed queries whose refund was left for later; their ids."""
    charges = _unrefunded(room)
    ledger = Ledger(room.store, room.audit)
    for charge in charges:
        ledger.refund(charge, actor=RECOVERY, reason="failed before release; refund left over")
    if charges:
        log.warning("refunds left over by failed queries made", extra={"refunds": len(charges)})
    return charges


def recover_queries(room: Room) -> list[str]:
    """At start-up: fail and refund every query a stopped service left ``running``; their ids.

    Only for a room no other process is answering queries from (the service
    runs one process per room): a ``running`` row is then certainly orphaned.
    """
    orphans = records.running(room.store.connection())
    ledger = Ledger(room.store, room.audit, room.settings.zone)
    reason = "interrupted: the service stopped before the result was stored"
    for query_id in orphans:
        charges = [c.id for c in ledger.charges(query_id=query_id, standing=True)]
        for charge in charges:  # refunding is idempotent: a crash here is recovered next time
            ledger.refund(charge, actor=RECOVERY, reason=reason)
        with room.store.transaction() as tx:
            if records.fail(tx, query_id):
                room.audit.append(
                    tx,
                    actor=RECOVERY,
                    action="query.recovered",
                    target=query_id,
                    outcome="failed",
                    details={"query_id": query_id, "refunded_charges": charges, "reason": reason},
                )
    if orphans:
        log.warning("queries cut off by a stop marked failed", extra={"queries": len(orphans)})
    return orphans


@dataclass
class LedgerCheck:
    """The verdict of :func:`check_ledger`: problems (none when consistent) and the figures."""

    problems: list[str] = field(default_factory=list)
    charges: int = 0
    refunded: int = 0
    charged: Fraction = Fraction(0)  # epsilon of every standing charge
    fresh_answers: int = 0  # stored, charged query results (cached copies excluded)
    fresh_epsilon: Fraction = Fraction(0)
    cached_answers: int = 0
    report_runs_charged: int = 0
    spent: dict[str, Fraction] = field(default_factory=dict)  # party -> this period, standing

    @property
    def ok(self) -> bool:
        """True when every rule holds."""
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (epsilons as exact strings)."""
        return {
            "ok": self.ok,
            "problems": self.problems,
            "charges": self.charges,
            "refunded": self.refunded,
            "charged": str(self.charged),
            "fresh_answers": self.fresh_answers,
            "fresh_epsilon": str(self.fresh_epsilon),
            "cached_answers": self.cached_answers,
            "report_runs_charged": self.report_runs_charged,
            "spent": {party: str(eps) for party, eps in sorted(self.spent.items())},
        }


def check_ledger(room: Room, *, idle: bool = True) -> LedgerCheck:
    """Check the budget ledger against the stored results (``idle``: nothing may be running)."""
    db = room.store.connection()
    check = LedgerCheck()
    problem = check.problems.append
    queries = {q.id: q for q in records.every(db)}
    runs = {r.id: r for r in RunLog(room.store).every()}
    released: dict[str, int] = defaultdict(int)  # report run id -> sections stored
    for query in queries.values():
        if query.report_run is not None and query.status == "done":
            released[query.report_run] += 1
    charged_for: dict[str, list[Charge]] = defaultdict(list)
    for charge in Ledger(room.store, room.audit, room.settings.zone).charges():
        check.charges += 1
        if charge.standing:
            check.charged += charge.epsilon
        else:
            check.refunded += 1
        if charge.report_run is not None:
            _check_report_charge(charge, runs.get(charge.report_run), released, check, idle=idle)
            continue
        if charge.generation is not None:
            _check_bounds_charge(db, charge, check)
            continue
        assert charge.query_id is not None  # the store's CHECK: exactly one of the three
        charged_for[charge.query_id].append(charge)
        paid = queries.get(charge.query_id)
        if paid is None:
            problem(f"charge {charge.id}: no query {charge.query_id}")
        elif not charge.standing:
            if paid.status not in ("failed", "refused") or paid.result is not None:
                problem(f"charge {charge.id}: refunded, but query {paid.id} has a result")
        elif paid.status != "done" and (idle or paid.status != "running"):
            problem(f"charge {charge.id}: standing, but query {paid.id} is {paid.status}")
        elif paid.status == "done" and Fraction(paid.epsilon) != charge.epsilon:
            problem(f"charge {charge.id}: epsilon differs from query {paid.id}'s")
    for query in queries.values():
        _check_query(query, charged_for.get(query.id, []), check, idle=idle)
    _check_shares(room, check)
    verification = room.audit.verify()
    if not verification.recording:  # a re-anchored break is known and recorded; a new one is not
        check.problems += [f"audit: {p}" for p in verification.open_problems]
    return check


def _check_query(
    query: QueryRecord, charges: list[Charge], check: LedgerCheck, *, idle: bool
) -> None:
    standing = [c for c in charges if c.standing]
    if query.status == "running" and idle:
        check.problems.append(f"query {query.id}: still running")
    if query.status != "done":
        return
    if query.result is None or (
        hashlib.sha256(query.result.encode()).hexdigest() != query.result_sha256
    ):
        check.problems.append(f"query {query.id}: done without an intact stored result")
    if query.cached_from is not None:
        check.cached_answers += 1
        if charges:
            check.problems.append(f"query {query.id}: a cached copy was charged")
    elif query.report_run is not None:
        if charges:
            check.problems.append(f"query {query.id}: a report section charged on its own")
    elif len(standing) != 1:
        check.problems.append(f"query {query.id}: answered with {len(standing)} standing charges")
    else:
        check.fresh_answers += 1
        check.fresh_epsilon += Fraction(query.epsilon)


def _check_bounds_charge(db: Any, charge: Charge, check: LedgerCheck) -> None:
    """A match's bounds charge: refunded only if its generation never went live.

    A standing charge of a failed match is allowed (a crash after the charge:
    never less accounted than may have been spent).
    """
    assert charge.generation is not None
    match = generations.get(db, charge.generation)
    if match is None:
        check.problems.append(f"charge {charge.id}: no match generation {charge.generation}")
    elif not charge.standing and match.status in ("live", "replaced"):
        check.problems.append(
            f"charge {charge.id}: refunded, but generation {charge.generation} chose its bounds"
        )


def _check_report_charge(
    charge: Charge,
    run: ReportRun | None,
    released: dict[str, int],
    check: LedgerCheck,
    *,
    idle: bool,
) -> None:
    if run is None:
        check.problems.append(f"charge {charge.id}: no report run {charge.report_run}")
        return
    stored = released.get(run.id, 0)
    if not charge.standing:
        if stored or run.status == "done":
            check.problems.append(f"charge {charge.id}: refunded, but run {run.id} released")
        return
    check.report_runs_charged += 1
    if run.status == "running" and not idle:
        return
    if run.status != "done" and not (run.status == "failed" and stored):
        check.problems.append(
            f"charge {charge.id}: standing, but run {run.id} is {run.status} "
            f"with {stored} stored sections"
        )


def _check_shares(room: Room, check: LedgerCheck) -> None:
    privacy = room.active_policy().policy.privacy
    if privacy is None:
        return
    ledger = Ledger(room.store, room.audit, room.settings.zone)
    start, _, label = period_bounds(privacy.budget.period, clock.now(), room.settings.zone)
    for party in sorted(ledger.parties_since(start)):
        status = ledger.status(party, privacy.budget)
        check.spent[party] = status.spent
        if status.spent > status.share:
            check.problems.append(f"{party}: spent {status.spent} of a {status.share} share")
        if status.spent_total > status.cap:
            check.problems.append(f"{label}: spent {status.spent_total} of the {status.cap} cap")
