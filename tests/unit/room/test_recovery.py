"""After a crash: orphaned queries failed and refunded; the ledger checked against results."""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cleanroom.room.audit import AuditLog
from cleanroom.room.budget import Ledger
from cleanroom.room.policy.privacy import BudgetPolicy
from cleanroom.room.recovery import check_ledger, recover_queries
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
