"""The in-service scheduler: runs each enabled report once per due cron slot.

Cron expressions are read in the room's time zone (setting ``timezone``,
default ``Asia/Tehran``): ``0 8 * * sat`` is 08:00 Saturday in Tehran, the
start of the group's working week. Slots are stored and compared in UTC.
The time comes from the room's clock (:mod:`cleanroom.clock`), so tests set it.

Rules, chosen so that a report is never run twice for one slot and never
floods the budget after a stop:

- a slot is *due* once its time has passed; each slot runs at most once
  (``UNIQUE (report, slot)`` in the run log decides between racing ticks);
- a slot earlier than the activation of the policy version in force is never
  run by the schedule, whether or not earlier slots of that report ran:
  approving a weekly report on a Wednesday does not run last Monday's report
  at once, and re-approving a policy does not replay the slots it missed;
- after the service was down, only the latest missed slot at or after that
  activation runs, not every one;
- a slot whose run was refused or failed is not retried by the scheduler (a
  reporter or room admin can run the report by hand).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from cleanroom.clock import now as clock_now
from cleanroom.errors import AuditChainBroken
from cleanroom.room.policy import versions
from cleanroom.room.reports.runner import ReportRunner
from cleanroom.room.reports.runs import ReportBusy, ReportRun, SlotTaken

log = logging.getLogger("cleanroom.reports")

Clock = Callable[[], datetime]
UTC_ZONE = ZoneInfo("UTC")


def latest_slot(schedule: str, now: datetime, zone: ZoneInfo = UTC_ZONE) -> datetime:
    """The latest slot at or before ``now`` of a cron schedule read in ``zone``; in UTC."""
    # croniter's get_prev is strictly before its start: start one second after now.
    start = now.astimezone(zone).replace(microsecond=0) + timedelta(seconds=1)
    slot: datetime = croniter(schedule, start).get_prev(datetime)
    return slot.astimezone(UTC)


def due_slot(
    schedule: str,
    *,
    now: datetime,
    last_slot: datetime | None,
    since: datetime,
    zone: ZoneInfo = UTC_ZONE,
) -> datetime | None:
    """The slot to run now, if any (see the module's rules)."""
    slot = latest_slot(schedule, now, zone)
    if slot < since:
        return None
    if last_slot is not None and slot <= last_slot:
        return None
    return slot


class Scheduler:
    """A background thread that polls for due slots every ``interval`` seconds."""

    def __init__(
        self,
        runner: ReportRunner,
        *,
        interval: float,
        clock: Clock = clock_now,
        zone: ZoneInfo | None = None,
    ) -> None:
        self.runner = runner
        self.interval = interval
        self.clock = clock
        self.zone = zone or runner.room.settings.zone  # the room's time zone by default
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="report-scheduler", daemon=True)

    def start(self) -> Scheduler:
        """Start polling (the first poll is immediate)."""
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        """Whether the polling thread is running."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop after the run in progress, if any; waits at most ``timeout`` seconds."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def tick(self) -> list[ReportRun]:
        """Run every report that has a due slot; the runs made."""
        active = self.runner.room.active_policy()
        since = self._activated_at(active.version)
        made = []
        for name, report in active.policy.reports.items():
            if not report.enabled or report.schedule is None or self._stop.is_set():
                continue
            last = self.runner.runs.last_scheduled_slot(name)
            slot = due_slot(
                report.schedule,
                now=self.clock(),
                last_slot=datetime.fromisoformat(last) if last else None,
                since=since,
                zone=self.zone,
            )
            if slot is None:
                continue
            try:
                run = self.runner.run(name, slot=slot)
            except (SlotTaken, ReportBusy) as err:  # another tick or a manual run has it
                log.info("report slot skipped", extra={"report": name, "reason": str(err)})
                continue
            log.info(
                "scheduled report ran",
                extra={"report": name, "slot": run.slot, "status": run.status, "run": run.id},
            )
            made.append(run)
        return made

    def _activated_at(self, version: int) -> datetime:
        stamp = versions.in_force_since(self.runner.room.store.connection(), version)
        return datetime.fromisoformat(stamp) if stamp else self.clock()

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self.tick()
                except AuditChainBroken as err:  # nothing can be recorded: no slot runs
                    log.warning("report scheduler paused", extra={"entry": err.entry})
                except Exception:  # a bad tick must not end scheduling for good
                    log.exception("report scheduler tick failed")
                self._stop.wait(self.interval)
        finally:
            self.runner.room.store.close()  # this thread's SQLite connection
