"""One rule for a broken audit chain, and the operator's re-anchor that resumes it.

Every kind of tampering stops appends with :class:`AuditChainBroken` naming the
entry; a re-anchor resumes recording while ``verify`` keeps naming the break;
a new break after it stops appends again. The append's check is cheap: it
re-reads only what was written since the last verified tip.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanroom.errors import AuditChainBroken, ConflictError, ForbiddenError, UserError
from cleanroom.room.audit import AuditLog
from cleanroom.room.auth import Role, Users
from cleanroom.room.reanchor import reanchor
from cleanroom.room.store import MetaStore
from tests.unit.room.conftest import AUDIT_KEY as KEY

ENTRIES = 30


def fill(log: AuditLog, n: int = ENTRIES) -> None:
    for i in range(n):
        log.record(actor="cli", action="query.run", details={"i": i, "epsilon": "1/4"})


def tamper(path: Path, *statements: str) -> None:
    """Raw SQL from another process, as an operator with file access would."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements:
            db.execute(statement)
    finally:
        db.close()


EDIT_MIDDLE = 'UPDATE audit SET details = \'{"epsilon":"1/400","i":14}\' WHERE seq = 15'
DAMAGE: dict[str, tuple[str, int]] = {  # what an operator does -> the entry the break is named at
    "newest-row-deleted": (f"DELETE FROM audit WHERE seq = {ENTRIES}", ENTRIES),
    "middle-row-edited": (EDIT_MIDDLE, 15),
    "head-record-deleted": ("DELETE FROM audit_head", ENTRIES),
    "head-points-elsewhere": (f"UPDATE audit_head SET seq = {ENTRIES - 3}", ENTRIES),
    "middle-row-deleted": ("DELETE FROM audit WHERE seq = 7", 7),
}


@pytest.fixture
def full(store: MetaStore, audit: AuditLog) -> AuditLog:
    fill(audit)
    return audit


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_every_break_stops_appends_naming_its_entry(store: MetaStore, damage: str) -> None:
    fill(AuditLog(store, KEY))
    statement, entry = DAMAGE[damage]
    tamper(store.path, statement)
    restarted = AuditLog(store, KEY)  # a fresh process verifies the whole chain once
    with pytest.raises(AuditChainBroken) as caught:
        restarted.record(actor="cli", action="query.run")
    assert caught.value.entry == entry
    assert caught.value.details == {"entry": entry, "reason": caught.value.reason}
    assert f"audit chain broken at entry {entry}: nothing more is recorded" in str(caught.value)
    assert caught.value.status == 503
    assert restarted.recording() is False
    verdict = restarted.verify()
    assert (verdict.recording, verdict.broken_at) == (False, entry)
    assert caught.value.reason == verdict.open_problems[0]


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_reanchor_resumes_recording_and_the_break_stays_named(
    store: MetaStore, damage: str
) -> None:
    fill(AuditLog(store, KEY))
    statement, entry = DAMAGE[damage]
    tamper(store.path, statement)
    log = AuditLog(store, KEY)
    found = log.verify().open_problems
    anchor = log.reanchor(by=["rita", "omid"], reason="INC-7: restored from backup, see report")
    assert anchor.details["broken_at"] == entry
    assert anchor.details["acknowledged"] == found
    after = log.record(actor="cli", action="query.run", details={"after": True})
    assert after.seq == anchor.seq + 1 and after.prev_hash == anchor.hash
    for reader in (log, AuditLog(store, KEY)):  # this process, and the next start
        verdict = reader.verify()
        assert verdict.recording and not verdict.ok  # the break is visible forever
        assert verdict.open_problems == []
        assert [(r.seq, r.by, r.reason) for r in verdict.reanchors] == [
            (anchor.seq, ["rita", "omid"], "INC-7: restored from backup, see report")
        ]
        assert verdict.reanchors[0].acknowledged == found
        reader.record(actor="cli", action="query.run")


