from __future__ import annotations

import hashlib
import hmac
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import pytest

from cleanroom.errors import AuditChainBroken, InternalError, UserError
from cleanroom.room.audit import GENESIS, AuditLog
from cleanroom.room.store import MetaStore
from tests.unit.room.conftest import AUDIT_KEY as KEY

OTHER_KEY = hashlib.sha256(b"someone else's key").digest()
ACTIONS = ["dataset.upload", "auth.login", "match.run", "query.run", "policy.propose"]


@pytest.fixture
def log(audit: AuditLog) -> AuditLog:
    return audit


@pytest.fixture
def full_log(log: AuditLog) -> AuditLog:
    """A clean log of 50 entries, fresh for every test that tampers with it."""
    for i in range(50):
        log.record(
            actor=f"user{i % 3}",
            action=ACTIONS[i % len(ACTIONS)],
            outcome="ok" if i % 7 else "denied",
            target=f"thing-{i}" if i % 2 else None,
            details={"i": i, "ratio": i / 7, "tags": ["a", "b"], "nested": {"ok": i % 2 == 0}},
        )
    return log


def tamper(store: MetaStore, *statements: str | tuple[str, tuple[Any, ...]]) -> None:
    """Raw SQL from outside the room's code, as an operator with file access would."""
    db = sqlite3.connect(store.path, isolation_level=None)
    try:
        db.execute("BEGIN")
        for statement in statements:
            if isinstance(statement, tuple):
                db.execute(*statement)
            else:
                db.execute(statement)
        db.execute("COMMIT")
    finally:
        db.close()


def row_hash(store: MetaStore, seq: int) -> str:
    row = store.connection().execute("SELECT hash FROM audit WHERE seq = ?", (seq,)).fetchone()
    return str(row[0])


def problems_of(log: AuditLog) -> list[str]:
    result = log.verify()
    assert not result.ok
    assert result.problems
    return result.problems


def has(problems: list[str], text: str) -> bool:
    return any(text in p for p in problems)


# -- writing and reading -------------------------------------------------------


def test_append_joins_the_callers_transaction(store: MetaStore, log: AuditLog) -> None:
    with store.transaction() as db:
        db.execute(
            "INSERT INTO users (name, role, party, token_hash, created_at) "
            "VALUES ('ana', 'analyst', 'okala', x'00', 'now')"
        )
        entry = log.append(
            db, actor="cli", action="user.add", target="ana", details={"role": "analyst"}
        )
    assert entry.seq == 1
    assert entry.prev_hash == GENESIS
    assert entry.outcome == "ok"
    assert len(entry.hash) == 64
    assert log.entries() == [entry]
    head = store.connection().execute("SELECT seq, hash FROM audit_head").fetchone()
    assert (head["seq"], head["hash"]) == (1, entry.hash)


def test_record_chains_entries(log: AuditLog) -> None:
    first = log.record(actor="cli", action="user.add", target="ana")
    second = log.record(actor="ana", action="auth.login", details={"ip": "10.0.0.1"})
    assert second.seq == first.seq + 1
    assert second.prev_hash == first.hash
    assert log.entries()[1].details == {"ip": "10.0.0.1"}


def test_entry_hash_is_the_documented_hmac(log: AuditLog) -> None:
    entry = log.record(actor="cli", action="user.add", target="ana", details={"role": "analyst"})
    body = (
        '{"action":"user.add","actor":"cli","at":"'
        + entry.at
        + '","details":{"role":"analyst"},"outcome":"ok","seq":1,"target":"ana"}'
    )
    want = hmac.new(KEY, (GENESIS + body).encode(), hashlib.sha256).hexdigest()
    assert entry.hash == want


def test_details_round_trip_exactly(log: AuditLog) -> None:
    details = {
        "n": 3,
        "x": 0.1,
        "big": 2**60,
        "flag": False,
        "none": None,
        "list": [1, "two", [3.5, None], {"k": "v"}],
        "unicode": "شهر",
        "tuple": (1, 2),
    }
    log.record(actor="cli", action="query.run", details=details)
    got = log.entries()[0].details
    assert got == {**details, "tuple": [1, 2]}
    assert log.verify().ok


