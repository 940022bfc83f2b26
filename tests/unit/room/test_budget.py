from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from cleanroom import clock
from cleanroom.errors import ConflictError, NotFoundError
from cleanroom.room.audit import AuditLog
from cleanroom.room.budget import BudgetExceeded, BudgetStatus, Ledger, period_bounds
from cleanroom.room.policy.privacy import BudgetPolicy
from cleanroom.room.store import MetaStore

NOW = datetime(2026, 11, 19, 10, 30, tzinfo=UTC)  # a Thursday in 2026-W47, 2026-Q4
POLICY = BudgetPolicy(epsilon=3.0, period="month", shares={"acme": 1.0, "bank": 1.5})


@pytest.fixture
def ledger(store: MetaStore, audit: AuditLog) -> Ledger:
    return Ledger(store, audit)


def charge(
    ledger: Ledger,
    party: str,
    epsilon: Fraction,
    *,
    policy: BudgetPolicy = POLICY,
    now: datetime = NOW,
    query_id: str = "q",
) -> int:
    return ledger.charge(party, epsilon, policy=policy, query_id=query_id, actor="alice", now=now)


# -- shares and cap -------------------------------------------------------------------


def test_charges_up_to_the_share_succeed_and_the_next_is_refused(ledger: Ledger) -> None:
    first = charge(ledger, "acme", Fraction(1, 2))
    second = charge(ledger, "acme", Fraction(3, 10))
    assert second > first
    with pytest.raises(BudgetExceeded) as refused:
        charge(ledger, "acme", Fraction(1, 2))
    err = refused.value
    message = str(err)
    assert "'acme'" in message  # which party
    assert "asked epsilon 0.5" in message  # how much asked
    assert "0.2 left" in message  # how much left
    assert "/" not in message.split("resets", maxsplit=1)[0]  # no bare fractions
    assert "acme's share of 1" in message  # which limit
    assert "2026-12-01T00:00:00+00:00" in message  # when it resets
    assert (err.party, err.asked, err.left) == ("acme", Fraction(1, 2), Fraction(1, 5))
    assert err.resets_at == datetime(2026, 12, 1, tzinfo=UTC)
    assert isinstance(err, ConflictError)
    assert (err.code, err.status) == ("budget_exhausted", 429)
    assert err.details == {
        "party": "acme",
        "asked_epsilon": 0.5,
        "budget_left": 0.2,
        "limit": err.which,
        "resets_at": "2026-12-01T00:00:00+00:00",
    }
    # what is left can still be spent, to the last bit
    charge(ledger, "acme", Fraction(1, 5))
    assert ledger.status("acme", POLICY, NOW).left == 0
    # other parties are untouched
    charge(ledger, "bank", Fraction(3, 2))


def test_the_collaboration_cap_binds_even_within_each_share(ledger: Ledger) -> None:
    # Shares add up to at most the cap in any one policy, so the cap bites when a
    # policy changes within a period: spend made under the old one still counts.
    before = BudgetPolicy(epsilon=2.0, shares={"acme": 1.0, "carrier": 1.0})
    after = BudgetPolicy(epsilon=1.5, shares={"acme": 1.0, "bank": 0.5})
    charge(ledger, "carrier", Fraction(1), policy=before)
    charge(ledger, "acme", Fraction(1, 4), policy=after)
    with pytest.raises(BudgetExceeded, match=r"collaboration cap of 1\.5") as refused:
        charge(ledger, "acme", Fraction(1, 2), policy=after)  # acme: 3/4 of its 1
    assert refused.value.left == Fraction(1, 4)
    status = ledger.status("acme", after, NOW)
    assert (status.spent, status.share, status.spent_total, status.cap) == (
        Fraction(1, 4),
        Fraction(1),
        Fraction(5, 4),
        Fraction(3, 2),
    )
    assert status.left == Fraction(1, 4)  # min(1 - 1/4, 3/2 - 5/4)
    charge(ledger, "bank", Fraction(1, 4), policy=after)
    assert ledger.status("acme", after, NOW).left == 0
    with pytest.raises(BudgetExceeded):
        charge(ledger, "acme", Fraction(1, 10**9), policy=after)


