"""Running a report: claim, check, charge once, run every section, publish — or refuse.

The order is the engine's, lifted to a whole run:

1. *claim* the slot (a ``report_runs`` row; a slot runs once, a report one run at a time);
2. *check* every section against the active policy (templates, parameters, epsilon)
   and that a match exists — a refusal here costs nothing;
3. *charge* the run's whole epsilon to the ``reporter`` share in one ledger
   transaction, before any section reads data — if the budget says no, the run
   is recorded as refused and nothing is published;
4. *run* each section through the engine's one entry without charging again
   (:meth:`~cleanroom.room.query.engine.Engine.run`, ``prepaid``), each one recorded
   in the ``queries`` table and the audit trail like any query;
5. *publish* the page, charts, CSVs and JSON by renaming a finished directory.

The refund rule when something fails after the charge: if no section produced
its noisy result, the charge is refunded (nothing was computed, nothing can be
read). Once one section has produced a result, that result sits in the
``queries`` table where reviewers and reporters can read it, so its privacy
loss is real and the charge stands in full; the run is marked failed and its
report is not published.
"""

from __future__ import annotations

import logging
import secrets
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from cleanroom.errors import T_, AuditChainBroken, CleanroomError, ConflictError, NotFoundError
from cleanroom.i18n import N_
from cleanroom.room import faults
from cleanroom.room.auth import Role, User
from cleanroom.room.budget import BudgetExceeded
from cleanroom.room.matching import Generation, reading
from cleanroom.room.policy.lifecycle import ActivePolicy
from cleanroom.room.policy.reports import ReportPolicy, exact
from cleanroom.room.query import records
from cleanroom.room.query.check import QueryRejected
from cleanroom.room.query.engine import Engine, Prepaid, QueryRequest
from cleanroom.room.query.prepared import Prepared
from cleanroom.room.reports.render import RunInfo, SectionResult, write_outputs
from cleanroom.room.reports.runs import ReportRun, RunLog, Status
from cleanroom.room.store import now

log = logging.getLogger("cleanroom.reports")

SCHEDULER = "scheduler"  # the built-in reporter identity scheduled runs act as
REPORTER_SHARE = "reporter"  # the budget share every report run is charged to


def reporter_identity(user: User | None) -> User:
    """Who a run acts as: always the reporter role, named for whoever triggered it.

    A room admin may trigger a run, but the run's queries are the reporters'
    (charged to the reporter share, recorded as a reporter's): an admin gets
    no query rights by triggering a report.
    """
    if user is None:
        return User(0, SCHEDULER, Role.reporter, None, "", None)
    return User(user.id, user.name, Role.reporter, None, user.created_at, user.revoked_at)


def slot_text(slot: datetime) -> str:
    """A scheduled slot as stored: UTC ISO-8601 to the second (sorts as it reads)."""
    return slot.isoformat(timespec="seconds")


