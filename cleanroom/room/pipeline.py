"""The one release pipeline: declared measurements → epsilon split → OpenDP noise → answer.

SQL queries and every template release the same way. Before any data is read
a query declares its *measurements*: vectors of exact values, each with one
person's largest effect on it (:mod:`cleanroom.room.sensitivity`), and — when
its per-person bounds can remove anything — a :class:`Cut` that measures how
much they removed. The pipeline then

1. splits the query's exact epsilon (:data:`ANSWER_SHARE` to the answer's
   measurements in equal parts, the rest to the cut's two measurements) and
   its delta (equally over every measurement): basic composition, so the parts
   add back to exactly what the ledger charged;
2. noises each vector with OpenDP (:mod:`cleanroom.room.dp`), calibrated to its
   L1 (Laplace) or L2 (Gaussian) sensitivity;
3. hands the noisy vectors, keyed by the measurement *objects* the query
   declared (never by a name rebuilt elsewhere), to the query's own
   post-processing, and turns the cut's into the disclosure every result
   carries (:func:`disclose`).

The split. A cut-disclosing query spends 9/10 of its epsilon on the answer
and 1/10 on the cut (1/20 on the rows kept and cut, 1/20 on the persons
affected). The answer's noise grows by 1/9 (its error bound ~11% wider); in
exchange the analyst learns whether the answer is a truncated one, which at
the default bounds moves totals by far more than the noise (a third of all
rows, measured on a four-brand group). A query whose bounds cannot cut
anything (every person counts at most once per cell by construction) spends
everything on the answer and says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from fractions import Fraction
from typing import Any, Literal, Protocol, TypeVar

from cleanroom.room import dp, sensitivity
from cleanroom.room.epsilon import Epsilon, total
from cleanroom.room.policy.privacy import PrivacyPolicy
from cleanroom.room.sensitivity import Contribution

ANSWER_SHARE = Fraction(9, 10)
# Each person's excess over a bound is counted up to this many times the bound:
# the released cut is then a lower bound of what was removed (said in the result).
CUT_CAP_FACTOR = 10

Unit = Literal["rows", "groups", "pairs", "amount"]


class Measured(Protocol):
    """What the pipeline needs of a measurement: one person's largest effect on it."""

    @property
    def l1(self) -> float:
        """See :mod:`cleanroom.room.sensitivity`."""
        ...

    @property
    def l2(self) -> float:
        """See :mod:`cleanroom.room.sensitivity`."""
        ...


M = TypeVar("M", bound=Measured)


@dataclass(frozen=True, eq=False)
class Vector:
    """A measurement of the pipeline's own (the cut's): a name for people, a sensitivity."""

    name: str
    contribution: Contribution

    @property
    def l1(self) -> float:
        """See :mod:`cleanroom.room.sensitivity`."""
        return self.contribution.l1

    @property
    def l2(self) -> float:
        """See :mod:`cleanroom.room.sensitivity`."""
        return self.contribution.l2


@dataclass(frozen=True, eq=False)
class Cut:
    """What a query's per-person bound removed, measured as two noisy vectors.

    ``volume`` is ``[kept, cut]``: the units each person kept (at most
    ``bound``) and their excess over the bound counted up to ``cap`` — one
    person moves it by at most ``bound + cap``. ``persons`` is the number of
    persons over the bound (one person moves it by one).
    """

    unit: Unit
    bound: int
    cap: int
    volume: Vector = field(init=False)
    persons: Vector = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "volume", Vector("cut", sensitivity.cut_volume(self.bound, self.cap))
        )
        object.__setattr__(self, "persons", Vector("cut_persons", sensitivity.once_per_cell(1)))

    @classmethod
    def of(cls, unit: Unit, bound: int) -> Cut:
        """The cut of a bound, its excess counted up to :data:`CUT_CAP_FACTOR` times the bound."""
        return cls(unit, bound, CUT_CAP_FACTOR * bound)


@dataclass(frozen=True)
class CutCounts:
    """The exact figures a cut measures (from the query's own bounded SQL)."""

    kept: int
    cut: int  # each person's excess counted up to the cap
    persons: int


@dataclass(frozen=True)
class Split:
    """One query's epsilon and delta, per measurement."""

    epsilon: dict[Measured, Epsilon]
    delta: float  # each measurement's

    @property
    def total(self) -> Epsilon:
        """What the parts add up to (exactly the query's epsilon)."""
        return total(list(self.epsilon.values()))


def split(
    epsilon: Fraction, answer: Sequence[Measured], cut: Cut | None, privacy: PrivacyPolicy
) -> Split:
    """The documented split (see the module docstring)."""
    eps = dp.as_epsilon(epsilon)
    if not answer:
        raise ValueError("a query releases at least one measurement")
    measured: list[Measured] = list(answer)
    shares: dict[Measured, Epsilon] = {}
    if cut is None:
        for m, part in zip(answer, dp.split(eps, len(answer)), strict=True):
            shares[m] = part
    else:
        for m, part in zip(answer, dp.split(eps.share(ANSWER_SHARE), len(answer)), strict=True):
            shares[m] = part
        rest = eps - eps.share(ANSWER_SHARE)
        shares[cut.volume], shares[cut.persons] = dp.split(rest, 2)
        measured += [cut.volume, cut.persons]
    return Split(shares, (privacy.delta or 0.0) / len(measured))


