"""The ``matches`` table's owner: a generation's life from running to expired."""

from __future__ import annotations

from pathlib import Path

import pytest

from cleanroom.room import generations
from cleanroom.room.store import MetaStore


@pytest.fixture
def store(tmp_path: Path) -> MetaStore:
    return MetaStore(tmp_path / "meta.sqlite")


def _start(store: MetaStore) -> int:
    with store.transaction() as tx:
        return generations.start(
            tx,
            inputs={"acme.orders": 1},
            backend="duckdb",
            suppression={"acme": 2},
            match_key_id="k1",
        )


def test_publishing_replaces_the_live_generation_and_returns_it(store: MetaStore) -> None:
    first, second = _start(store), _start(store)
    assert second == first + 1
    db = store.connection()
    assert generations.live(db) is None
    with store.transaction() as tx:
        assert (
            generations.publish(tx, first, tables={"acme.orders": "g1"}, withheld={}, bounds=None)
            is None
        )
    with store.transaction() as tx:
        old = generations.publish(
            tx, second, tables={"acme.orders": "g2"}, withheld={"links": 3}, bounds={"rows": 5}
        )
    assert old is not None and (old.generation, old.tables) == (first, {"acme.orders": "g1"})
    live = generations.live(db)
    assert live is not None and live.generation == second and live.finished_at
    assert (live.withheld, live.bounds, live.suppression) == (
        {"links": 3},
        {"rows": 5},
        {"acme": 2},
    )
    assert (live.inputs, live.match_key_id) == ({"acme.orders": 1}, "k1")
    assert [m.generation for m in generations.with_status(db, "replaced")] == [first]


def test_only_a_running_generation_fails(store: MetaStore) -> None:
    running, published = _start(store), _start(store)
    with store.transaction() as tx:
        generations.publish(tx, published, tables={}, withheld={}, bounds=None)
        assert generations.fail(tx, running, finished=True)
        assert not generations.fail(tx, running)  # already failed
        assert not generations.fail(tx, published)  # live stays live
    failed = generations.get(store.connection(), running)
    assert failed is not None and failed.status == "failed" and failed.finished_at
    assert generations.with_status(store.connection(), "running") == []


def test_the_newest_published_generation_is_named_after_it_expired(store: MetaStore) -> None:
    gen = _start(store)
    _start(store)  # still running: never published, never the one named
    with store.transaction() as tx:
        generations.publish(tx, gen, tables={}, withheld={}, bounds=None)
        generations.expire(tx, gen, "2026-03-01T12:00:00+00:00")
    db = store.connection()
    newest = generations.newest_published(db)
    assert newest is not None and newest.generation == gen
    assert (newest.status, newest.expired_at) == ("expired", "2026-03-01T12:00:00+00:00")
    assert generations.live(db) is None
