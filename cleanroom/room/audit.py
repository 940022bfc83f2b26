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

One rule for a chain that does not verify, wherever the break is: nothing more
is appended (:class:`~cleanroom.errors.AuditChainBroken`, 503) until an
operator re-anchors it (:meth:`AuditLog.reanchor`). Knowing the chain is
broken must not cost a full verification per append, so the log keeps the tip
it last verified: the first append (or :meth:`AuditLog.check` at start-up)
verifies the whole chain once; every later append checks only the head's MAC,
that the newest entry is the one the head records, and the MAC and link of each
entry written since the verified tip (normally one or two: O(1) per append).
Whatever looks wrong there (or a head that moved back) triggers a full
verification that names the break, and the break is remembered until the head
changes (a re-anchor from another process). An edit of an entry *below* the
verified tip while the room runs is found by the next full verification in
the service: at the next start, on any ``audit verify`` through it (API, web
UI), and by its periodic re-verification (setting ``audit_verify_interval``).

A re-anchor is an entry of its own (``audit.reanchor``, who and why, the
problems it acknowledged and where they are). It never rewrites or fills the
break: it takes the seq after the highest one ever used (so a cut-off stays a
gap) and chains to the newest entry still present, so ``verify`` names the
break forever; problems at the positions a valid re-anchor acknowledged no
longer stop appends, while a new break anywhere stops them again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cleanroom.contract.documents import canonical_json
from cleanroom.errors import T_, AuditChainBroken, ConflictError, InternalError, UserError
from cleanroom.i18n import N_
from cleanroom.room.store import MetaStore, now
from cleanroom.sql import quote_column

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

_COLUMNS = ", ".join(
    map(
        quote_column,
        ("seq", "at", "actor", "action", "target", "outcome", "details", "prev_hash", "hash"),
    )
)
REANCHOR = "audit.reanchor"
MAX_ACKNOWLEDGED = 200  # sentences a re-anchor entry keeps; its positions are kept as ranges

log = logging.getLogger("cleanroom.audit")


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
class Reanchored:
    """A valid ``audit.reanchor`` entry: who resumed recording after a break, and why."""

    seq: int
    at: str
    by: list[str]
    reason: str
    acknowledged: list[str]


@dataclass(frozen=True)
class Verification:
    """The verdict of :meth:`AuditLog.verify`, with one sentence per problem for humans.

    ``problems`` lists every break, acknowledged or not (a break stays visible
    forever); ``open_problems`` are those no re-anchor acknowledged: while
    there is one, nothing is appended. ``broken_at`` is the first open
    problem's entry.
    """

    ok: bool
    entries: int
    problems: list[str]
    open_problems: list[str] = field(default_factory=list)
    broken_at: int | None = None
    reanchors: list[Reanchored] = field(default_factory=list)

    @property
    def recording(self) -> bool:
        """True when appends are allowed: no break, or every break acknowledged."""
        return not self.open_problems


