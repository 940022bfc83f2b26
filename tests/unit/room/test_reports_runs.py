"""The run log: a slot is claimed once, a report runs one at a time, closing is final."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from threading import Barrier

import pytest

from cleanroom.room.reports.runs import ReportBusy, RunLog, SlotTaken
from cleanroom.room.store import MetaStore

SLOT = "2026-11-23T06:00:00+00:00"


def claim(log: RunLog, run_id: str, slot: str = SLOT, report: str = "weekly") -> object:
    return log.claim(
        run_id,
        report,
        slot,
        trigger="schedule",
        actor="scheduler",
        policy_version=1,
        generation=1,
        epsilon=Fraction(1, 10),
        inputs={"slot": slot},
    )


def test_a_slot_is_claimed_once_even_by_racing_threads(store: MetaStore) -> None:
    log = RunLog(store)
    start = Barrier(4)

    def attempt(i: int) -> str:
        start.wait()
        try:
            claim(log, f"run{i}")
            return "claimed"
        except SlotTaken:
            return "taken"
        except ReportBusy:
            return "busy"

    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(attempt, range(4)))
    assert outcomes.count("claimed") == 1
    assert len(log.recent("weekly")) == 1


def test_a_finished_slot_stays_taken(store: MetaStore) -> None:
    log = RunLog(store)
    claim(log, "a")
    with store.transaction() as db:
        assert log.finish(db, "a", "refused", error="budget")
    with store.transaction() as db:
        assert not log.finish(db, "a", "done")  # closing is final
    with pytest.raises(SlotTaken, match="already refused"):
        claim(log, "b")
    assert log.get("weekly", "a").error == "budget"
    assert log.last_scheduled_slot("weekly") == SLOT


def test_one_running_run_per_report(store: MetaStore) -> None:
    log = RunLog(store)
    claim(log, "a")
    with pytest.raises(ReportBusy, match="already running"):
        claim(log, "b", slot="manual:b")
    claim(log, "c", slot="manual:c", report="other")  # other reports are not held up
    assert {r.id for r in log.interrupted()} == {"a", "c"}