def test_entries_filters_and_pages(full_log: AuditLog) -> None:
    everything = full_log.entries(limit=1000)
    assert [e.seq for e in everything] == list(range(1, 51))
    assert all(e.actor == "user1" for e in full_log.entries(actor="user1"))
    assert len(full_log.entries(actor="user1")) == 17
    assert {e.action for e in full_log.entries(action="query.run")} == {"query.run"}
    assert len(full_log.entries(action="query.run")) == 10
    denied = full_log.entries(outcome="denied")
    assert [e.seq for e in denied] == [1, 8, 15, 22, 29, 36, 43, 50]
    both = full_log.entries(actor="user1", outcome="denied")
    assert [e.seq for e in both] == [8, 29, 50]
    page1 = full_log.entries(limit=20)
    page2 = full_log.entries(after_seq=page1[-1].seq, limit=20)
    page3 = full_log.entries(after_seq=page2[-1].seq, limit=20)
    assert [e.seq for e in page1 + page2 + page3] == list(range(1, 51))
    assert full_log.entries(after_seq=50) == []


@pytest.mark.parametrize("kwargs", [{"limit": 0}, {"limit": 1001}, {"after_seq": -1}])
def test_entries_rejects_bad_paging(log: AuditLog, kwargs: dict[str, Any]) -> None:
    with pytest.raises(UserError):
        log.entries(**kwargs)


def test_failed_transaction_leaves_neither_change_nor_entry(
    store: MetaStore, log: AuditLog
) -> None:
    kept = log.record(actor="cli", action="room.init")

    class Boom(Exception):
        pass

    with pytest.raises(Boom), store.transaction() as db:
        db.execute(
            "INSERT INTO users (name, role, party, token_hash, created_at) "
            "VALUES ('ana', 'analyst', 'okala', x'00', 'now')"
        )
        log.append(db, actor="cli", action="user.add", target="ana")
        raise Boom
    con = store.connection()
    assert con.execute("SELECT count(*) FROM users").fetchone()[0] == 0
    assert log.entries() == [kept]
    assert con.execute("SELECT seq FROM audit_head").fetchone()[0] == 1
    after = log.record(actor="cli", action="user.add", target="bob")
    assert after.seq == 2
    assert after.prev_hash == kept.hash
    assert log.verify().ok


def test_append_needs_an_open_transaction(store: MetaStore, log: AuditLog) -> None:
    with pytest.raises(InternalError):
        log.append(store.connection(), actor="cli", action="user.add")


def test_key_must_be_32_bytes(store: MetaStore) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        AuditLog(store, b"short")


# -- what may go into an entry ------------------------------------------------


