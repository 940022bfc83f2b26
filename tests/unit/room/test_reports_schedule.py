"""Due slots: each cron slot once, only the latest after a stop, none before activation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cleanroom.room.reports.schedule import due_slot, latest_slot

WEEKLY = "0 6 * * mon"
MONDAY = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # a Monday


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_latest_slot_includes_the_current_instant() -> None:
    assert latest_slot(WEEKLY, MONDAY) == MONDAY
    assert latest_slot(WEEKLY, MONDAY - timedelta(seconds=1)) == MONDAY - timedelta(days=7)
    assert latest_slot("* * * * *", at("2026-11-23T06:00:59.999")) == at("2026-11-23T06:00:00")


def test_times_are_utc_whatever_the_clock_says() -> None:
    tehran = MONDAY.astimezone(datetime.now(UTC).astimezone().tzinfo)
    assert latest_slot(WEEKLY, tehran) == MONDAY
    assert latest_slot(WEEKLY, MONDAY).tzinfo is not None


def test_a_slot_runs_once() -> None:
    since = MONDAY - timedelta(days=30)
    assert due_slot(WEEKLY, now=MONDAY, last_slot=None, since=since) == MONDAY
    later = MONDAY + timedelta(hours=3)
    assert due_slot(WEEKLY, now=later, last_slot=MONDAY, since=since) is None


def test_after_a_stop_only_the_latest_missed_slot_runs() -> None:
    last = MONDAY - timedelta(days=21)
    now = MONDAY + timedelta(days=2)
    assert due_slot(WEEKLY, now=now, last_slot=last, since=last) == MONDAY


def test_a_new_report_does_not_run_slots_from_before_its_policy() -> None:
    activated = MONDAY + timedelta(days=2)  # approved on a Wednesday
    assert (
        due_slot(WEEKLY, now=activated + timedelta(hours=1), last_slot=None, since=activated)
        is None
    )
    next_monday = MONDAY + timedelta(days=7)
    assert due_slot(WEEKLY, now=next_monday, last_slot=None, since=activated) == next_monday


def test_a_slot_before_the_activation_never_runs_even_after_earlier_runs() -> None:
    # An earlier slot ran (by hand or under the previous policy); the policy in force
    # was activated after the latest slot: that slot predates it and is not run.
    activated = MONDAY + timedelta(days=2)
    earlier = MONDAY - timedelta(days=7)
    now = activated + timedelta(days=3)  # Saturday: the latest slot is still MONDAY
    assert due_slot(WEEKLY, now=now, last_slot=earlier, since=activated) is None
    # the first slot at or after the activation runs, once
    next_monday = MONDAY + timedelta(days=7)
    assert due_slot(WEEKLY, now=next_monday, last_slot=earlier, since=activated) == next_monday
    assert due_slot(WEEKLY, now=next_monday, last_slot=next_monday, since=activated) is None


def test_after_downtime_only_the_latest_slot_at_or_after_the_activation_runs() -> None:
    activated = MONDAY - timedelta(days=30)
    down_since = MONDAY - timedelta(days=21)
    now = MONDAY + timedelta(days=16)  # three Mondays missed
    assert due_slot(WEEKLY, now=now, last_slot=down_since, since=activated) == MONDAY + timedelta(
        days=14
    )


TEHRAN = ZoneInfo("Asia/Tehran")


def test_schedules_run_in_the_room_time_zone() -> None:
    # 06:00 on Monday in Tehran is 02:30 UTC (Iran keeps UTC+3:30 all year).
    tehran_monday = datetime(2026, 11, 23, 2, 30, tzinfo=UTC)
    assert latest_slot(WEEKLY, MONDAY, TEHRAN) == tehran_monday
    assert latest_slot(WEEKLY, tehran_monday - timedelta(seconds=1), TEHRAN) == (
        tehran_monday - timedelta(days=7)
    )
    # the first of the month at midnight in Tehran is 20:30 UTC the evening before
    assert latest_slot("0 0 1 * *", at("2026-11-23T05:00:00"), TEHRAN) == at("2026-10-31T20:30:00")


def test_a_tehran_slot_before_the_activation_never_runs() -> None:
    activated = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 06:30 Tehran, after the 06:00 slot
    now = activated + timedelta(hours=1)
    assert due_slot(WEEKLY, now=now, last_slot=None, since=activated, zone=TEHRAN) is None
    next_slot = datetime(2026, 11, 30, 2, 30, tzinfo=UTC)
    assert (
        due_slot(WEEKLY, now=next_slot, last_slot=None, since=activated, zone=TEHRAN) == next_slot
    )