def test_a_party_without_a_share_gets_nothing(ledger: Ledger) -> None:
    with pytest.raises(BudgetExceeded, match=r"'stranger'.*0 left"):
        charge(ledger, "stranger", Fraction(1, 1000))
    status = ledger.status("stranger", POLICY, NOW)
    assert (status.share, status.left) == (Fraction(0), Fraction(0))


def test_reporters_have_their_own_share(ledger: Ledger) -> None:
    policy = BudgetPolicy(epsilon=2.0, shares={"acme": 1.0, "reporter": 0.5})
    charge(ledger, "reporter", Fraction(1, 2), policy=policy)
    with pytest.raises(BudgetExceeded, match="reporter"):
        charge(ledger, "reporter", Fraction(1, 100), policy=policy)
    assert ledger.status("acme", policy, NOW).left == 1


# -- exact arithmetic -------------------------------------------------------------------


def test_ten_tenths_fill_a_share_of_one_exactly(ledger: Ledger) -> None:
    for i in range(10):
        charge(ledger, "acme", Fraction(1, 10), query_id=f"q{i}")
    status = ledger.status("acme", POLICY, NOW)
    assert status.spent == 1
    assert status.left == 0
    with pytest.raises(BudgetExceeded):
        charge(ledger, "acme", Fraction(1, 10))


def test_policy_decimals_are_read_exactly(ledger: Ledger) -> None:
    # 0.1 + 0.1 + 0.1 > 0.3 in floats; the ledger reads the decimals the author wrote
    policy = BudgetPolicy(epsilon=0.3, shares={"acme": 0.3})
    for _ in range(3):
        charge(ledger, "acme", Fraction(1, 10), policy=policy)
    status = ledger.status("acme", policy, NOW)
    assert (status.cap, status.share, status.left) == (
        Fraction(3, 10),
        Fraction(3, 10),
        Fraction(0),
    )


def test_charges_are_stored_as_exact_fractions(ledger: Ledger, store: MetaStore) -> None:
    charge(ledger, "acme", Fraction(1, 3))
    charge(ledger, "acme", Fraction(1, 7))
    rows = store.connection().execute(
        "SELECT party, period, epsilon_num, epsilon_den, delta FROM budget_charges ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [
        ("acme", "2026-11", 1, 3, 0.0),
        ("acme", "2026-11", 1, 7, 0.0),
    ]
    assert ledger.status("acme", POLICY, NOW).spent == Fraction(10, 21)


@pytest.mark.parametrize("epsilon", [Fraction(0), Fraction(-1, 2), 0.0, float("nan"), -1])
def test_invalid_epsilons_are_refused(ledger: Ledger, epsilon: Fraction) -> None:
    with pytest.raises(ValueError, match="epsilon"):
        charge(ledger, "acme", epsilon)


def test_bad_delta_and_naive_times_are_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="delta"):
        ledger.charge("acme", Fraction(1, 10), policy=POLICY, query_id="q", actor="a", delta=-1e-6)
    with pytest.raises(ValueError, match="timezone"):
        charge(ledger, "acme", Fraction(1, 10), now=datetime(2026, 11, 19, 10, 30))