@pytest.mark.parametrize(
    "details",
    [
        {"token": b"\x00" * 32},
        {"blob": bytearray(b"abc")},
        {"dump": "x" * 5000},
        {"nested": {"deeper": ["ok", b"raw"]}},
        {"long_in_list": ["a", "y" * 2001]},
        {"x" * 2001: 1},
        {"nan": float("nan")},
        {"inf": float("inf")},
        {"when": object()},
        {"set": {1, 2}},
        {"bearer": "cr_" + "A" * 43},
        {"sentence": "the token was cr_" + "b" * 43 + " oops"},
    ],
    ids=lambda d: next(iter(d))[:12],
)
def test_details_that_could_leak_are_refused(log: AuditLog, details: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        log.record(actor="cli", action="query.run", details=details)
    assert log.entries() == []


def test_non_text_keys_are_refused(log: AuditLog) -> None:
    with pytest.raises(ValueError, match="key"):
        log.record(actor="cli", action="query.run", details={1: "x"})  # type: ignore[dict-item]


def test_a_string_of_exactly_the_limit_is_fine(log: AuditLog) -> None:
    log.record(actor="cli", action="query.run", details={"sql": "s" * 2000})
    assert log.verify().ok


@pytest.mark.parametrize(
    "kwargs",
    [
        {"action": "login"},
        {"action": "Auth.Login"},
        {"action": "auth..login"},
        {"action": "auth.login "},
        {"action": "auth.login\n"},
        {"outcome": "ok\n"},
        {"outcome": "OK"},
        {"outcome": ""},
        {"actor": ""},
        {"actor": "a" * 2001},
        {"target": "t" * 5000},
        {"target": "cr_" + "z" * 43},
    ],
)
def test_bad_fields_are_refused(log: AuditLog, kwargs: dict[str, str]) -> None:
    fields: dict[str, Any] = {"actor": "cli", "action": "auth.login", **kwargs}
    with pytest.raises(ValueError):
        log.record(**fields)
    assert log.entries() == []


# -- verification ----------------------------------------------------------------


def test_empty_log_verifies(log: AuditLog) -> None:
    result = log.verify()
    assert result.ok
    assert result.entries == 0
    assert result.problems == []


def test_clean_log_verifies(full_log: AuditLog) -> None:
    result = full_log.verify()
    assert result.ok, result.problems
    assert result.entries == 50
    assert result.problems == []


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("at", "2020-01-01T00:00:00+00:00"),
        ("actor", "mallory"),
        ("action", "auth.logout"),
        ("target", "elsewhere"),
        ("outcome", "failed"),
        ("details", '{"i":99}'),
        ("prev_hash", "f" * 64),
        ("hash", "0" * 64),
    ],
)
def test_an_edited_field_is_named(
    store: MetaStore, full_log: AuditLog, column: str, value: str
) -> None:
    tamper(store, (f"UPDATE audit SET {column} = ? WHERE seq = 17", (value,)))
    problems = problems_of(full_log)
    assert has(problems, "entry 17 was altered")
    assert len(problems) == 1, problems


def test_edited_details_with_same_meaning_but_extra_key_is_caught(
    store: MetaStore, full_log: AuditLog
) -> None:
    row = store.connection().execute("SELECT details FROM audit WHERE seq = 5").fetchone()[0]
    tamper(store, ("UPDATE audit SET details = ? WHERE seq = 5", (row[:-1] + ',"x":1}',)))
    assert has(problems_of(full_log), "entry 5 was altered")


def test_a_deleted_middle_entry_is_named(store: MetaStore, full_log: AuditLog) -> None:
    tamper(store, "DELETE FROM audit WHERE seq = 20")
    problems = problems_of(full_log)
    assert problems == ["entry 20 is missing"]
    assert full_log.verify().entries == 49


def test_deleted_middle_entries_are_named(store: MetaStore, full_log: AuditLog) -> None:
    tamper(store, "DELETE FROM audit WHERE seq BETWEEN 20 AND 24")
    assert problems_of(full_log) == ["entries 20–24 are missing"]


def test_a_deleted_first_entry_is_named(store: MetaStore, full_log: AuditLog) -> None:
    tamper(store, "DELETE FROM audit WHERE seq = 1")
    assert problems_of(full_log) == ["entry 1 is missing"]


def test_a_deleted_last_entry_is_named(store: MetaStore, full_log: AuditLog) -> None:
    tamper(store, "DELETE FROM audit WHERE seq = 50")
    assert problems_of(full_log) == [
        "the last entry (50) was removed (head says 50, log ends at 49)"
    ]


def test_deleted_last_two_entries_are_named(store: MetaStore, full_log: AuditLog) -> None:
    tamper(store, "DELETE FROM audit WHERE seq >= 49")
    assert problems_of(full_log) == [
        "the last 2 entries (49–50) were removed (head says 50, log ends at 48)"
    ]


def test_deleting_the_last_entries_and_moving_the_head_is_caught(
    store: MetaStore, full_log: AuditLog
) -> None:
    h48 = row_hash(store, 48)
    tamper(
        store,
        "DELETE FROM audit WHERE seq >= 49",
        ("UPDATE audit_head SET seq = 48, hash = ?", (h48,)),
    )
    assert has(problems_of(full_log), "the head record was altered")


