"""The epsilon ledger: who spent how much privacy loss, per calendar period.

The budget is the one DP guarantee that spans queries: the collaboration cap
bounds a person's total loss per period whoever asks, and each party's share
keeps one party from spending another's. Both are checked and the charge is
written in one ``BEGIN IMMEDIATE`` transaction, so concurrent queries (threads
of the service, or the CLI next to it) serialize on SQLite's write lock and can
never overspend between the check and the write.

Arithmetic is exact: a charge is stored as numerator/denominator and sums are
:class:`~fractions.Fraction`, so ten charges of 1/10 fill a share of 1 exactly,
with no float dust either letting an eleventh through or refusing the tenth.
Policy numbers (floats from YAML) are read through their decimal form.

Charges are counted by *time*: a period's spend is every non-refunded charge
with ``charged_at`` inside the period's bounds. The ``period`` label stored with
each charge (``2026-11``, ``2026-W47``, ``2026-Q4`` …) is for people and
reports; counting by it would let a policy change from months to weeks start
a fresh budget in the middle of a week that was already spent.

This module owns the ``budget_charges`` table: every read and write of it goes
through :class:`Ledger`, whose rows come back as :class:`Charge`. What a charge
paid for is a real column — a query, a report run or a match generation, exactly
one (a CHECK constraint) — so recovery finds a run's charge by its id, never by
parsing a string.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

from cleanroom import clock, jalali
from cleanroom.errors import T_, ConflictError, InternalError, NotFoundError
from cleanroom.room.audit import AuditLog
from cleanroom.room.epsilon import Epsilon
from cleanroom.room.policy.privacy import BudgetPolicy, Period
from cleanroom.room.store import MetaStore
from cleanroom.sql import quote_column

_INT64_MAX = 2**63 - 1
TEHRAN = ZoneInfo("Asia/Tehran")  # the default room time zone (cleanroom.room.config)


@dataclass(frozen=True, slots=True)
class Charge:
    """One ledger row; exactly one of ``query_id``, ``report_run``, ``generation`` is set."""

    id: int
    party: str
    period: str
    epsilon: Fraction  # exact, as stored (validated when charged; a plain Fraction sums fast)
    delta: float
    query_id: str | None
    report_run: str | None
    generation: int | None
    charged_at: str
    refunded_at: str | None

    @property
    def standing(self) -> bool:
        """Not refunded: the privacy loss counts against the budget."""
        return self.refunded_at is None

    def paid_for(self) -> dict[str, str | int]:
        """What the charge paid for, as the audit trail names it."""
        return _paid_for(self.query_id, self.report_run, self.generation)


@dataclass(frozen=True)
class BudgetStatus:
    """One party's view of the current period (all epsilons exact)."""

    period: str
    period_start: str
    period_end: str
    cap: Epsilon
    spent_total: Epsilon
    share: Epsilon
    spent: Epsilon
    left: Epsilon


class BudgetExceeded(ConflictError):
    """A charge would take a party past its share or the collaboration past its cap.

    429, not the 409 of other conflicts: the state that refuses the request is a
    quota that resets on a known date, which is what 429 means to HTTP clients
    (and ``resets_at`` gives the API what it needs for a ``Retry-After``); a 409
    would suggest that changing the request could make it pass now. Asking
    again before the reset is harmless: a refusal charges nothing.
    """

    code = "budget_exhausted"
    status = 429

    def __init__(
        self, *, party: str, asked: Fraction, left: Fraction, which: str, resets_at: datetime
    ) -> None:
        self.party = party
        self.asked = asked
        self.left = left
        self.which = which
        self.resets_at = resets_at
        super().__init__(
            T_(
                "privacy budget exhausted for party '%(party)s': asked epsilon %(asked)s, "
                "%(left)s left in %(which)s; the budget resets at %(resets_at)s",
                party=party,
                asked=_show(asked),
                left=_show(left),
                which=which,
                resets_at=resets_at.isoformat(timespec="seconds"),
            )
        )

    @property
    def details(self) -> dict[str, object]:
        """What a client needs to wait or ask for less: the budget left and the reset time."""
        return {
            "party": self.party,
            "asked_epsilon": float(self.asked),
            "budget_left": float(self.left),
            "limit": self.which,
            "resets_at": self.resets_at.isoformat(timespec="seconds"),
        }