def test_a_charge_names_exactly_one_thing_it_pays_for(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ledger.charge("acme", Fraction(1, 10), policy=POLICY, actor="a", now=NOW)
    with pytest.raises(ValueError, match="exactly one"):
        ledger.charge(
            "acme", Fraction(1, 10), policy=POLICY, query_id="q", generation=3, actor="a", now=NOW
        )
    assert ledger.charges() == []  # refused before anything was written


def test_charges_are_found_by_what_they_paid_for(ledger: Ledger, audit: AuditLog) -> None:
    q = charge(ledger, "acme", Fraction(1, 10), query_id="q1")
    run = ledger.charge(
        "bank", Fraction(1, 5), policy=POLICY, report_run="r1", actor="sched", now=NOW
    )
    bounds = ledger.charge(
        "bank", Fraction(1, 20), policy=POLICY, generation=7, actor="admin", now=NOW
    )
    ledger.refund(bounds, actor="admin", reason="match failed")
    assert [c.id for c in ledger.charges()] == [q, run, bounds]
    (by_run,) = ledger.charges(report_run="r1")
    assert (by_run.id, by_run.query_id, by_run.generation) == (run, None, None)
    assert by_run.epsilon == Fraction(1, 5) and by_run.standing
    assert [c.id for c in ledger.charges(generation=7)] == [bounds]
    assert [c.id for c in ledger.charges(standing=True)] == [q, run]
    assert [c.id for c in ledger.charges(query_id="q1", standing=True)] == [q]
    assert ledger.parties_since(NOW - timedelta(days=1)) == {"acme", "bank"}
    assert ledger.parties_since(NOW + timedelta(days=1)) == set()
    # the trail names what each charge paid for by the same column names
    paid = [e.details for e in audit.entries(action="budget.charge", limit=10)]
    assert {"report_run": "r1"}.items() <= next(d for d in paid if "report_run" in d).items()
    refunded = audit.entries(action="budget.refund", limit=10)
    assert [e.details["generation"] for e in refunded] == [7]


# -- refunds -----------------------------------------------------------------------------


def test_a_refund_returns_the_budget_once(ledger: Ledger, audit: AuditLog) -> None:
    keep = charge(ledger, "acme", Fraction(1, 2), query_id="q1")
    failed = charge(ledger, "acme", Fraction(1, 2), query_id="q2")
    with pytest.raises(BudgetExceeded):
        charge(ledger, "acme", Fraction(1, 2))
    ledger.refund(failed, actor="alice", reason="DuckDBError")
    assert ledger.status("acme", POLICY, NOW).spent == Fraction(1, 2)
    ledger.refund(failed, actor="alice", reason="retried")  # no-op
    assert ledger.status("acme", POLICY, NOW).spent == Fraction(1, 2)
    charge(ledger, "acme", Fraction(1, 2), query_id="q3")
    assert ledger.status("acme", POLICY, NOW).left == 0
    refunds = audit.entries(action="budget.refund")
    assert len(refunds) == 1
    assert refunds[0].target == "acme"
    assert refunds[0].details == {
        "charge_id": failed,
        "query_id": "q2",
        "epsilon": "1/2",
        "period": "2026-11",
        "reason": "DuckDBError",
    }
    assert keep != failed
    with pytest.raises(NotFoundError):
        ledger.refund(10_000, actor="alice", reason="nothing")


# -- audit -------------------------------------------------------------------------------


def test_every_charge_refund_and_refusal_is_audited(ledger: Ledger, audit: AuditLog) -> None:
    first = charge(ledger, "acme", Fraction(3, 4), query_id="q1")
    with pytest.raises(BudgetExceeded):
        charge(ledger, "acme", Fraction(1, 2), query_id="q2")
    ledger.refund(first, actor="bob", reason="failed")
    entries = audit.entries()
    assert [(e.action, e.outcome, e.actor) for e in entries] == [
        ("budget.charge", "ok", "alice"),
        ("budget.charge", "refused", "alice"),
        ("budget.refund", "ok", "bob"),
    ]
    assert entries[0].target == "acme"
    assert entries[0].details == {
        "charge_id": first,
        "query_id": "q1",
        "epsilon": "3/4",
        "delta": 0.0,
        "period": "2026-11",
        "spent": "3/4",
        "share": "1",
        "spent_total": "3/4",
        "cap": "3",
    }
    assert entries[1].details["query_id"] == "q2"
    assert entries[1].details["epsilon"] == "1/2"
    assert audit.verify().ok


# -- periods -----------------------------------------------------------------------------


def test_a_charge_in_the_previous_month_does_not_count(ledger: Ledger) -> None:
    last_second = datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC)
    charge(ledger, "acme", Fraction(1), now=last_second)
    with pytest.raises(BudgetExceeded, match="2026-11-01T00:00:00"):
        charge(ledger, "acme", Fraction(1, 10), now=last_second)
    first_second = datetime(2026, 11, 1, tzinfo=UTC)
    charge(ledger, "acme", Fraction(1), now=first_second)
    assert ledger.status("acme", POLICY, last_second).spent == 1
    assert ledger.status("acme", POLICY, NOW).spent == 1
    assert ledger.status("acme", POLICY, NOW).spent_total == 1