@pytest.mark.parametrize(("a", "b"), [(20, 21), (1, 2), (49, 50), (3, 40)])
def test_swapped_entries_are_named(store: MetaStore, full_log: AuditLog, a: int, b: int) -> None:
    tamper(
        store,
        f"UPDATE audit SET seq = -1 WHERE seq = {a}",
        f"UPDATE audit SET seq = {a} WHERE seq = {b}",
        f"UPDATE audit SET seq = {b} WHERE seq = -1",
    )
    problems = problems_of(full_log)
    for seq in (a, b):
        assert has(problems, f"at {seq}") or has(problems, f"entry {seq} was altered"), problems
    if b - a <= 2:
        assert has(problems, f"entries out of order at {a} (entry {b} is stored as {a})")
        assert has(problems, f"entries out of order at {b} (entry {a} is stored as {b})")


def test_swapped_contents_with_seq_kept_are_caught(store: MetaStore, full_log: AuditLog) -> None:
    """Moving every column but seq is a reorder too; the seq inside the MAC gives it away."""
    cols = "at, actor, action, target, outcome, details, prev_hash, hash"
    tamper(
        store,
        f"CREATE TEMP TABLE t AS SELECT seq, {cols} FROM audit WHERE seq IN (10, 11)",
        *[
            f"UPDATE audit SET {c} = (SELECT {c} FROM t WHERE t.seq = 21 - audit.seq) "
            "WHERE seq IN (10, 11)"
            for c in cols.split(", ")
        ],
    )
    problems = problems_of(full_log)
    assert has(problems, "entries out of order at 10")
    assert has(problems, "entries out of order at 11")


def test_a_deletion_hidden_by_renumbering_is_caught(store: MetaStore, full_log: AuditLog) -> None:
    tamper(
        store,
        "DELETE FROM audit WHERE seq = 20",
        *[f"UPDATE audit SET seq = {s - 1} WHERE seq = {s}" for s in range(21, 51)],
    )
    assert problems_of(full_log) == [
        "entries out of order at 20–49 (entries 21–50 are stored as 20–49)",
        "the last entry (50) was removed (head says 50, log ends at 49)",
    ]


def forged_hash(prev: str) -> str:
    return hmac.new(OTHER_KEY, prev.encode() + b"forged", hashlib.sha256).hexdigest()


def test_a_forged_entry_appended_without_the_key_is_named(
    store: MetaStore, full_log: AuditLog
) -> None:
    h50 = row_hash(store, 50)
    tamper(
        store,
        (
            "INSERT INTO audit VALUES (51, '2030-01-01T00:00:00+00:00', 'mallory', "
            "'policy.approve', 'v9', 'ok', '{}', ?, ?)",
            (h50, forged_hash(h50)),
        ),
    )
    problems = problems_of(full_log)
    assert has(problems, "entry 51 was altered (or forged")
    assert has(problems, "entry 51 came after the head (head says 50, log ends at 51)")


def test_a_forged_entry_with_a_forged_head_is_named(store: MetaStore, full_log: AuditLog) -> None:
    h50 = row_hash(store, 50)
    forged = forged_hash(h50)
    tamper(
        store,
        (
            "INSERT INTO audit VALUES (51, '2030-01-01T00:00:00+00:00', 'mallory', "
            "'policy.approve', 'v9', 'ok', '{}', ?, ?)",
            (h50, forged),
        ),
        ("UPDATE audit_head SET seq = 51, hash = ?, mac = ?", (forged, forged_hash(forged))),
    )
    problems = problems_of(full_log)
    assert has(problems, "entry 51 was altered (or forged")
    assert has(problems, "the head record was altered")


def test_a_forged_entry_replacing_a_deleted_one_is_named(
    store: MetaStore, full_log: AuditLog
) -> None:
    h29 = row_hash(store, 29)
    tamper(
        store,
        "DELETE FROM audit WHERE seq = 30",
        (
            "INSERT INTO audit VALUES (30, '2030-01-01T00:00:00+00:00', 'mallory', "
            "'query.run', NULL, 'ok', '{}', ?, ?)",
            (h29, forged_hash(h29)),
        ),
    )
    problems = problems_of(full_log)
    assert has(problems, "entry 30 was altered (or forged")
    assert len(problems) == 1, problems