def test_a_cut_off_entry_stays_a_gap_after_the_reanchor(store: MetaStore, full: AuditLog) -> None:
    tamper(store.path, f"DELETE FROM audit WHERE seq = {ENTRIES}")
    log = AuditLog(store, KEY)
    anchor = log.reanchor(by=["rita"], reason="the newest row was deleted by hand")
    assert anchor.seq == ENTRIES + 1  # never re-uses the removed seq
    assert f"entry {ENTRIES} is missing" in log.verify().problems


def test_a_new_break_after_a_reanchor_stops_appends_again(store: MetaStore, full: AuditLog) -> None:
    tamper(store.path, EDIT_MIDDLE)
    log = AuditLog(store, KEY)
    log.reanchor(by=["rita"], reason="edited row found and documented")
    log.record(actor="cli", action="query.run")
    tamper(store.path, "UPDATE audit SET actor = 'mallory' WHERE seq = 4")
    with pytest.raises(AuditChainBroken) as caught:
        AuditLog(store, KEY).record(actor="cli", action="query.run")
    assert caught.value.entry == 4


def test_reanchoring_an_intact_chain_is_refused(store: MetaStore, full: AuditLog) -> None:
    with pytest.raises(ConflictError, match="nothing to re-anchor"):
        full.reanchor(by=["rita"], reason="just because")
    with pytest.raises(UserError, match="reason"):
        full.reanchor(by=["rita"], reason="  ")


