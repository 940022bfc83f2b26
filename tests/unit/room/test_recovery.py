"""After a crash: orphaned queries failed and refunded; the ledger checked against results."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cleanroom.room.audit import AuditLog
from cleanroom.room.budget import Ledger
from cleanroom.room.policy.privacy import BudgetPolicy
from cleanroom.room.recovery import (
    check_ledger,
    pending,
    recover,
    recover_matches,
    recover_queries,
    refund_failed_queries,
)
from cleanroom.room.store import MetaStore, now

POLICY = BudgetPolicy(epsilon=3.0, period="month", shares={"acme": 1.0})


@pytest.fixture
def room(tmp_path: Path, store: MetaStore, audit: AuditLog) -> Any:
    active = SimpleNamespace(policy=SimpleNamespace(privacy=SimpleNamespace(budget=POLICY)))
    return SimpleNamespace(
        paths=SimpleNamespace(root=tmp_path),
        store=store,
        audit=audit,
        active_policy=lambda: active,
        settings=SimpleNamespace(zone=ZoneInfo("Asia/Tehran")),
    )


def query(room: Any, query_id: str, status: str, epsilon: str = "1/4", **extra: Any) -> None:
    row = {
        "id": query_id,
        "party": "acme",
        "user_name": "ana",
        "kind": "sql",
        "request": "{}",
        "cache_key": "k",
        "policy_version": 1,
        "generation": 1,
        "epsilon": epsilon,
        "status": status,
        "created_at": now(),
        **extra,
    }
    room.store.connection().execute(
        f"INSERT INTO queries ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
        tuple(row.values()),
    )


def answered(room: Any, query_id: str, epsilon: str = "1/4", **extra: Any) -> None:
    body = json.dumps({"rows": []})
    digest = hashlib.sha256(body.encode()).hexdigest()
    query(room, query_id, "done", epsilon, result=body, result_sha256=digest, **extra)


def charge(room: Any, query_id: str, epsilon: Fraction = Fraction(1, 4)) -> int:
    return Ledger(room.store, room.audit).charge(
        "acme", epsilon, policy=POLICY, query_id=query_id, actor="ana"
    )


def test_a_query_cut_off_after_its_charge_is_failed_and_refunded(room: Any) -> None:
    answered(room, "q1")
    charge(room, "q1")
    query(room, "q2", "running")
    charge(room, "q2")
    assert not check_ledger(room).ok  # a standing charge for a query still running

    assert recover_queries(room) == ["q2"]
    check = check_ledger(room)
    assert check.ok, check.problems
    assert (check.charges, check.refunded, check.fresh_answers) == (2, 1, 1)
    assert check.spent == {"acme": Fraction(1, 4)}
    db = room.store.connection()
    assert db.execute("SELECT status FROM queries WHERE id = 'q2'").fetchone()[0] == "failed"
    recovered = room.audit.entries(action="query.recovered")
    assert [e.details["query_id"] for e in recovered] == ["q2"]
    assert recover_queries(room) == []  # nothing left, nothing refunded twice
    assert len(room.audit.entries(action="budget.refund")) == 1


def test_the_check_names_every_broken_rule(room: Any) -> None:
    answered(room, "unpaid")  # an answer nobody paid for
    query(room, "lost", "failed")
    charge(room, "lost")  # paid, never answered, never refunded
    answered(room, "copy", "0", cached_from="unpaid")
    charge(room, "copy")  # a cached copy charged
    answered(room, "tampered")
    charge(room, "tampered")
    room.store.connection().execute("UPDATE queries SET result = '{}' WHERE id = 'tampered'")
    charge(room, "ghost")  # a charge for no query at all
    problems = " | ".join(check_ledger(room).problems)
    assert "query unpaid: answered with 0 standing charges" in problems
    assert "standing, but query lost is failed" in problems
    assert "query copy: a cached copy was charged" in problems
    assert "query tampered: done without an intact stored result" in problems
    assert "no query ghost" in problems


def report_run(room: Any, run_id: str, status: str) -> None:
    room.store.connection().execute(
        "INSERT INTO report_runs (id, report, slot, trigger, actor, status, policy_version,"
        " epsilon, inputs, started_at) VALUES (?, 'weekly', ?, 'manual', 'sched', ?, 1, '1/2',"
        " '{}', ?)",
        (run_id, f"manual:{run_id}", status, now()),
    )


def test_report_and_bounds_charges_are_checked_by_their_own_columns(room: Any) -> None:
    ledger = Ledger(room.store, room.audit)

    def pay(epsilon: Fraction = Fraction(1, 2), **paid_for: Any) -> int:
        return ledger.charge("acme", epsilon, policy=POLICY, actor="sched", **paid_for)

    report_run(room, "r-done", "done")
    pay(report_run="r-done")
    answered(room, "s1", "1/4", report_run="r-done")  # its sections: paid by the run's charge
    answered(room, "s2", "1/4", report_run="r-done")
    report_run(room, "r-cut", "failed")
    ledger.refund(pay(report_run="r-cut"), actor="recovery", reason="cut")
    answered(room, "s3", "1/4", report_run="r-cut")  # released, yet its run's charge refunded
    match(room, 4, "live")
    pay(Fraction(1, 10), generation=4)
    pay(Fraction(1, 10), generation=9)  # no such generation
    check = check_ledger(room)
    assert check.report_runs_charged == 1 and check.fresh_answers == 0
    assert sorted(check.problems) == [
        "charge 2: refunded, but run r-cut released",
        "charge 4: no match generation 9",
    ]
    assert [c.id for c in ledger.charges(report_run="r-done")] == [1]


# -- everything start-up recovery settles is audited and logged; a broken chain is left -----


def match(room: Any, generation: int, status: str) -> None:
    room.store.connection().execute(
        "INSERT INTO matches (generation, started_at, status, inputs) VALUES (?, ?, ?, '{}')",
        (generation, now(), status),
    )


class Reports:
    """The report runner's recovery, as the orchestrator sees it."""

    def __init__(self) -> None:
        self.called = 0

    def recover(self) -> list[str]:
        self.called += 1
        return []