class Ledger:
    """Charges, refunds and balances of the privacy budget, in the metadata store."""

    def __init__(self, store: MetaStore, audit: AuditLog, zone: ZoneInfo = TEHRAN) -> None:
        self._store = store
        self._audit = audit
        self._zone = zone  # where a Solar Hijri month begins

    def charge(
        self,
        party: str,
        epsilon: Fraction,
        *,
        policy: BudgetPolicy,
        actor: str,
        query_id: str | None = None,
        report_run: str | None = None,
        generation: int | None = None,
        delta: float = 0.0,
        now: datetime | None = None,
    ) -> int:
        """Spend ``epsilon`` of ``party``'s share before anything is released; the charge id.

        A refusal is audited too (``budget.charge``, outcome ``refused``), in the
        same transaction that decided it: compliance wants to see who tried to
        go over, not only who spent. What it pays for is exactly one of a
        ``query_id``, a ``report_run`` or a match ``generation`` (its bounds).
        """
        paid_for = _paid_for(query_id, report_run, generation)
        eps = _exact(epsilon, "epsilon", allow_zero=False)
        if eps.numerator > _INT64_MAX or eps.denominator > _INT64_MAX:
            raise ValueError(f"epsilon {eps} has too large a numerator or denominator to store")
        if isinstance(delta, bool) or not (math.isfinite(delta) and 0 <= delta < 1):
            raise ValueError(f"delta must be in [0, 1), not {delta!r}")
        at = _utc(now)
        start, end, label = period_bounds(policy.period, at, self._zone)
        cap, share = _cap_and_share(policy, party)

        refusal: BudgetExceeded | None = None
        charge_id: int | None = None
        with self._store.transaction() as db:
            spent, spent_total = _spent(db, party, start, end)
            left_share, left_cap = share - spent, cap - spent_total
            if eps > left_share or eps > left_cap:
                which = (
                    f"{party}'s share of {_show(share)}"
                    if left_share <= left_cap
                    else f"the collaboration cap of {_show(cap)}"
                )
                refusal = BudgetExceeded(
                    party=party,
                    asked=eps,
                    left=max(Epsilon(0), min(left_share, left_cap)),
                    which=f"{which} for {label}",
                    resets_at=end,
                )
                self._audit.append(
                    db,
                    actor=actor,
                    action="budget.charge",
                    outcome="refused",
                    target=party,
                    details={
                        **paid_for,
                        "epsilon": str(eps),
                        "period": label,
                        "spent": str(spent),
                        "share": str(share),
                        "spent_total": str(spent_total),
                        "cap": str(cap),
                    },
                )
            else:
                cursor = db.execute(
                    "INSERT INTO budget_charges (party, period, epsilon_num, epsilon_den, delta,"
                    " query_id, report_run, generation, charged_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        party,
                        label,
                        eps.numerator,
                        eps.denominator,
                        float(delta),
                        query_id,
                        report_run,
                        generation,
                        _stamp(at),
                    ),
                )
                charge_id = cursor.lastrowid
                if charge_id is None:  # pragma: no cover - sqlite always sets it on INSERT
                    raise sqlite3.DatabaseError(T_("no row id for the budget charge"))
                self._audit.append(
                    db,
                    actor=actor,
                    action="budget.charge",
                    target=party,
                    details={
                        "charge_id": charge_id,
                        **paid_for,
                        "epsilon": str(eps),
                        "delta": float(delta),
                        "period": label,
                        "spent": str(spent + eps),
                        "share": str(share),
                        "spent_total": str(spent_total + eps),
                        "cap": str(cap),
                    },
                )
        if refusal is not None or charge_id is None:
            raise refusal or InternalError("budget charge neither made nor refused")
        return charge_id

    def refund(self, charge_id: int, *, actor: str, reason: str) -> None:
        """Give back a charge whose query failed before releasing anything.

        Only for that: refunding after a release would hand back privacy loss
        that was really incurred. Refunding twice is a no-op (and not audited
        again), so a retried error path cannot refund more than was charged.
        """
        with self._store.transaction() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM budget_charges WHERE id = ?",  # noqa: S608
                (charge_id,),
            ).fetchone()
            if row is None:
                raise NotFoundError(T_("no budget charge %(charge_id)s", charge_id=charge_id))
            charge = _charge(row)
            if not charge.standing:
                return
            db.execute(
                "UPDATE budget_charges SET refunded_at = ? WHERE id = ?",
                (clock.stamp(), charge_id),
            )
            self._audit.append(
                db,
                actor=actor,
                action="budget.refund",
                target=charge.party,
                details={
                    "charge_id": charge_id,
                    **charge.paid_for(),
                    "epsilon": str(charge.epsilon),
                    "period": charge.period,
                    "reason": reason,
                },
            )

    def charges(
        self,
        *,
        query_id: str | None = None,
        report_run: str | None = None,
        generation: int | None = None,
        standing: bool = False,
    ) -> list[Charge]:
        """Every charge in the order made, or those paid for one query, run or generation.

        ``standing``: only the charges not refunded.
        """
        where, args = ["refunded_at IS NULL"] if standing else [], []
        for column, value in (
            ("query_id", query_id),
            ("report_run", report_run),
            ("generation", generation),
        ):
            if value is not None:  # column names are these literals, never caller text
                where.append(f"{column} = ?")
                args.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._store.connection().execute(
            f"SELECT {_COLUMNS} FROM budget_charges{clause} ORDER BY id",  # noqa: S608
            args,
        )
        return [_charge(row) for row in rows]

    def standing_for_queries(self, query_ids: Collection[str]) -> list[Charge]:
        """The standing charges of these queries, in the order made (by the query_id index)."""
        ids = sorted(query_ids)
        found: list[Charge] = []
        for at in range(0, len(ids), _CHUNK):
            chunk = ids[at : at + _CHUNK]
            marks = ", ".join("?" for _ in chunk)
            rows = self._store.connection().execute(
                f"SELECT {_COLUMNS} FROM budget_charges "  # noqa: S608
                f"WHERE query_id IN ({marks}) AND refunded_at IS NULL",
                chunk,
            )
            found += [_charge(row) for row in rows]
        return sorted(found, key=lambda c: c.id)

    def parties_since(self, start: datetime) -> set[str]:
        """The parties charged at or after ``start`` (refunded charges included)."""
        rows = self._store.connection().execute(
            "SELECT DISTINCT party FROM budget_charges WHERE charged_at >= ?", (_stamp(start),)
        )
        return {str(row[0]) for row in rows}

    def status(self, party: str, policy: BudgetPolicy, now: datetime | None = None) -> BudgetStatus:
        """The party's balance in the period containing ``now``."""
        start, end, label = period_bounds(policy.period, _utc(now), self._zone)
        cap, share = _cap_and_share(policy, party)
        db = self._store.connection()
        spent, spent_total = _spent(db, party, start, end)
        left = max(Epsilon(0), min(share - spent, cap - spent_total))
        return BudgetStatus(
            period=label,
            period_start=_stamp(start),
            period_end=_stamp(end),
            cap=cap,
            spent_total=spent_total,
            share=share,
            spent=spent,
            left=left,
        )