def test_a_known_break_is_remembered_until_the_head_moves(
    store: MetaStore, full: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    tamper(store.path, f"DELETE FROM audit WHERE seq = {ENTRIES}")
    with pytest.raises(AuditChainBroken):
        full.record(actor="cli", action="query.run")
    full_passes: list[int] = []
    original = AuditLog._assess

    def counting(self: AuditLog, db: sqlite3.Connection) -> Any:
        full_passes.append(1)
        return original(self, db)

    monkeypatch.setattr(AuditLog, "_assess", counting)
    for _ in range(5):  # refused again without verifying the whole chain again
        with pytest.raises(AuditChainBroken):
            full.require_intact()
    assert full_passes == []
    # Another process re-anchors: the head moves, this process re-examines once and records.
    AuditLog(store, KEY).reanchor(by=["rita"], reason="investigated")
    full.record(actor="cli", action="query.run")
    full.record(actor="cli", action="query.run")
    assert len(full_passes) == 2  # the re-anchor's own check, and this process's once


def test_each_append_reads_only_what_is_new(
    store: MetaStore, full: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    full.check()  # start-up: one full pass in each process
    other = AuditLog(store, KEY)  # another process appends meanwhile (a CLI command)
    other.check()
    checked: list[int] = []
    original = AuditLog._row_verifies

    def counting(self: AuditLog, row: sqlite3.Row, seq: int) -> bool:
        checked.append(seq)
        return original(self, row, seq)

    monkeypatch.setattr(AuditLog, "_row_verifies", counting)
    for i in range(20):
        full.record(actor="cli", action="query.run", details={"i": i})
        if i % 5 == 0:
            other.record(actor="cli", action="user.add")
    own = [seq for seq in checked if seq <= ENTRIES]
    assert own == []  # the old entries were never re-read
    assert len(checked) < 60  # at most the new entries, each once per process


def test_an_old_entry_edited_while_running_is_found_by_the_next_verification(
    store: MetaStore, full: AuditLog
) -> None:
    """The documented cost model: appends check new entries; a full pass finds older edits."""
    full.check()
    tamper(store.path, EDIT_MIDDLE)
    full.record(actor="cli", action="query.run")  # not seen by the cheap check
    assert not full.verify().recording  # the periodic / requested verification sees it
    with pytest.raises(AuditChainBroken) as caught:
        full.record(actor="cli", action="query.run")
    assert caught.value.entry == 15


def test_refusals_are_answered_and_logged_while_the_chain_is_broken(
    store: MetaStore, full: AuditLog, caplog: pytest.LogCaptureFixture
) -> None:
    tamper(store.path, "DELETE FROM audit_head")
    with caplog.at_level(logging.WARNING, logger="cleanroom.audit"):
        written = full.record_refusal(actor="anonymous", action="auth.denied", outcome="denied")
    assert written is None
    assert "refusal not recorded" in caplog.text
    assert "audit chain broken" in caplog.text  # the break itself, logged once


# -- the operator's procedure: who may re-anchor --------------------------------------


def room_with(store: MetaStore, approvals: int) -> Any:
    log = AuditLog(store, KEY)
    users = Users(store, log)
    users.add("rita", Role.room_admin)
    users.add("omid", Role.reviewer)
    users.add("ana", Role.analyst, "okala")
    users.add("old", Role.reviewer)
    users.revoke("old")
    fill(log, 5)
    governance = SimpleNamespace(approvals_required=approvals)
    active = SimpleNamespace(policy=SimpleNamespace(governance=governance))
    tamper(store.path, "DELETE FROM audit WHERE seq = 3")
    return SimpleNamespace(audit=AuditLog(store, KEY), users=users, active_policy=lambda: active)


@pytest.mark.parametrize(
    ("approvals", "by", "second", "error"),
    [
        (2, "rita", None, "two people"),
        (2, "rita", "rita", "another person"),
        (2, "rita", "ana", "'ana' may not"),
        (2, "rita", "old", "'old' may not"),
        (2, "nobody", "omid", "'nobody' may not"),
        (1, "ana", None, "'ana' may not"),
    ],
)
def test_the_people_who_may_reanchor(
    store: MetaStore, approvals: int, by: str, second: str | None, error: str
) -> None:
    room = room_with(store, approvals)
    with pytest.raises((UserError, ForbiddenError), match=error):
        reanchor(room, by=by, second=second, reason="looked at it")
    assert not room.audit.verify().recording  # nothing was written


@pytest.mark.parametrize(("approvals", "second"), [(2, "omid"), (1, None), (3, "omid")])
def test_reanchor_with_enough_people(store: MetaStore, approvals: int, second: str | None) -> None:
    room = room_with(store, approvals)
    entry = reanchor(room, by="rita", second=second, reason="row 3 deleted; restored copy kept")
    assert entry.details["by"] == ["rita", *([second] if second else [])]
    assert entry.details["broken_at"] == 3
    assert room.audit.verify().recording


# -- property: whatever the damage, the rule holds ------------------------------------

OPERATIONS = st.one_of(
    st.tuples(st.just("delete"), st.integers(1, 12)),
    st.tuples(st.just("edit"), st.integers(1, 12)),
    st.tuples(st.just("drop_head"), st.just(0)),
    st.tuples(st.just("head_seq"), st.integers(1, 11)),
)
STATEMENTS: dict[str, Callable[[int], str]] = {
    "delete": lambda k: f"DELETE FROM audit WHERE seq = {k}",
    "edit": lambda k: f"UPDATE audit SET outcome = 'forged' WHERE seq = {k}",
    "drop_head": lambda _: "DELETE FROM audit_head",
    "head_seq": lambda k: f"UPDATE audit_head SET seq = {k}",
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damage=st.lists(OPERATIONS, min_size=1, max_size=3))
def test_any_damage_stops_appends_until_reanchored(damage: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = MetaStore(Path(tmp) / "meta.db")
        try:
            fill(AuditLog(store, KEY), 12)
            tamper(store.path, *(STATEMENTS[kind](k) for kind, k in damage))
            log = AuditLog(store, KEY)
            verdict = log.verify()
            if verdict.recording:  # e.g. deleting the same row twice: still must be broken
                pytest.fail(f"damage {damage} went unnoticed")
            with pytest.raises(AuditChainBroken) as caught:
                AuditLog(store, KEY).record(actor="cli", action="query.run")
            assert caught.value.entry == verdict.broken_at
            log.reanchor(by=["rita"], reason="investigated")
            AuditLog(store, KEY).record(actor="cli", action="query.run")
            final = AuditLog(store, KEY).verify()
            assert final.recording and not final.ok and final.problems
        finally:
            store.close()
