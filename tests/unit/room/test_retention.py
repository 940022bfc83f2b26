"""Retention's rule: when a generation's data expires, and how a policy diff reads a change."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from cleanroom import clock
from cleanroom.errors import DataExpired
from cleanroom.room import generations
from cleanroom.room.generations import MatchRecord
from cleanroom.room.policy.retention import RetentionPolicy
from cleanroom.room.retention import refuse_expired
from cleanroom.room.store import MetaStore
from tests.unit.room.test_policy_diff import _set, changed

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("days", [0, -1, 36_501])
def test_retention_days_are_validated(days: int) -> None:
    with pytest.raises(ValidationError):
        RetentionPolicy(dataset_days=days)
    with pytest.raises(ValidationError):
        RetentionPolicy(generation_days=days)


def test_unset_retention_keeps_everything() -> None:
    kept = RetentionPolicy()
    assert not kept.active
    assert kept.dataset_expiry(T0) is None and kept.generation_expiry(T0) is None


@pytest.mark.parametrize(
    ("before", "after", "privacy"),
    [
        (None, 30, "tightens"),  # from "kept until replaced" to 30 days
        (30, 90, "loosens"),
        (90, 30, "tightens"),
        (30, None, "loosens"),  # removing the limit keeps data for ever
    ],
)
@pytest.mark.parametrize("field", ["dataset_days", "generation_days"])
def test_a_longer_retention_loosens_a_shorter_one_tightens(
    field: str, before: int | None, after: int | None, privacy: str
) -> None:
    def mutate(doc: dict[str, Any]) -> None:
        if before is not None:
            doc.setdefault("retention", {})[field] = before

    def base_then(doc: dict[str, Any]) -> None:
        mutate(doc)
        _set(f"retention/{field}", after)(doc)

    from cleanroom.room.policy import parse_policy
    from cleanroom.room.policy.diff import diff_policies
    from tests.unit.room.test_policy_diff import base

    old, new = base(), base()
    mutate(old)
    base_then(new)
    changes = diff_policies(parse_policy(old, "old"), parse_policy(new, "new"))
    assert [(c.path, c.privacy) for c in changes] == [(f"retention.{field}", privacy)]
    if None in (before, after):
        assert "unlimited" in changes[0].reason


def test_restating_the_default_is_no_change() -> None:
    assert changed(_set("retention", {"dataset_days": None})) == []


def _store(tmp: Path) -> MetaStore:
    return MetaStore(tmp / "meta.sqlite")


def _add(
    store: MetaStore, uploaded: list[datetime], finished: datetime, status: str = "live"
) -> None:
    with store.transaction() as tx:
        for i, at in enumerate(uploaded):
            tx.execute(
                "INSERT INTO datasets (party, dataset, version, bundle_id, table_name, rows, "
                "columns, uploaded_by, uploaded_at, status) VALUES (?, 'd', 1, ?, ?, 1, '{}', "
                "'u', ?, 'live')",
                (f"p{i}", f"b{i}", f"d_p{i}__d__v1", clock.stamp(at)),
            )
        tx.execute(
            "INSERT INTO matches (started_at, finished_at, status, inputs, tables) "
            "VALUES (?, ?, ?, ?, '{}')",
            (
                clock.stamp(finished),
                clock.stamp(finished),
                status,
                json.dumps({f"p{i}.d": 1 for i in range(len(uploaded))}),
            ),
        )


def _live(store: MetaStore) -> MatchRecord | None:
    return generations.live(store.connection())


@given(
    uploads=st.lists(st.integers(0, 400), min_size=1, max_size=4),
    match_after=st.integers(0, 100),
    dataset_days=st.one_of(st.none(), st.integers(1, 200)),
    generation_days=st.one_of(st.none(), st.integers(1, 200)),
    asked_after=st.integers(0, 900),
)
def test_a_generation_is_refused_exactly_from_its_first_deadline(
    tmp_path_factory: pytest.TempPathFactory,
    uploads: list[int],
    match_after: int,
    dataset_days: int | None,
    generation_days: int | None,
    asked_after: int,
) -> None:
    """Refused iff now ≥ min(its match + generation_days, each input's upload + dataset_days)."""
    store = _store(tmp_path_factory.mktemp("retention"))
    uploaded = [T0 + timedelta(hours=h) for h in uploads]
    finished = max(uploaded) + timedelta(hours=match_after)
    _add(store, uploaded, finished)
    retention = RetentionPolicy(dataset_days=dataset_days, generation_days=generation_days)
    now = T0 + timedelta(hours=asked_after)
    deadlines = []
    if generation_days is not None:
        deadlines.append(finished + timedelta(days=generation_days))
    if dataset_days is not None:
        deadlines += [at + timedelta(days=dataset_days) for at in uploaded]
    due = bool(deadlines) and now >= min(deadlines)
    with clock.use(clock.SetClock(now)):
        if due:
            with pytest.raises(DataExpired) as refused:
                refuse_expired(store.connection(), _live(store), retention)
            assert refused.value.status == 410 and refused.value.code == "data_expired"
            assert refused.value.details["generation"] == 1
            assert refused.value.expired_at == clock.stamp(min(deadlines))
        else:
            refuse_expired(store.connection(), _live(store), retention)
    store.close()


def test_without_a_live_generation_an_expired_one_is_named(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _add(store, [T0], T0, status="expired")
    with store.transaction() as tx:
        tx.execute("UPDATE matches SET expired_at = ?", (clock.stamp(T0),))
    with pytest.raises(DataExpired, match="generation 1 expired at 2026-03-01T12:00:00"):
        refuse_expired(store.connection(), None, RetentionPolicy())
    store.close()


def test_before_any_match_nothing_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    refuse_expired(store.connection(), None, RetentionPolicy(dataset_days=1))
    store.close()