class AuditLog:
    """The room's audit chain inside the metadata store."""

    def __init__(self, store: MetaStore, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the audit key must be {KEY_BYTES} bytes, not {len(key)}")
        self._store = store
        self._key = key
        self._lock = threading.Lock()
        # The last (seq, hash) a verification found intact, and a known break with the
        # head/tail it was found at (a break is re-examined only once those change).
        self._verified: tuple[int, str] | None = None
        self._broken: tuple[AuditChainBroken, tuple[Any, ...]] | None = None

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
            f"INSERT INTO audit ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
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

    def record_refusal(
        self,
        *,
        actor: str,
        action: str,
        outcome: str,
        target: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry | None:
        """Record a refused request, unless the chain is broken: then log it instead.

        A refusal changes nothing, and its caller deserves the real answer (401,
        403, the rule a query broke) rather than the chain's 503; so while the
        chain is broken refusals are answered as usual and only logged.
        """
        try:
            return self.record(
                actor=actor, action=action, outcome=outcome, target=target, details=details
            )
        except AuditChainBroken as err:
            log.warning(
                "refusal not recorded: the audit chain is broken",
                extra={"action": action, "outcome": outcome, "entry": err.entry},
            )
            return None

    def _tip(self, db: sqlite3.Connection) -> tuple[int, str]:
        """The (seq, hash) to chain to, or :class:`AuditChainBroken` (see the module doc)."""
        head = db.execute("SELECT seq, hash, mac FROM audit_head WHERE id = 1").fetchone()
        last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        where = _fingerprint(head, last)
        with self._lock:
            broken, verified = self._broken, self._verified
        if broken is not None and broken[1] == where:
            raise broken[0]
        if head is None and last is None:
            return 0, GENESIS
        if broken is None and verified is not None and self._extends(db, verified, head, last):
            assert head is not None
            tip = int(head["seq"]), str(head["hash"])
            with self._lock:
                self._verified = tip
            return tip
        verification = self._verify_on(db)  # the slow path: once, or when something changed
        self._remember(verification, where, head)
        if not verification.recording:
            with self._lock:
                assert self._broken is not None
                raise self._broken[0]
        return self._tip_after(head, last)

    def _tip_after(self, head: sqlite3.Row | None, last: sqlite3.Row | None) -> tuple[int, str]:
        """Chain to the head; after a re-anchor the head is the re-anchor entry itself."""
        if head is not None:
            return int(head["seq"]), str(head["hash"])
        return (int(last["seq"]), str(last["hash"])) if last is not None else (0, GENESIS)

    def _extends(
        self,
        db: sqlite3.Connection,
        verified: tuple[int, str],
        head: sqlite3.Row | None,
        last: sqlite3.Row | None,
    ) -> bool:
        """The cheap check: the head verifies, ends the log, and links back to ``verified``."""
        if head is None or last is None:
            return False
        seq, digest = int(head["seq"]), str(head["hash"])
        if (
            not hmac.compare_digest(str(head["mac"]), self._head_mac(seq, digest))
            or int(last["seq"]) != seq
            or str(last["hash"]) != digest
            or seq < verified[0]
        ):
            return False
        anchor = db.execute("SELECT hash FROM audit WHERE seq = ?", (verified[0],)).fetchone()
        if verified[0] and (anchor is None or str(anchor["hash"]) != verified[1]):
            return False
        expected_prev = verified[1]
        newer = db.execute(
            f"SELECT {_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq",  # noqa: S608
            (verified[0],),
        )
        for row in newer:
            if not self._row_verifies(row, int(row["seq"])):
                return False
            # Consecutive, except after a re-anchor, which may skip the seqs a cut took.
            if row["prev_hash"] != expected_prev:
                return False
            expected_prev = str(row["hash"])
        return expected_prev == digest

    def _remember(
        self, verification: Verification, where: tuple[Any, ...], head: sqlite3.Row | None
    ) -> None:
        """Keep a full verification's verdict for the cheap checks that follow."""
        with self._lock:
            if verification.recording:
                self._broken = None
                self._verified = (int(head["seq"]), str(head["hash"])) if head else None
                return
            first = next(iter(verification.open_problems))
            entry = verification.broken_at or 0
            known = self._broken
            self._broken = (AuditChainBroken(entry, first), where)
            self._verified = None
        if known is None or known[0].entry != entry or known[0].reason != first:
            log.error(
                "audit chain broken: nothing more is recorded until an operator investigates",
                extra={"entry": entry, "problems": len(verification.open_problems)},
            )

    def recording(self) -> bool:
        """Whether appends are allowed as far as this process knows (no database read)."""
        with self._lock:
            return self._broken is None

    def check(self) -> Verification:
        """Verify the whole chain now and remember the verdict (start-up; periodic re-checks)."""
        return self.verify()

    def require_intact(self) -> None:
        """Refuse, before any side effect, an action that will have to be recorded.

        The same cheap check an append makes, without writing: a query or an
        upload refused here has left nothing behind (no ``running`` row, no
        charge, no spool file). The append itself still checks, under the
        write lock, for a break that happens in between.
        """
        db = self._store.connection()
        if db.in_transaction:
            self._tip(db)
            return
        db.execute("BEGIN DEFERRED")
        try:
            self._tip(db)
        finally:
            db.execute("ROLLBACK")

    def reanchor(self, *, by: list[str], reason: str) -> AuditEntry:
        """Record an operator's finding and resume recording after a break.

        Refused when nothing is broken (a re-anchor is evidence of an incident,
        not a routine). The entry takes the seq after the highest the log or
        its head ever reached, chains to the newest entry still present, and
        lists what it acknowledges; the head moves to it. The break itself is
        left exactly as found.
        """
        if not by or any(not name for name in by):
            raise UserError(T_("a re-anchor names who investigated (--by)"))
        if not reason.strip():
            raise UserError(T_("a re-anchor says what the investigation found (--reason)"))
        with self._store.transaction() as db:
            verification, positions = self._assess(db)
            if verification.recording:
                raise ConflictError(
                    T_("the audit chain has no unacknowledged break: nothing to re-anchor")
                )
            head = db.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
            last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq = max(int(head["seq"]) if head else 0, int(last["seq"]) if last else 0) + 1
            prev_hash = str(last["hash"]) if last else GENESIS
            details = _clean_details(
                {
                    "reason": reason.strip(),
                    "by": list(by),
                    "broken_at": verification.broken_at,
                    "acknowledged": verification.open_problems[:MAX_ACKNOWLEDGED],
                    "positions": _ranges(positions),
                    "resumes_after": int(last["seq"]) if last else 0,
                }
            )
            at = now()
            actor = by[0]
            digest = self._entry_mac(prev_hash, seq, at, actor, REANCHOR, "audit", "ok", details)
            db.execute(
                f"INSERT INTO audit ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                (
                    seq,
                    at,
                    actor,
                    REANCHOR,
                    "audit",
                    "ok",
                    canonical_json(details).decode(),
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
        with self._lock:
            self._broken, self._verified = None, (seq, digest)
        log.warning(
            "audit chain re-anchored: recording resumes",
            extra={"entry": seq, "broken_at": verification.broken_at, "by": len(by)},
        )
        return AuditEntry(seq, at, actor, REANCHOR, "audit", "ok", details, prev_hash, digest)

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
            raise UserError(T_("limit must be between 1 and %(max_limit)s", max_limit=MAX_LIMIT))
        if after_seq < 0:
            raise UserError(T_("after_seq must not be negative"))
        where = ["seq > ?"]
        params: list[Any] = [after_seq]
        for column, value in (("actor", actor), ("action", action), ("outcome", outcome)):
            if value is not None:
                where.append(f"{quote_column(column)} = ?")
                params.append(value)
        rows = (
            self._store.connection()
            .execute(
                f"SELECT {_COLUMNS} FROM audit WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",  # noqa: S608
                [*params, limit],
            )
            .fetchall()
        )
        return [_entry(row) for row in rows]

    def verify(self) -> Verification:
        """Check every link, the head and the key; describe each problem in a sentence.

        Reads one consistent snapshot without taking the write lock, so the room
        keeps working while a long log is checked. Streams the rows: only those
        that fail are held in memory. The verdict is remembered: a break found
        here stops appends at once, as one found by an append would.
        """
        with self._snapshot() as db:
            verification, _ = self._assess(db)
            head = db.execute("SELECT seq, hash, mac FROM audit_head WHERE id = 1").fetchone()
            last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        self._remember(verification, _fingerprint(head, last), head)
        return verification

    def _verify_on(self, db: sqlite3.Connection) -> Verification:
        return self._assess(db)[0]

    def _assess(self, db: sqlite3.Connection) -> tuple[Verification, list[int]]:
        """The verification on ``db``'s snapshot, and the positions of its open problems."""
        found: list[tuple[int, str]] = []
        broken: list[sqlite3.Row] = []
        reanchors: list[tuple[Reanchored, set[int]]] = []
        count = 0
        expected_seq, expected_prev = 1, GENESIS
        last_seq, last_hash = 0, GENESIS
        previous_broken = False
        for row in db.execute(f"SELECT {_COLUMNS} FROM audit ORDER BY seq"):  # noqa: S608
            count += 1
            seq = int(row["seq"])
            intact = self._row_verifies(row, seq)
            if seq > expected_seq:
                found.append((expected_seq, _missing(expected_seq, seq - 1)))
            if not intact:
                broken.append(row)
            elif seq == expected_seq and row["prev_hash"] != expected_prev and not previous_broken:
                found.append(
                    (
                        seq,
                        str(
                            T_(
                                "entry %(seq)s does not follow entry %(seq2)s",
                                seq=seq,
                                seq2=seq - 1,
                            )
                        ),
                    )
                )
            if intact and row["action"] == REANCHOR:
                reanchors.append(_reanchored(row))
            previous_broken = not intact
            expected_seq, expected_prev = max(seq + 1, expected_seq), str(row["hash"])
            last_seq, last_hash = seq, str(row["hash"])
        head = db.execute("SELECT seq, hash, mac FROM audit_head WHERE id = 1").fetchone()

        found.extend(self._describe_broken(broken))
        if broken and len(broken) == count:
            found.append(
                (0, N_("no entry verifies: the key is wrong, or the whole log was rewritten"))
            )
        found.extend(self._check_head(head, count, last_seq, last_hash))
        found.sort(key=lambda p: p[0])

        def acknowledged(position: int) -> bool:
            return any(r.seq > position and position in at for r, at in reanchors)

        still_open = [(p, sentence) for p, sentence in found if not acknowledged(p)]
        # What a re-anchor acknowledged stays a problem forever, even once the head it was
        # about has moved on: the trail of a break is never allowed to look clean.
        current = {sentence for _, sentence in found}
        for anchor, _ in reanchors:
            found.extend(
                (
                    anchor.seq,
                    str(
                        T_(
                            "%(sentence)s (acknowledged by re-anchor entry %(seq)s)",
                            sentence=sentence,
                            seq=anchor.seq,
                        )
                    ),
                )
                for sentence in anchor.acknowledged
                if sentence not in current
            )
        found.sort(key=lambda p: p[0])
        problems = _capped([sentence for _, sentence in found])
        verification = Verification(
            ok=not problems,
            entries=count,
            problems=problems,
            open_problems=_capped([sentence for _, sentence in still_open]),
            broken_at=max(still_open[0][0], 1) if still_open else None,
            reanchors=[r for r, _ in reanchors],
        )
        return verification, sorted({p for p, _ in still_open})

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
                    (
                        seq,
                        str(
                            T_(
                                "entry %(seq)s was altered (or forged: its hash does not verify)",
                                seq=seq,
                            )
                        ),
                    )
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
                sentence = str(
                    T_(
                        "entries out of order at %(seq)s (entry %(origin)s is stored as %(seq)s)",
                        seq=seq,
                        origin=origin,
                    )
                )
            else:
                sentence = str(
                    T_(
                        "entries out of order at %(seq)s–%(last)s "
                        "(entries %(origin)s–%(last_origin)s are stored as %(seq)s–%(last)s)",
                        seq=seq,
                        last=last,
                        origin=origin,
                        last_origin=last_origin,
                    )
                )
            described.append((seq, sentence))
            i = j + 1
        return described

    def _check_head(
        self, head: sqlite3.Row | None, count: int, last_seq: int, last_hash: str
    ) -> list[tuple[int, str]]:
        """Problems with the head, each at the entry it is about (the first one cut off)."""
        if head is None:
            missing = str(
                T_("the head record is missing (the log has %(count)s entries)", count=count)
            )
            return [(last_seq, missing)] if count else []
        seq, digest = int(head["seq"]), str(head["hash"])
        if not hmac.compare_digest(str(head["mac"]), self._head_mac(seq, digest)):
            return [
                (
                    last_seq,
                    str(
                        T_(
                            "the head record was altered (it says %(seq)s, the log ends at "
                            "%(last_seq)s; its MAC does not verify)",
                            seq=seq,
                            last_seq=last_seq,
                        )
                    ),
                )
            ]
        if seq > last_seq:
            removed = seq - last_seq
            if removed == 1:
                which = str(T_("the last entry (%(seq)s) was removed", seq=seq))
            else:
                which = str(
                    T_(
                        "the last %(removed)s entries (%(first)s–%(seq)s) were removed",
                        removed=removed,
                        first=last_seq + 1,
                        seq=seq,
                    )
                )
            return [
                (
                    last_seq + 1,
                    str(
                        T_(
                            "%(which)s (head says %(seq)s, log ends at %(last_seq)s)",
                            which=which,
                            seq=seq,
                            last_seq=last_seq,
                        )
                    ),
                )
            ]
        if seq < last_seq:
            extra = (
                str(T_("entry %(seq)s", seq=last_seq))
                if seq + 1 == last_seq
                else str(T_("entries %(first)s–%(last)s", first=seq + 1, last=last_seq))
            )
            return [
                (
                    seq + 1,
                    str(
                        T_(
                            "%(extra)s came after the head (head says %(seq)s, log ends at "
                            "%(last_seq)s)",
                            extra=extra,
                            seq=seq,
                            last_seq=last_seq,
                        )
                    ),
                )
            ]
        if digest != last_hash:
            return [(seq, str(T_("entry %(seq)s is not the entry the head records", seq=seq)))]
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


def _capped(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    more = str(T_("… and %(count)s more problems", count=len(problems) - MAX_PROBLEMS))
    return [*problems[:MAX_PROBLEMS], more]


def _fingerprint(head: sqlite3.Row | None, last: sqlite3.Row | None) -> tuple[Any, ...]:
    """What a known break was found at: re-examined only once the head or the tail moves."""
    return (
        tuple(head) if head is not None else None,
        tuple(last) if last is not None else None,
    )


def _ranges(positions: list[int]) -> list[list[int]]:
    """[1, 2, 3, 7] -> [[1, 3], [7, 7]]: a re-anchor's positions, compact."""
    ranges: list[list[int]] = []
    for position in sorted(set(positions)):
        if ranges and position == ranges[-1][1] + 1:
            ranges[-1][1] = position
        else:
            ranges.append([position, position])
    return ranges[:MAX_LIMIT]


def _reanchored(row: sqlite3.Row) -> tuple[Reanchored, set[int]]:
    """A verified re-anchor entry and the positions it acknowledged."""
    details = json.loads(row["details"])
    at: set[int] = set()
    for pair in details.get("positions", []):
        first, last = int(pair[0]), int(pair[1])
        at.update(range(first, last + 1))
    entry = Reanchored(
        seq=int(row["seq"]),
        at=str(row["at"]),
        by=[str(name) for name in details.get("by", [])],
        reason=str(details.get("reason", "")),
        acknowledged=[str(p) for p in details.get("acknowledged", [])],
    )
    return entry, at


def _missing(first: int, last: int) -> str:
    if first == last:
        return str(T_("entry %(first)s is missing", first=first))
    return str(T_("entries %(first)s–%(last)s are missing", first=first, last=last))


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
