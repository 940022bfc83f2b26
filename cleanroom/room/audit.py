"""The audit trail: append-only, hash-chained, keyed.

Compliance must be able to trust that the trail of uploads, matches, queries,
policy changes and logins is complete and unedited, even though the trail
lives in a SQLite file that the room operator can open with any tool. So each
entry carries ``hash = HMAC-SHA256(key, prev_hash ‖ canonical entry)``: editing
a field, deleting or reordering rows breaks the chain, and forging a
replacement needs the room's key, which is not in the database. A chain alone
cannot show that its *newest* entries were cut off, so a one-row ``audit_head``
(last seq, its hash and a MAC over both) moves in the same transaction as every
append.

What this does not catch: someone holding the key, and a wipe of every entry
together with the head (an empty log is indistinguishable from a new one
without an anchor outside the database).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cleanroom.bundle import canonical_json
from cleanroom.errors import InternalError, UserError
from cleanroom.room.store import MetaStore, now

GENESIS = "0" * 64
KEY_BYTES = 32
MAX_STRING = 2_000
MAX_DEPTH = 16
MAX_DETAILS_BYTES = 64 * 1024
MAX_LIMIT = 1_000
MAX_PROBLEMS = 1_000
# A displaced row is found by re-checking its MAC under the seqs it may have
# come from; past this many broken rows (a wrong key, a rewritten log) that
# search is quadratic and pointless, so broken rows are just called altered.
MAX_REORDER_SEARCH = 256

ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
OUTCOME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# The shape of a room bearer token (see cleanroom.room.auth): refused anywhere
# in an entry, so a careless caller cannot turn the trail into a token store.
_BEARER_TOKEN = re.compile(r"cr_[A-Za-z0-9_-]{43}")

_COLUMNS = "seq, at, actor, action, target, outcome, details, prev_hash, hash"


@dataclass(frozen=True)
class AuditEntry:
    """One audited event, as stored."""

    seq: int
    at: str
    actor: str
    action: str
    target: str | None
    outcome: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Verification:
    """The verdict of :meth:`AuditLog.verify`, with one sentence per problem for humans."""

    ok: bool
    entries: int
    problems: list[str]


class AuditLog:
    """The room's audit chain inside the metadata store."""

    def __init__(self, store: MetaStore, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the audit key must be {KEY_BYTES} bytes, not {len(key)}")
        self._store = store
        self._key = key

    # -- writing -----------------------------------------------------------

    def append(
        self,
        db: sqlite3.Connection,
        *,
        actor: str,
        action: str,
        outcome: str = "ok",
        target: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Add an entry inside the caller's open transaction.

        Sharing the transaction is the point: the audited change and its entry
        commit together or not at all, so the trail never claims something that
        did not happen nor misses something that did. Refuses (and so rolls the
        caller back) when the log no longer matches its head: carrying on would
        re-seal a truncated or edited chain and erase the evidence.
        """
        if not db.in_transaction:
            raise InternalError("audit append outside a transaction")
        _check_text("actor", actor, allow_empty=False)
        if target is not None:
            _check_text("target", target, allow_empty=False)
        if not ACTION.fullmatch(action) or len(action) > 64:
            raise ValueError(
                f"audit action must be a short dotted name like 'user.add': {action!r}"
            )
        if not OUTCOME.fullmatch(outcome):
            raise ValueError(f"audit outcome must be a short lower-case word: {outcome!r}")
        clean = _clean_details(details or {})
        if len(canonical_json(clean)) > MAX_DETAILS_BYTES:
            raise ValueError(f"audit details over {MAX_DETAILS_BYTES} bytes")

        seq, prev_hash = self._tip(db)
        seq += 1
        at = now()
        digest = self._entry_mac(prev_hash, seq, at, actor, action, target, outcome, clean)
        db.execute(
            f"INSERT INTO audit ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                seq,
                at,
                actor,
                action,
                target,
                outcome,
                canonical_json(clean).decode(),
                prev_hash,
                digest,
            ),
        )
        db.execute(
            "INSERT INTO audit_head (id, seq, hash, mac) VALUES (1, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
            "mac = excluded.mac",
            (seq, digest, self._head_mac(seq, digest)),
        )
        return AuditEntry(seq, at, actor, action, target, outcome, clean, prev_hash, digest)

    def record(
        self,
        *,
        actor: str,
        action: str,
        outcome: str = "ok",
        target: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Add an entry in a transaction of its own, for events that change nothing else."""
        with self._store.transaction() as db:
            return self.append(
                db, actor=actor, action=action, outcome=outcome, target=target, details=details
            )

    def _tip(self, db: sqlite3.Connection) -> tuple[int, str]:
        head = db.execute("SELECT seq, hash, mac FROM audit_head WHERE id = 1").fetchone()
        last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        if head is None and last is None:
            return 0, GENESIS
        if head is None:
            reason = "its head record is missing"
        elif not hmac.compare_digest(
            str(head["mac"]), self._head_mac(head["seq"], str(head["hash"]))
        ):
            reason = "its head record does not verify (edited, or the room key changed)"
        elif last is None or last["seq"] != head["seq"] or last["hash"] != head["hash"]:
            reason = "its newest entry is not the one the head records"
        else:
            return int(head["seq"]), str(head["hash"])
        raise InternalError(
            f"the audit log has been tampered with: {reason}; nothing more can be recorded "
            "until an operator investigates (run the audit verification)"
        )

    # -- reading -----------------------------------------------------------

    def entries(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Entries oldest first, filtered; page with ``after_seq`` = the last seq seen."""
        if not 1 <= limit <= MAX_LIMIT:
            raise UserError(f"limit must be between 1 and {MAX_LIMIT}")
        if after_seq < 0:
            raise UserError("after_seq must not be negative")
        where = ["seq > ?"]
        params: list[Any] = [after_seq]
        for column, value in (("actor", actor), ("action", action), ("outcome", outcome)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        rows = (
            self._store.connection()
            .execute(
                f"SELECT {_COLUMNS} FROM audit WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
                [*params, limit],
            )
            .fetchall()
        )
        return [_entry(row) for row in rows]

    def verify(self) -> Verification:
        """Check every link, the head and the key; describe each problem in a sentence.

        Reads one consistent snapshot without taking the write lock, so the room
        keeps working while a long log is checked. Streams the rows: only those
        that fail are held in memory.
        """
        found: list[tuple[int, str]] = []
        broken: list[sqlite3.Row] = []
        count = 0
        with self._snapshot() as db:
            expected_seq, expected_prev = 1, GENESIS
            last_seq, last_hash = 0, GENESIS
            previous_broken = False
            for row in db.execute(f"SELECT {_COLUMNS} FROM audit ORDER BY seq"):
                count += 1
                seq = int(row["seq"])
                intact = self._row_verifies(row, seq)
                if seq > expected_seq:
                    found.append((expected_seq, _missing(expected_seq, seq - 1)))
                if not intact:
                    broken.append(row)
                elif (
                    seq == expected_seq
                    and row["prev_hash"] != expected_prev
                    and not previous_broken
                ):
                    found.append((seq, f"entry {seq} does not follow entry {seq - 1}"))
                previous_broken = not intact
                expected_seq, expected_prev = max(seq + 1, expected_seq), str(row["hash"])
                last_seq, last_hash = seq, str(row["hash"])
            head = db.execute("SELECT seq, hash, mac FROM audit_head WHERE id = 1").fetchone()

        found.extend(self._describe_broken(broken))
        problems = [sentence for _, sentence in sorted(found, key=lambda p: p[0])]
        if broken and len(broken) == count:
            problems.insert(
                0, "no entry verifies: the key is wrong, or the whole log was rewritten"
            )
        problems.extend(self._check_head(head, count, last_seq, last_hash))
        if len(problems) > MAX_PROBLEMS:
            more = len(problems) - MAX_PROBLEMS
            problems = [*problems[:MAX_PROBLEMS], f"… and {more} more problems"]
        return Verification(ok=not problems, entries=count, problems=problems)

    def _describe_broken(self, broken: list[sqlite3.Row]) -> list[tuple[int, str]]:
        """Tell a moved entry from an edited one: a moved entry verifies under its old seq."""
        candidates: list[int] = []
        if len(broken) <= MAX_REORDER_SEARCH:
            near = {s for row in broken for s in range(int(row["seq"]) - 2, int(row["seq"]) + 3)}
            candidates = sorted(s for s in near if s >= 1)
        origins: list[tuple[int, int | None]] = []
        for row in broken:
            seq = int(row["seq"])
            origin = next((s for s in candidates if s != seq and self._row_verifies(row, s)), None)
            origins.append((seq, origin))
        # A block shifted by the same distance (a renumbering) is one sentence, not one per row.
        described: list[tuple[int, str]] = []
        i = 0
        while i < len(origins):
            seq, origin = origins[i]
            if origin is None:
                described.append(
                    (seq, f"entry {seq} was altered (or forged: its hash does not verify)")
                )
                i += 1
                continue
            j = i
            while (
                j + 1 < len(origins)
                and origins[j + 1][0] == origins[j][0] + 1
                and origins[j + 1][1] == origins[j][0] + 1 + (origin - seq)
            ):
                j += 1
            last, last_origin = origins[j]
            if j == i:
                sentence = f"entries out of order at {seq} (entry {origin} is stored as {seq})"
            else:
                sentence = (
                    f"entries out of order at {seq}–{last} "
                    f"(entries {origin}–{last_origin} are stored as {seq}–{last})"
                )
            described.append((seq, sentence))
            i = j + 1
        return described

    def _check_head(
        self, head: sqlite3.Row | None, count: int, last_seq: int, last_hash: str
    ) -> list[str]:
        if head is None:
            return [f"the head record is missing (the log has {count} entries)"] if count else []
        seq, digest = int(head["seq"]), str(head["hash"])
        if not hmac.compare_digest(str(head["mac"]), self._head_mac(seq, digest)):
            return [
                f"the head record was altered (it says {seq}, the log ends at {last_seq}; "
                "its MAC does not verify)"
            ]
        if seq > last_seq:
            removed = seq - last_seq
            if removed == 1:
                which = f"the last entry ({seq}) was removed"
            else:
                which = f"the last {removed} entries ({last_seq + 1}–{seq}) were removed"
            return [f"{which} (head says {seq}, log ends at {last_seq})"]
        if seq < last_seq:
            extra = f"entry {last_seq}" if seq + 1 == last_seq else f"entries {seq + 1}–{last_seq}"
            return [f"{extra} came after the head (head says {seq}, log ends at {last_seq})"]
        if digest != last_hash:
            return [f"entry {seq} is not the entry the head records"]
        return []

    # -- internals ---------------------------------------------------------

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        db = self._store.connection()
        if db.in_transaction:
            raise InternalError("audit verification inside an open transaction")
        db.execute("BEGIN DEFERRED")
        try:
            yield db
        finally:
            db.execute("ROLLBACK")

    def _row_verifies(self, row: sqlite3.Row, seq: int) -> bool:
        try:
            details = json.loads(row["details"])
        except (TypeError, ValueError):
            return False
        digest = self._entry_mac(
            str(row["prev_hash"]),
            seq,
            row["at"],
            row["actor"],
            row["action"],
            row["target"],
            row["outcome"],
            details,
        )
        return hmac.compare_digest(digest, str(row["hash"]))

    def _entry_mac(
        self,
        prev_hash: str,
        seq: int,
        at: Any,
        actor: Any,
        action: Any,
        target: Any,
        outcome: Any,
        details: Any,
    ) -> str:
        body = canonical_json(
            {
                "seq": seq,
                "at": at,
                "actor": actor,
                "action": action,
                "target": target,
                "outcome": outcome,
                "details": details,
            }
        )
        return hmac.new(self._key, prev_hash.encode() + body, hashlib.sha256).hexdigest()

    def _head_mac(self, seq: int, digest: str) -> str:
        message = b"head\x00" + str(seq).encode() + b"\x00" + digest.encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


def _missing(first: int, last: int) -> str:
    if first == last:
        return f"entry {first} is missing"
    return f"entries {first}–{last} are missing"


def _entry(row: sqlite3.Row) -> AuditEntry:
    try:
        details = json.loads(row["details"])
    except (TypeError, ValueError):
        # Listing must still work on a damaged log, so the damage can be looked at.
        details = {"unreadable": "these details are not valid JSON; verify the log"}
    return AuditEntry(
        seq=int(row["seq"]),
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        outcome=row["outcome"],
        details=details,
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def _check_text(what: str, value: str, *, allow_empty: bool = True) -> None:
    if not isinstance(value, str):
        raise ValueError(f"audit {what} must be text, not {type(value).__name__}")
    if not value and not allow_empty:
        raise ValueError(f"audit {what} must not be empty")
    if len(value) > MAX_STRING:
        raise ValueError(f"audit {what} is over {MAX_STRING} characters")
    if _BEARER_TOKEN.search(value):
        raise ValueError(f"audit {what} contains something shaped like a bearer token")


def _clean_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """Plain JSON data only, so an entry reads back exactly as it was MACed.

    Bytes and long strings are refused rather than truncated: they are how
    tokens, identifiers and payloads end up in logs, and the trail must stay a
    record of *what happened*, never a copy of the data.
    """
    if not isinstance(details, Mapping):
        raise ValueError("audit details must be a mapping")
    cleaned = _clean(details, "details", 0)
    assert isinstance(cleaned, dict)
    return cleaned


def _clean(value: Any, where: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ValueError(f"audit {where} nested deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"audit {where} is not a finite number")
        return float(value)
    if isinstance(value, str):
        _check_text(where, value)
        return str(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"audit {where} has a non-text key ({type(key).__name__})")
            _check_text(f"{where} key", key)
            out[str(key)] = _clean(item, f"{where}.{key}", depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_clean(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise ValueError(
        f"audit {where} must be plain JSON data (text, number, bool, null, list, mapping), "
        f"not {type(value).__name__}"
    )