class ReportRunner:
    """Runs the active policy's reports against one room, through one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.room = engine.room
        self.runs = RunLog(self.room.store)

    @property
    def root(self) -> Path:
        """Where published runs live: ``<room>/reports/<report>/<run id>/``."""
        return self.room.paths.root / "reports"

    def definition(self, name: str) -> tuple[ActivePolicy, ReportPolicy]:
        """The active policy and one of its reports."""
        active = self.room.active_policy()
        report = active.policy.reports.get(name)
        if report is None:
            raise NotFoundError(T_("the active policy has no report '%(name)s'", name=name[:60]))
        return active, report

    def run(
        self, name: str, *, user: User | None = None, slot: datetime | None = None
    ) -> ReportRun:
        """Run a report now (``slot``: a scheduled run); the run as recorded, whatever came of it.

        Raises :class:`~cleanroom.room.reports.runs.SlotTaken` when the slot already
        ran (or is running) and :class:`~cleanroom.room.reports.runs.ReportBusy`
        when another run of the report is still going: neither charges anything.
        """
        active, report = self.definition(name)
        if not report.enabled:
            raise ConflictError(T_("report '%(name)s' is disabled in the active policy", name=name))
        identity = reporter_identity(user)
        self.room.audit.require_intact()  # a run must be recorded: refuse before claiming
        # Pinned: a re-match cannot drop its tables; refused if past the retention.
        with reading(self.room, active.policy.retention) as generation:
            return self._claim_and_run(name, slot, active, report, identity, generation)

    def _claim_and_run(
        self,
        name: str,
        slot: datetime | None,
        active: ActivePolicy,
        report: ReportPolicy,
        identity: User,
        generation: Generation | None,
    ) -> ReportRun:
        run_id = secrets.token_hex(8)
        when = slot_text(slot) if slot is not None else f"manual:{run_id}"
        run = self.runs.claim(
            run_id,
            name,
            when,
            trigger="schedule" if slot is not None else "manual",
            actor=identity.name,
            policy_version=active.version,
            generation=generation.generation if generation else None,
            epsilon=report.epsilon,
            inputs={
                "report": name,
                "definition": report.model_dump(mode="json"),
                "slot": when,
                "policy_version": active.version,
                "generation": generation.generation if generation else None,
            },
        )
        try:
            self._execute(run, report, active, generation, identity)
        except BaseException as err:  # never leave a run marked running
            self._close(run, "failed", error=_reason(err), details={"stage": "internal"})
            raise
        return self.runs.get(name, run_id)

    def recover(self) -> list[str]:
        """Close runs a stopped service left running, by the refund rule above.

        A section's result is stored (its ``queries`` row naming the run) with its
        ``query.run`` audit entry in one transaction, so the rows say exactly
        which sections were released before the stop: none, and the charge is
        refunded; any, and it stands.
        """
        closed = []
        db = self.room.store.connection()
        for run in self.runs.interrupted():
            stored = records.released_for_run(db, run.id)
            # By the run's id: the stop may have come before set_charge.
            charges = [c.id for c in self.engine.ledger.charges(report_run=run.id)]
            refund = not stored and bool(charges)
            reason = N_("interrupted: the service stopped during the run")
            for charge in charges if refund else []:
                self.engine.ledger.refund(charge, actor="recovery", reason=reason)
            self._close(
                run, "failed", error=reason, refunded=refund, details={"sections_released": stored}
            )
            shutil.rmtree(self._staging(run), ignore_errors=True)
            closed.append(run.id)
        return closed

    def _execute(
        self,
        run: ReportRun,
        report: ReportPolicy,
        active: ActivePolicy,
        generation: Generation | None,
        identity: User,
    ) -> None:
        try:
            prepared = self._check(report, active)
        except QueryRejected as err:
            self._close(run, "refused", error=str(err), details={"rule": err.rule})
            return
        if generation is None:
            self._close(run, "refused", error=N_("no match has run yet; nothing to report on"))
            return
        privacy = active.policy.privacy
        assert privacy is not None  # the policy model refuses reports without one
        try:
            charge = self.engine.ledger.charge(
                REPORTER_SHARE,
                report.epsilon,
                policy=privacy.budget,
                report_run=run.id,
                actor=identity.name,
                delta=(privacy.delta or 0.0) * len(report.sections),
            )
        except BudgetExceeded as err:
            self._close(run, "refused", error=str(err), details={"rule": err.code})
            return
        self.runs.set_charge(run.id, charge)
        sections: list[SectionResult] = []
        try:
            for section, (request, query) in zip(report.sections, prepared, strict=True):
                faults.pause("report.section")  # crash tests: charged, before this section
                paid = Prepaid(query, active, generation, run.id)
                result = self.engine.run(request, identity, prepaid=paid)
                sections.append(
                    SectionResult(
                        section.template, dict(section.params), f"{section.epsilon:g}", result
                    )
                )
        except Exception as err:
            refund = not sections
            if refund:
                self.engine.ledger.refund(
                    charge, actor=identity.name, reason=f"report run {run.id}: {type(err).__name__}"
                )
            log.exception("report section failed", extra={"report": run.report, "run": run.id})
            self._close(
                run,
                "failed",
                error=_reason(err),
                refunded=refund,
                details={"sections_released": len(sections)},
            )
            return
        self._publish(run, report, active, generation, sections)

    def _check(
        self, report: ReportPolicy, active: ActivePolicy
    ) -> list[tuple[QueryRequest, Prepared]]:
        """Every section checked as the reporters' query, before anything is charged."""
        checked = []
        for section in report.sections:
            request = QueryRequest(
                template=section.template,
                params=dict(section.params),
                epsilon=exact(section.epsilon),
            )
            checked.append((request, self.engine.prepare(request, REPORTER_SHARE, active.policy)))
        return checked

    def _publish(
        self,
        run: ReportRun,
        report: ReportPolicy,
        active: ActivePolicy,
        generation: Generation,
        sections: list[SectionResult],
    ) -> None:
        staging, final = self._staging(run), self.root / run.report / run.id
        info = RunInfo(
            report=run.report,
            title=report.title,
            run_id=run.id,
            slot=run.slot,
            policy_version=active.version,
            generation=generation.generation,
            epsilon=f"{float(report.epsilon):g}",
            generated_at=now(),
            recipients=list(report.recipients),
        )
        try:
            language = self.room.settings.language
            names = {
                party: spec.names.get(language, spec.name)
                for party, spec in active.policy.parties.items()
            }
            files = write_outputs(
                staging,
                info,
                sections,
                language=language,
                brand_names=names,
                timezone=self.room.settings.timezone,
            )
            staging.rename(final)  # one rename: the run is published whole or not at all
        except Exception as err:
            shutil.rmtree(staging, ignore_errors=True)
            log.exception("report rendering failed", extra={"report": run.report, "run": run.id})
            self._close(run, "failed", error=_reason(err), details={"stage": "render"})
            return
        self._close(
            run,
            "done",
            outputs=str(final.relative_to(self.room.paths.root)),
            files=files,
            details={"query_ids": [s.result.get("query_id") for s in sections]},
        )

    def _staging(self, run: ReportRun) -> Path:
        return self.root / run.report / f".{run.id}.partial"

    def _close(
        self,
        run: ReportRun,
        status: Status,
        *,
        error: str | None = None,
        refunded: bool = False,
        outputs: str | None = None,
        files: list[str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Record how the run ended, with its audit entry, in one transaction.

        When the audit chain broke meanwhile the entry cannot be written, but the
        run must not stay ``running``: it is closed without one, and the log says so.
        """
        try:
            self._close_audited(run, status, error, refunded, outputs, files, details)
        except AuditChainBroken as err:
            with self.room.store.transaction() as db:
                closed = self.runs.finish(
                    db, run.id, status, error=error, refunded=refunded, outputs=outputs, files=files
                )
            if closed:
                log.warning(
                    "report run closed without an audit entry: the audit chain is broken",
                    extra={"report": run.report, "run": run.id, "entry": err.entry},
                )

    def _close_audited(
        self,
        run: ReportRun,
        status: Status,
        error: str | None,
        refunded: bool,
        outputs: str | None,
        files: list[str] | None,
        details: dict[str, Any] | None,
    ) -> None:
        with self.room.store.transaction() as db:
            if not self.runs.finish(
                db,
                run.id,
                status,
                error=error,
                refunded=refunded,
                outputs=outputs,
                files=files,
            ):
                return
            self.room.audit.append(
                db,
                actor=run.actor,
                action="report.run",
                outcome={"done": "ok"}.get(status, status),
                target=run.report,
                details={
                    "run_id": run.id,
                    "slot": run.slot,
                    "policy_version": run.policy_version,
                    "generation": run.generation,
                    "epsilon": str(run.epsilon),
                    "refunded": refunded,
                    "error": error,
                    **(details or {}),
                },
            )


def _reason(err: BaseException) -> str:
    """A reason fit to store and show: our own errors say what happened, others name a type."""
    if isinstance(err, CleanroomError) and err.status < 500:
        return str(err)
    return str(T_("internal error (%(kind)s); see the service log", kind=type(err).__name__))
