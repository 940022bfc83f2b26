"""Running a query: check, price, charge, compute, release, remember — in that order.

The budget is charged in its own transaction *before* any data is touched, so
concurrent queries can never overspend; a failure afterwards refunds it. The
same question (same checked plan, epsilon, policy version, data generation and
party) is answered from the cache with the stored noisy result, at no cost, so
asking again and averaging gains nothing — also while the first is still
computing: the same question waits for it. Every query — answered, cached or
refused — is audited with its policy version, epsilon and result hash.

:meth:`Engine.run` is the one way in, for restricted SQL, templates and the
sections of a report run (``prepaid``: paid by the run's one charge), and
:meth:`Engine._fresh` the one path that charges, computes, stores and, on a
failure, settles.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from cleanroom import accuracy
from cleanroom.errors import T_, ForbiddenError, NotFoundError, UserError
from cleanroom.room import faults
from cleanroom.room.analyses import prepare_template
from cleanroom.room.auth import Role, User
from cleanroom.room.bounds import applied, with_bounds
from cleanroom.room.budget import BudgetExceeded, Ledger
from cleanroom.room.dp import MIN_EPSILON
from cleanroom.room.epsilon import Epsilon
from cleanroom.room.matching import Generation, live_generation, reading
from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.policy.lifecycle import ActivePolicy
from cleanroom.room.policy.privacy import PrivacyPolicy
from cleanroom.room.query import records
from cleanroom.room.query.check import QueryRejected, check_sql
from cleanroom.room.query.history import history
from cleanroom.room.query.prepared import Prepared, SqlQuery
from cleanroom.room.query.price import outlook
from cleanroom.room.query.release import Released
from cleanroom.room.state import Room
from cleanroom.room.store import now
from cleanroom.wording import a

log = logging.getLogger("cleanroom.query")
_INT64_MAX = 2**63 - 1  # the ledger stores an epsilon as two INTEGER columns


@dataclass(frozen=True)
class QueryRequest:
    """What an analyst asks: restricted SQL or a template with parameters."""

    sql: str | None = None
    template: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    epsilon: Epsilon | None = None
    dry_run: bool = False

    def describe(self) -> dict[str, Any]:
        """For the audit trail and the queries table."""
        return {
            "sql": self.sql,
            "template": self.template,
            "params": self.params,
            "epsilon": str(self.epsilon) if self.epsilon is not None else None,
        }


@dataclass(frozen=True)
class Prepaid:
    """A checked query whose epsilon an enclosing charge already paid: a report run's section.

    A run (``cleanroom.room.reports``) charges the sum of its sections once,
    atomically, before any of them executes, so that it is either fully paid
    or refused — never half-published. It checked ``query`` and pinned
    ``active`` and ``generation`` so that every section reads the same policy
    and data; ``report_run`` names the run that paid, on each section's
    ``queries`` row and audit entry.
    """

    query: Prepared
    active: ActivePolicy
    generation: Generation
    report_run: str


def _insert_query(
    db: sqlite3.Connection,
    query_id: str,
    request: QueryRequest,
    user: User,
    party: str,
    cache_key: str,
    **fields: Any,
) -> None:
    """One row of the ``queries`` table; ``fields`` are its remaining columns."""
    records.insert(
        db,
        query_id,
        party=party,
        user_name=user.name,
        kind="template" if request.template else "sql",
        request=json.dumps(request.describe()),
        cache_key=cache_key,
        **fields,
    )


def _party_of(user: User) -> str:
    if user.role is Role.analyst and user.party:
        return user.party
    if user.role is Role.reporter:
        return user.party or "reporter"
    raise ForbiddenError(
        T_(
            "'%(user)s' is %(a)s; queries are for analysts and reporters",
            user=user.name,
            a=a(user.role),
        )
    )


def _epsilon(request: QueryRequest, policy: CollaborationPolicy) -> Epsilon:
    """The request's epsilon, else the template's approved one, else the policy default."""
    privacy = policy.privacy
    assert privacy is not None
    approved = policy.templates.get(request.template or "")
    default = approved.epsilon if approved is not None and approved.epsilon else None
    epsilon = Epsilon.parse(request.epsilon or default or privacy.default_epsilon)
    cap = privacy.max_epsilon_per_query
    if epsilon <= 0:
        raise QueryRejected("epsilon_invalid", T_("epsilon must be positive"))
    if epsilon < MIN_EPSILON:
        raise QueryRejected(
            "epsilon_too_small",
            T_(
                "epsilon %(float)s is under the room's floor of %(float2)s: the answer "
                "would be noise",
                float=format(float(epsilon), "g"),
                float2=format(float(MIN_EPSILON), "g"),
            ),
        )
    if max(epsilon.numerator, epsilon.denominator) > _INT64_MAX:
        raise QueryRejected(
            "epsilon_invalid", T_("epsilon has too many digits; write it with at most 15")
        )
    if epsilon > cap:
        raise QueryRejected(
            "epsilon_over_cap",
            T_(
                "epsilon %(float)s is over this collaboration's cap of %(float2)s per query",
                float=format(float(epsilon), "g"),
                float2=format(float(cap), "g"),
            ),
        )
    return epsilon


def _cache_key(
    party: str, query: Prepared, epsilon: Fraction, active: ActivePolicy, generation: Generation
) -> str:
    """The same question: same party, checked query, epsilon, policy version and data."""
    return hashlib.sha256(
        json.dumps(
            [party, query.canonical, str(epsilon), active.version, generation.generation],
            sort_keys=True,
        ).encode()
    ).hexdigest()


class Engine:
    """Queries against one room."""

    def __init__(self, room: Room) -> None:
        self.room = room
        self.ledger = Ledger(room.store, room.audit, room.settings.zone)
        # Cache keys of queries being computed now, each with the event its waiters
        # wait on. One service process holds the room (DuckDB locks its warehouse file),
        # so an in-process table sees every query in flight.
        self._flights: dict[str, threading.Event] = {}
        self._flights_lock = threading.Lock()

    def prepare(
        self, request: QueryRequest, party: str, policy: CollaborationPolicy | None = None
    ) -> Prepared:
        """The checked query for a request: restricted SQL, or a template with parameters.

        ``policy`` is the snapshot the caller runs under (the active one if not
        given): a query keeps the version it started with even if another is
        activated while it runs.
        """
        if policy is None:
            policy = self.room.active_policy().policy
        if request.sql is not None and request.template is None:
            return SqlQuery(check_sql(request.sql, policy=policy, party=party))
        if request.template is not None and request.sql is None:
            return prepare_template(request.template, request.params, policy=policy, party=party)
        raise UserError(T_("send either sql or template (with params), not both"))

    def run(
        self, request: QueryRequest, user: User, prepaid: Prepaid | None = None
    ) -> dict[str, Any]:
        """Answer, or refuse with the rule broken; the refusal costs nothing.

        The one way into the engine: restricted SQL and templates (from the
        API, the web console, the CLI through the API) and each section of a
        report run. A query is checked, priced, and answered from the cache or
        charged before it runs. A ``prepaid`` one (a report section) gets the
        same execution and the same record — a ``queries`` row, a ``query.run``
        audit entry with policy version, epsilon, result hash and ``report_run`` —
        but no charge, no refund (the run's rule decides) and no cache read
        (the run paid for a fresh answer).
        """
        party = _party_of(user)
        active = prepaid.active if prepaid is not None else self.room.active_policy()
        privacy = active.policy.privacy
        if privacy is None:
            raise QueryRejected("no_privacy_policy", T_("the active policy allows no queries"))
        if prepaid is not None:
            epsilon = _epsilon(request, active.policy)
            return self._fresh(  # on the generation the run pinned, like its policy
                request, user, party, active, prepaid.query, epsilon, prepaid.generation, prepaid
            )
        request = self._chosen_pairs(request, privacy)
        try:
            query = self.prepare(request, party, active.policy)
            epsilon = _epsilon(request, active.policy)
        except QueryRejected as err:
            self.room.audit.record_refusal(
                actor=user.name,
                action="query.refused",
                target=party,
                outcome="refused",
                details={"rule": err.rule, "policy_version": active.version},
            )
            raise
        if request.dry_run:  # priced from the query and the policy alone: no data is read
            status = self.ledger.status(party, privacy.budget)
            live = live_generation(self.room)  # its recorded bounds: metadata, not data
            chosen = applied(privacy, live.bounds if live else None)
            return {
                "dry_run": True,
                **query.preview(epsilon, with_bounds(privacy, chosen)),
                "bounds": chosen.as_dict(),
                "budget": outlook(party, epsilon, status),
            }
        self.room.audit.require_intact()  # an answer must be recorded: refuse before any row
        # Pinned: a re-match cannot drop its tables; refused if past the retention.
        with reading(self.room, active.policy.retention) as generation:
            if generation is None:
                raise UserError(T_("no match has run yet; a room admin runs one after the uploads"))
            return self._cached_or_fresh(request, user, party, active, query, epsilon, generation)

    def _chosen_pairs(self, request: QueryRequest, privacy: PrivacyPolicy) -> QueryRequest:
        """``transitions`` without ``max_transitions``: the pairs bound the live match chose.

        Only a default: the template still checks it (1–10) and derives its
        sensitivity from it, so the answer is private whichever generation it
        then reads; the request as recorded names the bound it ran with.
        """
        if request.template != "transitions" or "max_transitions" in request.params:
            return request
        live = live_generation(self.room)
        chosen = applied(privacy, live.bounds if live else None)
        if not chosen.adaptive or chosen.pairs is None:
            return request
        return replace(request, params={**request.params, "max_transitions": str(chosen.pairs)})

    def _cached_or_fresh(
        self,
        request: QueryRequest,
        user: User,
        party: str,
        active: ActivePolicy,
        query: Prepared,
        epsilon: Fraction,
        generation: Generation,
    ) -> dict[str, Any]:
        """A checked, priced query on a pinned generation: from the cache, or charged and run.

        The cache holds queries in flight too: while one is computing, the same
        question waits for its answer instead of being charged and noised a
        second time (twelve identical queries sent at once were charged twelve
        times and released twelve answers to average). If the first fails, the
        next waiter runs it.
        """
        key = _cache_key(party, query, epsilon, active, generation)
        while True:
            with self._flights_lock:
                cached = self._cached(key)
                flight = None if cached is not None else self._flights.get(key)
                leading = cached is None and flight is None
                if leading:
                    flight = self._flights[key] = threading.Event()
            if cached is not None:
                query_id = secrets.token_hex(8)
                return self._answer_from_cache(query_id, cached, request, user, party, key)
            assert flight is not None
            if not leading:
                flight.wait()
                continue  # answered (now cached) or failed (then one of us runs it)
            try:
                return self._fresh(request, user, party, active, query, epsilon, generation, None)
            finally:
                with self._flights_lock:
                    del self._flights[key]
                flight.set()

    def _fresh(
        self,
        request: QueryRequest,
        user: User,
        party: str,
        active: ActivePolicy,
        query: Prepared,
        epsilon: Fraction,
        generation: Generation,
        prepaid: Prepaid | None,
    ) -> dict[str, Any]:
        """Compute, release and store one fresh answer on a pinned generation.

        The one settle path. Charged here first unless ``prepaid``: a failure
        after a charge made here refunds it (:meth:`_abandon`); a prepaid
        query's charge is its run's to settle, so a failure only closes it.
        """
        privacy = active.policy.privacy
        assert privacy is not None  # run() refused the query otherwise
        key = _cache_key(party, query, epsilon, active, generation)
        query_id = secrets.token_hex(8)
        db = self.room.store.connection()
        _insert_query(
            db,
            query_id,
            request,
            user,
            party,
            key,
            policy_version=active.version,
            generation=generation.generation,
            epsilon=str(epsilon),
            status="running",
            report_run=None if prepaid is None else prepaid.report_run,
        )
        charge = None
        if prepaid is None:
            charge = self._charge(db, query_id, party, epsilon, privacy, user)
        started = time.perf_counter()
        chosen = applied(privacy, generation.bounds)
        paid_by = {"report_run": prepaid.report_run} if prepaid is not None else {}
        try:
            released = query.execute(
                self.room.backend.cursor(),
                generation.tables,
                epsilon,
                with_bounds(privacy, chosen),
            )
            if charge is not None:  # a report run has its own crash point (report.section)
                faults.pause("query.release")  # crash tests: charged and computed, not stored
            return self._store(
                query_id,
                released,
                request,
                user,
                party,
                active,
                generation,
                epsilon,
                started,
                **paid_by,
                bounds=chosen.as_dict(),
            )
        except Exception as err:  # not stored, so never returned: a charge made here goes back
            self._abandon(charge, query_id, user.name, err)
            raise

    def _charge(
        self,
        db: sqlite3.Connection,
        query_id: str,
        party: str,
        epsilon: Fraction,
        privacy: PrivacyPolicy,
        user: User,
    ) -> int:
        """Charge the party's budget in its own transaction; a refusal closes the query."""
        try:
            return self.ledger.charge(
                party,
                epsilon,
                policy=privacy.budget,
                query_id=query_id,
                actor=user.name,
                delta=privacy.delta or 0.0,
            )
        except BudgetExceeded:
            records.refuse(db, query_id)
            raise
        except Exception:  # not charged (e.g. the audit chain broke meanwhile): nothing ran
            _fail(db, query_id)
            raise

    def _abandon(self, charge: int | None, query_id: str, actor: str, err: Exception) -> None:
        """Refund (a charge made here) and fail a query whose result could not be stored.

        Best effort, in two steps. A refund that cannot be made or recorded (a
        locked store, a broken audit chain) leaves the charge standing — never
        less privacy accounted than was spent — and the query is still marked
        ``failed``; start-up recovery refunds the failed query's charge once it
        can be recorded. When even the status cannot be written, the query
        stays ``running`` and :func:`cleanroom.room.recovery.recover_queries`
        settles it at the next start, by the same rule (a prepaid query has
        no charge of its own to refund).
        """
        if charge is not None:
            try:
                self.ledger.refund(charge, actor=actor, reason=type(err).__name__)
            except Exception as again:
                log.warning(
                    "refund left for start-up recovery",
                    extra={"query_id": query_id, "error": type(again).__name__},
                )
        try:
            _fail(self.room.store.connection(), query_id)
        except Exception as again:
            log.warning(
                "query left for start-up recovery",
                extra={"query_id": query_id, "error": type(again).__name__},
            )

    def _store(
        self,
        query_id: str,
        released: Released,
        request: QueryRequest,
        user: User,
        party: str,
        active: ActivePolicy,
        generation: Generation,
        epsilon: Fraction,
        started: float,
        **details: object,
    ) -> dict[str, Any]:
        """The released answer, stored with its hash and audited in one transaction."""
        privacy = active.policy.privacy
        assert privacy is not None
        result = {
            "query_id": query_id,
            **released.as_dict(),
            "mechanism": privacy.mechanism,
            "cached": False,
            "policy_version": active.version,
            "generation": generation.generation,
            "suppression_applied": generation.suppressed,
            "seconds": round(time.perf_counter() - started, 3),
        }
        if "bounds" in details:  # which per-person bounds applied, and whether chosen from data
            result["bounds"] = details["bounds"]
        # Each number's mostly-noise flag and rounding, and the rules that withheld cells.
        result = accuracy.annotate(result, min_noisy_persons=privacy.min_noisy_persons)
        body = json.dumps(result, sort_keys=True)
        digest = hashlib.sha256(body.encode()).hexdigest()
        with self.room.store.transaction() as tx:
            records.store_result(tx, query_id, body, digest)
            self.room.audit.append(
                tx,
                actor=user.name,
                action="query.run",
                target=party,
                details={
                    "query_id": query_id,
                    "kind": "template" if request.template else "sql",
                    "template": request.template,
                    "policy_version": active.version,
                    "generation": generation.generation,
                    "epsilon": str(epsilon),
                    "result_sha256": digest,
                    **details,
                },
            )
        return result

    def _cached(self, key: str) -> dict[str, Any] | None:
        row = records.cached(self.room.store.connection(), key)
        return {"id": row.id, **row.answer()} if row else None

    def _answer_from_cache(
        self,
        query_id: str,
        cached: dict[str, Any],
        request: QueryRequest,
        user: User,
        party: str,
        key: str,
    ) -> dict[str, Any]:
        original = cached.pop("id")
        result = {**accuracy.annotate(cached), "query_id": query_id, "cached": True}
        result["cached_from"] = original
        body = json.dumps(result, sort_keys=True)
        with self.room.store.transaction() as tx:
            _insert_query(
                tx,
                query_id,
                request,
                user,
                party,
                key,
                policy_version=cached["policy_version"],
                generation=cached["generation"],
                epsilon="0",
                status="done",
                result=body,
                result_sha256=hashlib.sha256(body.encode()).hexdigest(),
                cached_from=original,
                finished_at=now(),
            )
            self.room.audit.append(
                tx,
                actor=user.name,
                action="query.cached",
                target=party,
                details={"query_id": query_id, "cached_from": original, "epsilon": "0"},
            )
        return result

    def get(self, query_id: str, user: User) -> dict[str, Any]:
        """A past result, to its own party (or a reviewer)."""
        row = records.get(self.room.store.connection(), query_id)
        if row is None or (
            user.role not in (Role.reviewer, Role.room_admin) and row.party != _party_of(user)
        ):
            raise NotFoundError(T_("no query %(query_id)s", query_id=query_id))
        if row.status != "done":
            return {"query_id": query_id, "status": row.status}
        # Annotated again: an answer stored before the flags existed gains them on the way out.
        return {"status": "done", **accuracy.annotate(row.answer())}

    def history(
        self, user: User, *, limit: int = 50, before: str | None = None
    ) -> list[dict[str, Any]]:
        """The caller's party's past queries, newest first (every party's for reviewers)."""
        everyone = user.role in (Role.reviewer, Role.room_admin)
        party = None if everyone else _party_of(user)
        return history(self.room.store, user, party, limit=limit, before=before)


def _fail(db: sqlite3.Connection, query_id: str) -> None:
    """Close a query that produced no stored result (its charge is settled by the caller)."""
    records.fail(db, query_id)