def period_bounds(
    period: Period, now: datetime, zone: ZoneInfo = TEHRAN
) -> tuple[datetime, datetime, str]:
    """``[start, end)`` (in UTC) of the calendar period containing ``now``, and its label.

    Calendar periods (not rolling windows) because that is how budgets are
    agreed and reported ("1.0 per month"). Gregorian periods are UTC, so that
    every party and the room agree on when a period ends; weeks are ISO weeks
    (Monday first, the label's year is the ISO year: 2027-01-01 is in
    ``2026-W53``). A ``jalali_month`` is the group's own month: from 00:00 in
    the room's time ``zone`` on the first of a Solar Hijri month to the same
    instant of the next (label ``1405-01``).
    """
    at = _utc(now)
    if period == "jalali_month":
        return jalali.month_bounds(at, zone)
    day = datetime(at.year, at.month, at.day, tzinfo=UTC)
    if period == "day":
        return day, day + timedelta(days=1), day.strftime("%Y-%m-%d")
    if period == "week":
        start = day - timedelta(days=day.weekday())
        iso_year, iso_week, _ = start.isocalendar()
        return start, start + timedelta(days=7), f"{iso_year}-W{iso_week:02d}"
    if period == "month":
        start = day.replace(day=1)
        return start, _add_months(start, 1), f"{start.year}-{start.month:02d}"
    if period == "quarter":
        quarter = (at.month - 1) // 3
        start = day.replace(month=3 * quarter + 1, day=1)
        return start, _add_months(start, 3), f"{start.year}-Q{quarter + 1}"
    if period == "year":
        start = day.replace(month=1, day=1)
        return start, start.replace(year=start.year + 1), f"{start.year}"
    raise ValueError(f"unknown budget period {period!r}")