def noise(
    m: Measured, values: Sequence[int], epsilon: Fraction, privacy: PrivacyPolicy, delta: float
) -> dp.Release:
    """One vector through the policy's mechanism, calibrated to its L1 or L2 sensitivity."""
    if privacy.mechanism == "gaussian":
        return dp.gaussian_release(values, l2_sensitivity=m.l2, epsilon=epsilon, delta=delta)
    return dp.laplace_release(values, l1_sensitivity=math.ceil(m.l1), epsilon=epsilon)


def expected_error95(m: Measured, epsilon: Fraction, privacy: PrivacyPolicy, delta: float) -> float:
    """The 95% bound a release of ``m`` would carry: same calibration, no noise drawn."""
    s = m.l2 if privacy.mechanism == "gaussian" else math.ceil(m.l1)
    return dp.expected_error95(privacy.mechanism, s, epsilon, delta if privacy.delta else None)


@dataclass(frozen=True)
class Noisy:
    """Every measurement released, the cut disclosed, and what it all cost."""

    releases: dict[Measured, dp.Release]
    cut: dict[str, Any]
    epsilon: Epsilon
    delta: float

    def __getitem__(self, m: Measured) -> dp.Release:
        """The release of one declared measurement (by the object, not a name)."""
        return self.releases[m]


def release(
    answer: Mapping[M, Sequence[int]],
    cut: Cut | None,
    counts: CutCounts | None,
    *,
    epsilon: Fraction,
    privacy: PrivacyPolicy,
) -> Noisy:
    """Noise every declared vector of ``answer`` and the cut; disclose the cut.

    Everything a caller does with the result is post-processing.
    """
    plan = split(epsilon, list(answer), cut, privacy)
    releases: dict[Measured, dp.Release] = {
        m: noise(m, values, plan.epsilon[m], privacy, plan.delta) for m, values in answer.items()
    }
    disclosure = disclose(None, None, None)
    if cut is not None:
        c = counts or CutCounts(0, 0, 0)
        volume = noise(cut.volume, [c.kept, c.cut], plan.epsilon[cut.volume], privacy, plan.delta)
        persons = noise(cut.persons, [c.persons], plan.epsilon[cut.persons], privacy, plan.delta)
        releases[cut.volume], releases[cut.persons] = volume, persons
        disclosure = disclose(cut, volume, persons)
    spent = total([r.epsilon for r in releases.values()])
    return Noisy(releases, disclosure, spent, sum(r.delta for r in releases.values()))


def preview(
    answer: Sequence[Measured], cut: Cut | None, *, epsilon: Fraction, privacy: PrivacyPolicy
) -> tuple[dict[Measured, float], dict[str, Any]]:
    """Per measurement, its expected 95% bound; and how the cut would be disclosed."""
    plan = split(epsilon, answer, cut, privacy)
    errors = {m: expected_error95(m, plan.epsilon[m], privacy, plan.delta) for m in answer}
    if cut is None:
        return errors, {"possible": False, "epsilon_share": "0"}
    volume = expected_error95(cut.volume, plan.epsilon[cut.volume], privacy, plan.delta)
    persons = expected_error95(cut.persons, plan.epsilon[cut.persons], privacy, plan.delta)
    share = plan.epsilon[cut.volume] + plan.epsilon[cut.persons]
    return errors, {
        "possible": True,
        "unit": cut.unit,
        "bound": cut.bound,
        "cap": cut.cap,
        "epsilon_share": str(1 - ANSWER_SHARE),
        "epsilon": str(share),
        "cut_error95": round(volume, 2),
        "persons_error95": round(persons, 2),
    }


def disclose(
    cut: Cut | None, volume: dp.Release | None, persons: dp.Release | None
) -> dict[str, Any]:
    """The cut as a result shows it (post-processing of the two noisy vectors).

    ``material`` is whether the noisy cut is above its own 95% bound, i.e.
    distinguishable from no cut at all; ``share`` is the cut over kept + cut,
    with an interval from both numbers' 95% bounds. The cut counts each
    person's excess only up to ``cap``, so it is a lower bound of what was
    removed (``at_least``).
    """
    if cut is None or volume is None or persons is None:
        return {"possible": False, "material": False}
    kept, removed = volume.values
    e = volume.error95
    share = _share(kept, removed, e)
    return {
        "possible": True,
        "unit": cut.unit,
        "bound": cut.bound,
        "cap": cut.cap,
        "kept": {"value": max(0, kept), "error95": round(e, 2)},
        "cut": {"value": max(0, removed), "error95": round(e, 2), "at_least": True},
        "persons": {"value": max(0, persons.values[0]), "error95": round(persons.error95, 2)},
        "share": share,
        "material": removed - e > 0,
    }


def _share(kept: int, removed: int, e: float) -> dict[str, float | None]:
    """Cut / (kept + cut), and its range when each end moves within its 95% bound."""
    kept_hi, cut_lo, cut_hi, kept_lo = kept + e, max(0.0, removed - e), removed + e, kept - e

    def of(c: float, k: float) -> float | None:
        return None if c + k <= 0 else min(1.0, max(0.0, c / (c + max(0.0, k))))

    def rounded(x: float, mode: str) -> float:  # four decimals; the interval outwards
        return float(Decimal(x).quantize(Decimal("0.0001"), rounding=mode))

    value = of(max(0, removed), max(0, kept))
    low, high = of(cut_lo, kept_hi), of(cut_hi, kept_lo)
    return {
        "value": None if value is None else round(value, 4),
        "low": 0.0 if low is None else rounded(low, ROUND_FLOOR),
        "high": 1.0 if high is None else rounded(high, ROUND_CEILING),
    }