def test_weekly_budgets_follow_iso_weeks(ledger: Ledger) -> None:
    weekly = BudgetPolicy(epsilon=1.0, period="week", shares={"acme": 1.0})
    sunday = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)
    monday = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    charge(ledger, "acme", Fraction(1), policy=weekly, now=datetime(2026, 11, 16, tzinfo=UTC))
    with pytest.raises(BudgetExceeded, match="2026-W47"):
        charge(ledger, "acme", Fraction(1, 10), policy=weekly, now=sunday)
    charge(ledger, "acme", Fraction(1), policy=weekly, now=monday)
    status = ledger.status("acme", weekly, monday)
    assert (status.period, status.period_start, status.period_end) == (
        "2026-W48",
        "2026-11-23T00:00:00+00:00",
        "2026-11-30T00:00:00+00:00",
    )


def test_quarterly_budgets(ledger: Ledger) -> None:
    quarterly = BudgetPolicy(epsilon=1.0, period="quarter", shares={"acme": 1.0})
    charge(ledger, "acme", Fraction(1, 2), policy=quarterly, now=datetime(2026, 9, 30, tzinfo=UTC))
    charge(ledger, "acme", Fraction(1, 2), policy=quarterly, now=datetime(2026, 10, 1, tzinfo=UTC))
    late_december = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert ledger.status("acme", quarterly, late_december).spent == Fraction(1, 2)
    assert ledger.status("acme", quarterly, datetime(2027, 1, 1, tzinfo=UTC)).spent == 0


@pytest.mark.parametrize(
    ("period", "at", "start", "end", "label"),
    [
        (
            "day",
            datetime(2026, 11, 19, 23, 59, tzinfo=UTC),
            "2026-11-19",
            "2026-11-20",
            "2026-11-19",
        ),
        ("week", NOW, "2026-11-16", "2026-11-23", "2026-W47"),
        ("week", datetime(2027, 1, 1, tzinfo=UTC), "2026-12-28", "2027-01-04", "2026-W53"),
        ("week", datetime(2025, 12, 31, tzinfo=UTC), "2025-12-29", "2026-01-05", "2026-W01"),
        ("month", NOW, "2026-11-01", "2026-12-01", "2026-11"),
        ("month", datetime(2026, 12, 31, 12, tzinfo=UTC), "2026-12-01", "2027-01-01", "2026-12"),
        ("quarter", NOW, "2026-10-01", "2027-01-01", "2026-Q4"),
        ("quarter", datetime(2026, 2, 28, tzinfo=UTC), "2026-01-01", "2026-04-01", "2026-Q1"),
        ("quarter", datetime(2026, 6, 30, tzinfo=UTC), "2026-04-01", "2026-07-01", "2026-Q2"),
        ("year", NOW, "2026-01-01", "2027-01-01", "2026"),
    ],
)
def test_period_bounds(period: str, at: datetime, start: str, end: str, label: str) -> None:
    begins, ends, name = period_bounds(period, at)  # type: ignore[arg-type]
    assert (begins.date().isoformat(), ends.date().isoformat(), name) == (start, end, label)
    assert begins.tzinfo == UTC and ends.tzinfo == UTC
    assert begins <= at < ends
    assert begins.time() == ends.time() == datetime.min.time()


