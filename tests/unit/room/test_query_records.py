"""The ``queries`` table's owner: a query's row from running to done, failed or refused."""

from __future__ import annotations

import pytest

from cleanroom.errors import InternalError
from cleanroom.room.query import records
from cleanroom.room.store import MetaStore


def _ask(
    store: MetaStore, query_id: str, *, party: str = "acme", key: str = "k", **fields: object
) -> None:
    row: dict[str, object] = {
        "policy_version": 1,
        "generation": 1,
        "epsilon": "1/4",
        "status": "running",
        **fields,
    }
    records.insert(
        store.connection(),
        query_id,
        party=party,
        user_name="ana",
        kind="sql",
        request='{"sql": "SELECT 1"}',
        cache_key=key,
        **row,  # type: ignore[arg-type]
    )


def test_a_query_runs_then_stores_its_answer(store: MetaStore) -> None:
    _ask(store, "q1")
    db = store.connection()
    running = records.get(db, "q1")
    assert running is not None and running.status == "running" and running.result is None
    with pytest.raises(InternalError, match="stores no result"):
        running.answer()
    assert records.running(db) == ["q1"]
    records.store_result(db, "q1", '{"rows": [1]}', "abc")
    done = records.get(db, "q1")
    assert done is not None and done.status == "done" and done.finished_at
    assert (done.answer(), done.result_sha256) == ({"rows": [1]}, "abc")
    assert records.running(db) == [] and records.get(db, "nope") is None


def test_only_a_running_query_fails_and_refusals_have_no_answer(store: MetaStore) -> None:
    _ask(store, "cut")
    _ask(store, "broke")
    db = store.connection()
    assert records.fail(db, "cut") and not records.fail(db, "cut")
    records.refuse(db, "broke")
    records.store_result(db, "broke", "{}", "x")  # an answer stored after all: not unanswered
    _ask(store, "refused")
    records.refuse(db, "refused")
    assert records.closed_unanswered(db) == {"cut", "refused"}


def test_the_cache_answers_from_the_first_fresh_answer_only(store: MetaStore) -> None:
    db = store.connection()
    _ask(store, "copy", status="done", result="{}", cached_from="first")
    assert records.cached(db, "k") is None  # a cached copy is never itself the source
    _ask(store, "first", status="done", result='{"n": 1}')
    _ask(store, "second", status="done", result='{"n": 2}', key="other")
    found = records.cached(db, "k")
    assert found is not None and found.id == "first"


def test_a_report_run_s_released_sections_are_counted_by_its_id(store: MetaStore) -> None:
    db = store.connection()
    _ask(store, "s1", report_run="r1")
    _ask(store, "s2", report_run="r1")
    _ask(store, "s3", report_run="r2")
    assert records.released_for_run(db, "r1") == 0  # running sections released nothing
    records.store_result(db, "s1", "{}", "x")
    records.store_result(db, "s3", "{}", "x")
    assert records.released_for_run(db, "r1") == 1
    assert {q.id: q.report_run for q in records.every(db)} == {"s1": "r1", "s2": "r1", "s3": "r2"}


def test_pages_are_newest_first_per_party(store: MetaStore) -> None:
    for i in range(5):
        _ask(store, f"a{i}")
    _ask(store, "b0", party="bank")
    db = store.connection()
    assert [q.id for q in records.page(db, "acme", limit=2)] == ["a4", "a3"]
    assert [q.id for q in records.page(db, "acme", limit=10, before="a3")] == ["a2", "a1", "a0"]
    assert [q.id for q in records.page(db, None, limit=2)] == ["b0", "a4"]