@pytest.fixture
def no_warehouse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cleanroom.room.recovery.reconcile", lambda room: [])


def test_a_match_cut_off_is_failed_audited_and_logged(
    room: Any, caplog: pytest.LogCaptureFixture
) -> None:
    match(room, 1, "live")
    match(room, 2, "running")
    with caplog.at_level(logging.WARNING, logger="cleanroom.recovery"):
        assert recover_matches(room) == [2]
    db = room.store.connection()
    statuses = dict(db.execute("SELECT generation, status FROM matches").fetchall())
    assert statuses == {1: "live", 2: "failed"}
    entries = room.audit.entries(action="match.recovered")
    assert [(e.actor, e.target, e.outcome) for e in entries] == [
        ("recovery", "generation 2", "failed")
    ]
    assert "matches cut off by a stop marked failed" in caplog.text
    assert recover_matches(room) == []  # once


def test_a_refund_left_over_by_a_failed_query_is_made_at_start_up(room: Any) -> None:
    query(room, "q1", "running")
    charge(room, "q1")
    room.store.connection().execute("UPDATE queries SET status = 'failed' WHERE id = 'q1'")
    assert not check_ledger(room).ok  # failed, but its charge stands
    assert len(refund_failed_queries(room)) == 1
    assert check_ledger(room).ok
    assert refund_failed_queries(room) == []


def test_start_up_recovery_settles_everything_when_the_chain_holds(
    room: Any, no_warehouse: None
) -> None:
    query(room, "q1", "running")
    charge(room, "q1")
    match(room, 3, "running")
    reports = Reports()
    done = recover(room, reports)  # type: ignore[arg-type]
    assert (done.queries, done.matches, done.reason, reports.called) == (["q1"], [3], None, 1)
    assert pending(room) == {"queries": 0, "report_runs": 0, "matches": 0, "refunds": 0}
    assert check_ledger(room).ok


def test_start_up_recovery_with_a_broken_chain_leaves_everything_and_says_so(
    room: Any, no_warehouse: None, caplog: pytest.LogCaptureFixture
) -> None:
    query(room, "q1", "running")
    charge(room, "q1")
    match(room, 3, "running")
    room.store.connection().execute("DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)")
    reports = Reports()
    with caplog.at_level(logging.ERROR, logger="cleanroom.recovery"):
        done = recover(room, reports)  # type: ignore[arg-type]
    assert done.reason is not None and done.reason.startswith("audit chain broken at entry 1")
    assert done.left == {"queries": 1, "report_runs": 0, "matches": 1, "refunds": 0}
    assert (done.queries, done.matches, reports.called) == ([], [], 0)
    assert "start-up recovery left for the operator" in caplog.text
    db = room.store.connection()
    assert db.execute("SELECT status FROM queries WHERE id = 'q1'").fetchone()[0] == "running"
    room.audit.reanchor(by=["rita"], reason="charge entry deleted; documented")
    again = recover(room, reports)  # type: ignore[arg-type]
    assert (again.queries, again.matches, again.reason) == (["q1"], [3], None)
    assert check_ledger(room).ok


def test_a_failing_step_does_not_stop_the_others(
    room: Any, no_warehouse: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    match(room, 4, "running")

    def broken(room: Any) -> list[str]:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr("cleanroom.room.recovery.recover_queries", broken)
    done = recover(room, Reports())  # type: ignore[arg-type]
    assert (done.queries, done.matches) == ([], [4])
