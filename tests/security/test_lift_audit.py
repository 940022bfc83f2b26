"""The outside audit of ``lift``, reproduced: measured epsilon against the claim.

The audit found an epsilon lower bound of 5.4 against a claim of 1.0, under
Laplace and Gaussian noise alike, with a metric whose lower bound is negative
(refunds): one person's spend was clamped from above only, and the Gaussian
noise was calibrated to √cap. Here D is a generated room and D' adds one
person exposed to the treatment with 3,000 refunds far below the bound (and a
second neighbour: 3,000 purchases far above it). The exact vectors come from
the template's own SQL, each release from the template's own release path
(OpenDP noise, then the answer's post-processing), and the attacker's
statistic is the treatment's released spend per person. The measured lower
bound must stay under the query's epsilon; a spend vector declared with the
old L2 (√cap) must be caught, so the audit has the power to fail.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from fractions import Fraction

import pytest

from cleanroom.room.analyses import prepare_template
from cleanroom.room.analyses.journey import Cell, Vector
from cleanroom.room.analyses.lift import CampaignLift
from cleanroom.room.backends.duckdb import DuckDBCursor
from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.policy.privacy import PrivacyPolicy
from cleanroom.room.sensitivity import Contribution
from tests.security.audit import epsilon_lower_bound
from tests.security.test_privacy_audit import record
from tests.unit.room.journey_room import (
    PERIOD,
    REFUNDS,
    START,
    TABLES,
    Event,
    Exposure,
    load,
    ordinary,
    policy,
)

SAMPLES = 2000  # releases a side
# spend_cap; the metric's bounds are REFUNDS (negative lower bound). Small, because the
# discrete Gaussian's 95% bound costs time in proportion to its scale (not what is audited);
# the old calibration's scale is √cap, so it is audited at a large cap.
CAP, OLD_CAP = 300, 20_000
EPSILON = Fraction(1)
WHALE = 1_000_000
WINDOW = "1"  # days: few ordinary persons buy that soon, so the spend is mostly the noise

Exact = dict[str, dict[Cell, int]]


def lift(p: CollaborationPolicy, cap: int = CAP) -> CampaignLift:
    params = {
        "outcome": "beta.events",
        "metric": "amount",
        "spend_cap": str(cap),
        "window_days": WINDOW,
        **PERIOD,
    }
    prepared = prepare_template("lift", params, policy=p, party="reporter")
    assert isinstance(prepared, CampaignLift)
    return prepared


def whale(amount: float) -> tuple[list[Event], list[Exposure]]:
    """One treated person with 3,000 purchases (or refunds) of ``amount`` within the window."""
    at = START + dt.timedelta(days=10)
    events = [
        Event(WHALE, "beta", at + dt.timedelta(seconds=10 * i), "app", amount) for i in range(3000)
    ]
    return events, [Exposure(WHALE, at, "treatment")]


@pytest.fixture(scope="module")
def exact() -> dict[tuple[int, str], Exact]:
    """Lift's exact vectors on D and its two neighbours, per cap (the template's own SQL)."""
    assert REFUNDS[0] < 0
    events, exposures = ordinary(11, persons=300)
    rooms = {"D": load(events, exposures)}
    for name, amount in (("refunds", -1e9), ("purchases", 1e9)):
        extra_events, extra_exposures = whale(amount)
        rooms[name] = load(events + extra_events, exposures + extra_exposures)
    return {
        (cap, name): lift(policy(), cap).exact(DuckDBCursor(con.cursor()), TABLES)
        for cap in (CAP, OLD_CAP)
        for name, con in rooms.items()
    }


def statistic(
    prepared: CampaignLift, exact: Exact, privacy: PrivacyPolicy, samples: int = SAMPLES
) -> list[float]:
    """The treatment's released spend, over many releases of one exact answer.

    Released spend per person times released persons: the noisy spend itself
    (as long as the ratio is not clamped), the sharpest thing the answer shows.
    """
    out = []
    for _ in range(samples):
        released = prepared.release(exact, EPSILON, privacy)
        assert released.epsilon <= EPSILON  # what is charged covers what is spent
        treated = [r for r in released.rows if r["arm"] == "treatment"]
        value = treated[0]["spend_per_person"]["value"] if treated else None
        out.append(0.0 if value is None else float(value) * treated[0]["persons"]["value"])
    return out


@pytest.mark.parametrize(
    ("mechanism", "neighbour"),
    # Gaussian on the refunds side only: the finding's side, and its releases cost the most.
    [("laplace", "refunds"), ("laplace", "purchases"), ("gaussian", "refunds")],
)
def test_lift_audited_epsilon_stays_under_the_claim(
    exact: dict[tuple[int, str], Exact], mechanism: str, neighbour: str
) -> None:
    p = policy(mechanism)
    assert p.privacy is not None
    prepared = lift(p)
    d, d_prime = exact[(CAP, "D")], exact[(CAP, neighbour)]
    moved = d_prime["spend"][("treatment",)] - d["spend"][("treatment",)]
    assert abs(moved) == CAP  # the whale moves the spend by the whole cap: the worst case
    without = statistic(prepared, d, p.privacy)
    with_ = statistic(prepared, d_prime, p.privacy)
    audited = epsilon_lower_bound(without, with_, delta=p.privacy.delta or 0.0)
    assert audited <= float(EPSILON), (mechanism, neighbour, audited)
    record(f"lift spend/{mechanism}, {neighbour} whale", audited, float(EPSILON))


@dataclass(frozen=True)
class RootCapLift(CampaignLift):
    """The old calibration: the spend vector's L2 taken as √cap."""

    def vectors(self) -> list[Vector]:
        old = Contribution(cells=self.spend_cap, per_cell=1)  # l1 = cap, l2 = √cap
        return [
            v if v.name != "spend" else Vector("spend", v.cells, old) for v in super().vectors()
        ]


def test_the_audit_catches_the_old_root_cap_calibration(
    exact: dict[tuple[int, str], Exact],
) -> None:
    p = policy("gaussian")
    assert p.privacy is not None
    fixed = lift(p, OLD_CAP)
    broken = RootCapLift(**{f: getattr(fixed, f) for f in fixed.__dataclass_fields__})
    assert math.isclose(broken.vectors()[2].l2, math.sqrt(OLD_CAP))
    without = statistic(broken, exact[(OLD_CAP, "D")], p.privacy, samples=500)  # ample power
    with_ = statistic(broken, exact[(OLD_CAP, "refunds")], p.privacy, samples=500)
    audited = epsilon_lower_bound(without, with_, delta=p.privacy.delta or 0.0)
    assert audited > float(EPSILON), audited
    record("lift spend/gaussian, L2 = sqrt(cap) as before (must fail)", audited, float(EPSILON))