@pytest.mark.parametrize(
    ("statement", "name"),
    [
        ("UPDATE audit_head SET seq = 49", "seq"),
        ("UPDATE audit_head SET hash = '" + "a" * 64 + "'", "hash"),
        ("UPDATE audit_head SET mac = '" + "b" * 64 + "'", "mac"),
    ],
)
def test_an_edited_head_is_named(
    store: MetaStore, full_log: AuditLog, statement: str, name: str
) -> None:
    tamper(store, statement)
    assert problems_of(full_log)[0].startswith("the head record was altered"), name


def test_a_deleted_head_is_named(store: MetaStore, full_log: AuditLog) -> None:
    tamper(store, "DELETE FROM audit_head")
    assert problems_of(full_log) == ["the head record is missing (the log has 50 entries)"]


def test_the_wrong_key_flags_every_entry(store: MetaStore, full_log: AuditLog) -> None:
    problems = problems_of(AuditLog(store, OTHER_KEY))
    assert problems[0].startswith("no entry verifies")
    for seq in range(1, 51):
        assert has(problems, f"entry {seq} was altered"), seq
    assert has(problems, "the head record was altered")


def test_many_problems_are_capped(store: MetaStore, log: AuditLog) -> None:
    with store.transaction() as db:
        for i in range(1100):
            log.append(db, actor="cli", action="query.run", details={"i": i})
    problems = problems_of(AuditLog(store, OTHER_KEY))
    assert len(problems) == 1001
    assert problems[-1].startswith("… and ")


# -- refusing to write on top of a tampered log ------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        lambda store: tamper(store, "DELETE FROM audit WHERE seq = 50"),
        lambda store: tamper(store, "DELETE FROM audit_head"),
        lambda store: tamper(store, "UPDATE audit_head SET seq = 49"),
        lambda store: tamper(store, "DELETE FROM audit"),
    ],
    ids=["last-entry-deleted", "head-deleted", "head-edited", "log-emptied"],
)
def test_append_refuses_to_reseal_a_tampered_log(
    store: MetaStore, full_log: AuditLog, damage: Callable[[MetaStore], None]
) -> None:
    damage(store)
    with pytest.raises(AuditChainBroken, match="audit chain broken at entry"):
        full_log.record(actor="cli", action="query.run")
    assert not full_log.verify().ok


def test_append_refuses_under_the_wrong_key(store: MetaStore, full_log: AuditLog) -> None:
    with pytest.raises(AuditChainBroken, match="audit chain broken at entry 1"):
        AuditLog(store, OTHER_KEY).record(actor="cli", action="query.run")
    assert full_log.verify().ok


# -- concurrency -----------------------------------------------------------------


def test_concurrent_records_form_one_chain(store: MetaStore, log: AuditLog) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(worker: int) -> None:
        try:
            start.wait()
            for i in range(50):
                log.record(actor=f"worker{worker}", action="query.run", details={"i": i})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = log.verify()
    assert result.ok, result.problems
    assert result.entries == 200
    entries = log.entries(limit=1000)
    assert [e.seq for e in entries] == list(range(1, 201))
    for w in range(4):
        mine = [e.details["i"] for e in entries if e.actor == f"worker{w}"]
        assert mine == list(range(50))


def test_damaged_rows_can_still_be_listed_and_verified(
    store: MetaStore, full_log: AuditLog
) -> None:
    tamper(
        store,
        "UPDATE audit SET details = 'not json' WHERE seq = 3",
        "UPDATE audit SET prev_hash = 42 WHERE seq = 4",
        "UPDATE audit_head SET mac = 7",
    )
    listed = full_log.entries(limit=1000)
    assert len(listed) == 50
    assert "unreadable" in listed[2].details
    problems = problems_of(full_log)
    assert has(problems, "entry 3 was altered")
    assert has(problems, "entry 4 was altered")
    assert has(problems, "the head record was altered")
    with pytest.raises(AuditChainBroken, match="audit chain broken at entry 3"):
        full_log.record(actor="cli", action="query.run")