def test_periods_are_utc_calendar_periods() -> None:
    # 23:30 on 30 November in New York is already December in UTC
    evening = datetime(2026, 11, 30, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert period_bounds("month", evening)[2] == "2026-12"
    with pytest.raises(ValueError, match="timezone"):
        period_bounds("month", datetime(2026, 11, 30))


# -- status --------------------------------------------------------------------------------


def test_status_numbers(ledger: Ledger) -> None:
    charge(ledger, "acme", Fraction(1, 4))
    charge(ledger, "bank", Fraction(1, 2))
    charge(ledger, "bank", Fraction(1, 3))
    refunded = charge(ledger, "bank", Fraction(1, 10))
    ledger.refund(refunded, actor="alice", reason="failed")
    charge(ledger, "acme", Fraction(1, 2), now=datetime(2026, 10, 5, tzinfo=UTC))  # not counted
    assert ledger.status("bank", POLICY, NOW) == BudgetStatus(
        period="2026-11",
        period_start="2026-11-01T00:00:00+00:00",
        period_end="2026-12-01T00:00:00+00:00",
        cap=Fraction(3),
        spent_total=Fraction(13, 12),
        share=Fraction(3, 2),
        spent=Fraction(5, 6),
        left=Fraction(2, 3),
    )
    acme = ledger.status("acme", POLICY, NOW)
    assert (acme.spent, acme.left) == (Fraction(1, 4), Fraction(3, 4))


# -- concurrency -----------------------------------------------------------------------------


def test_concurrent_charges_never_overspend(
    ledger: Ledger, store: MetaStore, audit: AuditLog
) -> None:
    policy = BudgetPolicy(epsilon=5.0, shares={"acme": 2.0, "bank": 3.0})
    start = threading.Barrier(50)
    charged: list[int] = []
    refused: list[BudgetExceeded] = []
    other: list[BaseException] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        try:
            start.wait()
            charge_id = charge(ledger, "acme", Fraction(1, 5), policy=policy, query_id=f"q{i}")
            with lock:
                charged.append(charge_id)
        except BudgetExceeded as err:
            with lock:
                refused.append(err)
        except BaseException as err:  # surfaced below
            with lock:
                other.append(err)
        finally:
            store.close()  # this thread's own connection

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert other == []
    assert len(charged) == 10
    assert len(set(charged)) == 10
    assert len(refused) == 40
    assert all(err.left == 0 for err in refused)
    status = ledger.status("acme", policy, NOW)
    assert status.spent == 2
    assert status.left == 0
    rows = store.connection().execute("SELECT count(*) FROM budget_charges").fetchone()[0]
    assert rows == 10
    assert len(audit.entries(action="budget.charge", outcome="ok", limit=1000)) == 10
    assert len(audit.entries(action="budget.charge", outcome="refused", limit=1000)) == 40
    assert audit.verify().ok


# -- Solar Hijri months -------------------------------------------------------------------

JALALI = BudgetPolicy(epsilon=1.0, period="jalali_month", shares={"acme": 1.0})
# 1405-02-01 begins at 00:00 Tehran time (UTC+3:30) on 2026-04-21: 2026-04-20 20:30 UTC.
FARVARDIN_ENDS = datetime(2026, 4, 20, 20, 30, tzinfo=UTC)


def test_a_solar_hijri_month_budget_resets_at_tehran_midnight_on_the_first(
    store: MetaStore, audit: AuditLog
) -> None:
    ledger = Ledger(store, audit, ZoneInfo("Asia/Tehran"))
    with clock.use(clock.SetClock(FARVARDIN_ENDS - timedelta(days=3))) as now:
        ledger.charge("acme", Fraction(1), policy=JALALI, query_id="q1", actor="alice")
        status = ledger.status("acme", JALALI)
        assert (status.period, status.left) == ("1405-01", 0)
        assert status.period_start == "2026-03-20T20:30:00+00:00"  # 1405-01-01 00:00 Tehran
        assert status.period_end == "2026-04-20T20:30:00+00:00"
        now.set(FARVARDIN_ENDS - timedelta(seconds=1))  # 23:59:59 on 31 Farvardin, Tehran
        with pytest.raises(BudgetExceeded) as refused:
            ledger.charge("acme", Fraction(1, 10), policy=JALALI, query_id="q2", actor="alice")
        assert refused.value.resets_at == FARVARDIN_ENDS
        assert "1405-01" in str(refused.value)
        now.set(FARVARDIN_ENDS)  # 00:00 on 1 Ordibehesht: a fresh month
        assert ledger.status("acme", JALALI).period == "1405-02"
        assert ledger.status("acme", JALALI).left == 1
        ledger.charge("acme", Fraction(1), policy=JALALI, query_id="q3", actor="alice")


def test_solar_hijri_months_follow_the_room_zone_and_gregorian_ones_stay_utc() -> None:
    at = datetime(2026, 4, 20, 21, 0, tzinfo=UTC)  # already 1 Ordibehesht in Tehran
    assert period_bounds("jalali_month", at, ZoneInfo("Asia/Tehran"))[2] == "1405-02"
    assert period_bounds("jalali_month", at, ZoneInfo("UTC"))[2] == "1405-01"
    assert period_bounds("month", at, ZoneInfo("Asia/Tehran"))[2] == "2026-04"
    # Esfand of a leap year has 30 days: 1403-12-30 is 2025-03-20.
    start, end, label = period_bounds(
        "jalali_month", datetime(2025, 3, 19, 12, tzinfo=UTC), ZoneInfo("Asia/Tehran")
    )
    assert label == "1403-12" and (end - start) == timedelta(days=30)
