"""Match-key rotation: which key ids the room accepts, and retiring the old key.

The group's match key keys every party's tokens, so a leaked key lets whoever
holds it test guesses against tokens; the remedy is a new key that every
party re-prepares its data with (the ceremony is in SECURITY.md). Tokens
made under two keys never join, so the room must never match them together:
a match that would is refused, naming the parties still on the old key,
rather than publishing a generation in which those parties' customers
silently stop matching anyone.

The policy says which keys are in force: ``match_key_id``, and while a
rotation runs, ``match_key_rotation.to_key_id`` from its ``cutover`` on.
Once no party's live data (dataset or suppression list) is left under a key
other than the one the room moves to, that key is *retired*: recorded in the
store and the audit chain, its bundles refused from then on, and its stored
versions made unusable (their tables dropped, suppression lists marked
``retired``). The room never holds a match key; it compares key ids only.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from cleanroom import clock
from cleanroom.errors import T_, BundleError, MixedMatchKeysError
from cleanroom.room import datasets, suppression
from cleanroom.room.policy.models import CollaborationPolicy
from cleanroom.room.state import Room
from cleanroom.room.store import now

log = logging.getLogger("cleanroom.match_keys")


def retired_keys(db: sqlite3.Connection) -> set[str]:
    """Key ids retired in this room (bundles under them are refused for good)."""
    return {row[0] for row in db.execute("SELECT key_id FROM retired_match_keys")}


def accepted_keys(policy: CollaborationPolicy, retired: set[str], at: datetime) -> list[str]:
    """The key ids a bundle may carry at ``at``: the policy's, and a rotation's after cut-over."""
    keys = [policy.match_key_id]
    rotation = policy.match_key_rotation
    if rotation is not None and at >= rotation.cutover:
        keys.append(rotation.to_key_id)
    return [k for k in keys if k not in retired]


def target_key(policy: CollaborationPolicy, at: datetime) -> str:
    """The key the room is moving to (or stays on): a rotation's new key once cut over."""
    rotation = policy.match_key_rotation
    if rotation is not None and at >= rotation.cutover:
        return rotation.to_key_id
    return policy.match_key_id


def check_bundle_key(
    name: str, key_id: object, policy: CollaborationPolicy, db: sqlite3.Connection
) -> str:
    """The bundle's key id if the room accepts it now; else a refusal that says why."""
    at = clock.now()
    retired = retired_keys(db)
    if isinstance(key_id, str) and key_id in accepted_keys(policy, retired, at):
        return key_id
    if key_id in retired:
        raise BundleError(
            T_(
                "%(name)s: made with match key %(key_id)s, which this room retired after a "
                "rotation; prepare the export again with the key %(target)s",
                name=name,
                key_id=key_id,
                target=target_key(policy, at),
            )
        )
    rotation = policy.match_key_rotation
    if rotation is not None and key_id == rotation.to_key_id:
        raise BundleError(
            T_(
                "%(name)s: made with the new match key %(key_id)s, which this room accepts "
                "from %(cutover)s (the rotation's cut-over)",
                name=name,
                key_id=key_id,
                cutover=clock.stamp(rotation.cutover),
            )
        )
    raise BundleError(
        T_(
            "%(name)s: made with another match key (%(key_id)s; the collaboration uses "
            "%(accepted)s)",
            name=name,
            key_id=str(key_id),
            accepted=", ".join(accepted_keys(policy, retired, at)),
        )
    )


@dataclass(frozen=True)
class Holding:
    """One live input of a match and the key its tokens were made under."""

    party: str
    what: str  # "orders", or "suppression list"
    key_id: str


def check_one_key(holdings: list[Holding], policy: CollaborationPolicy) -> str | None:
    """The one key id every live input is under; refuse a mix, naming who is behind.

    None when there is nothing to match. A single key that is no longer
    accepted (the policy moved on without a rotation) is refused the same way.
    """
    if not holdings:
        return None
    at = clock.now()
    target = target_key(policy, at)
    keys = {h.key_id for h in holdings}
    if len(keys) == 1 and (keys & set(accepted_keys(policy, set(), at))):
        return keys.pop()
    behind = sorted({h.party for h in holdings if h.key_id != target})
    what = ", ".join(
        f"{h.party} ({h.what}, key {h.key_id})"
        for h in sorted(holdings, key=lambda h: (h.party, h.what))
        if h.key_id != target
    )
    raise MixedMatchKeysError(
        T_(
            "match refused: the live data is under more than one match key, whose tokens "
            "never join; still on an old key: %(what)s. Those parties prepare and upload "
            "again with the match key %(target)s, then match",
            what=what,
            target=target,
        ),
        key_id=target,
        parties=behind,
    )


def live_holdings(room: Room) -> list[Holding]:
    """Every live dataset and suppression list, with the key its tokens were made under."""
    policy = room.active_policy().policy
    db = room.store.connection()
    return [
        Holding(d.party, d.dataset, d.match_key_id or policy.match_key_id)
        for d in datasets.live(db)
    ] + [Holding(s.party, "suppression list", s.match_key_id) for s in suppression.live_lists(db)]


def retire_quietly(room: Room, actor: str) -> list[str]:
    """:func:`retire_finished` after an upload that already succeeded: a failure waits.

    The upload is live and answered; a retirement that fails now (a locked
    store, a broken audit chain) is retried after the next upload, and until
    then the old key is merely still accepted.
    """
    try:
        return retire_finished(room, actor, live_holdings(room))
    except Exception as err:
        log.warning("match key retirement postponed", extra={"error": type(err).__name__})
        return []


def retire_finished(room: Room, actor: str, live: list[Holding]) -> list[str]:
    """Retire every old key no live input is under any more; the key ids retired.

    Called after each upload (the moment the last party re-prepared). Old
    dataset versions under a retired key lost their tables when they were
    replaced; any still present is dropped here (or when the match reading
    it ends), and replaced suppression lists are marked ``retired``.
    """
    policy = room.active_policy().policy
    at = clock.now()
    target = target_key(policy, at)
    db = room.store.connection()
    retired = retired_keys(db)
    in_use = {h.key_id for h in live}
    stored = {d.match_key_id or policy.match_key_id for d in datasets.every(db)}
    stored |= {s.match_key_id for s in suppression.every(db)}
    if policy.match_key_rotation is not None and target != policy.match_key_id:
        stored.add(policy.match_key_id)  # the old key, even before anything was stored
    done = sorted(stored - retired - in_use - {target})
    dropped: list[str] = []
    for key_id in done:
        with room.store.transaction() as tx:
            tables = [
                d.table_name
                for d in datasets.every(tx)
                if (d.match_key_id or policy.match_key_id) == key_id
            ] + [s.table_name for s in suppression.every(tx) if s.match_key_id == key_id]
            suppression.retire_key(tx, key_id)
            tx.execute(
                "INSERT INTO retired_match_keys (key_id, retired_at, retired_by) VALUES (?,?,?)",
                (key_id, now(), actor),
            )
            room.audit.append(
                tx,
                actor=actor,
                action="match_key.retired",
                target=key_id,
                details={"to_key_id": target, "versions": len(tables)},
            )
        present = room.wh.tables()
        for table in tables:
            if table in present:
                room.drop_when_unread(table)
                dropped.append(table)
    return done