# -- internals ----------------------------------------------------------------

_CHUNK = 500  # ids per IN list: far under SQLite's limit on bound parameters

_COLUMNS = ", ".join(
    map(
        quote_column,
        (
            "id", "party", "period", "epsilon_num", "epsilon_den", "delta", "query_id",
            "report_run", "generation", "charged_at", "refunded_at",
        ),
    )
)  # fmt: skip


def _charge(row: sqlite3.Row) -> Charge:
    generation = row["generation"]
    return Charge(
        id=int(row["id"]),
        party=str(row["party"]),
        period=str(row["period"]),
        epsilon=Fraction(row["epsilon_num"], row["epsilon_den"]),
        delta=float(row["delta"]),
        query_id=row["query_id"],
        report_run=row["report_run"],
        generation=None if generation is None else int(generation),
        charged_at=str(row["charged_at"]),
        refunded_at=row["refunded_at"],
    )


def _paid_for(
    query_id: str | None, report_run: str | None, generation: int | None
) -> dict[str, str | int]:
    """The one thing a charge pays for, by its column name (the store's CHECK, said early)."""
    named: dict[str, str | int | None] = {
        "query_id": query_id,
        "report_run": report_run,
        "generation": generation,
    }
    paid = {key: value for key, value in named.items() if value is not None}
    if len(paid) != 1:
        raise ValueError(
            f"a charge pays for exactly one query, report run or generation, not {sorted(paid)}"
        )
    return paid


def _spent(
    db: sqlite3.Connection, party: str, start: datetime, end: datetime
) -> tuple[Epsilon, Epsilon]:
    """(party's spend, everyone's spend) in ``[start, end)``, exactly."""
    spent = Epsilon(0)
    total = Epsilon(0)
    rows = db.execute(
        "SELECT party, epsilon_num, epsilon_den FROM budget_charges "
        "WHERE charged_at >= ? AND charged_at < ? AND refunded_at IS NULL",
        (_stamp(start), _stamp(end)),
    )
    for row in rows:
        eps = Epsilon(row["epsilon_num"], row["epsilon_den"])
        total += eps
        if row["party"] == party:
            spent += eps
    return spent, total


def _cap_and_share(policy: BudgetPolicy, party: str) -> tuple[Epsilon, Epsilon]:
    # A party the policy gives no share to gets zero, so every charge is refused:
    # forgetting a party in the policy must fail closed.
    cap = _exact(policy.epsilon, "budget cap", allow_zero=False)
    share = _exact(policy.shares.get(party, 0.0), f"budget share of {party!r}", allow_zero=True)
    return cap, share


def _exact(value: Fraction | float, what: str, *, allow_zero: bool) -> Epsilon:
    """The ledger's exact value (:class:`Epsilon` reads a policy float as its decimal)."""
    try:
        exact = Epsilon.parse(value)
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None
    if exact == 0 and not allow_zero:
        raise ValueError(f"{what} must be positive")
    return exact


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return clock.now()
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("budget times must be timezone-aware (naive times are ambiguous)")
    return now.astimezone(UTC)


def _stamp(at: datetime) -> str:
    # Same shape as cleanroom.room.store.now(), so stored times compare as text.
    return at.astimezone(UTC).isoformat(timespec="seconds")


def _add_months(start: datetime, months: int) -> datetime:
    index = start.month - 1 + months
    return start.replace(year=start.year + index // 12, month=index % 12 + 1, day=1)


def _show(value: Fraction) -> str:
    """A decimal for people (``0.1``, ``0.3333``); the exact fraction stays in the ledger."""
    return f"{float(value):.4g}"
