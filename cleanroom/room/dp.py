"""Differentially private releases of integer vectors, and nothing else touches OpenDP.

Keeping every noise draw and every privacy-loss statement in one module is what
lets a reviewer check the product's DP claims by reading one file: noise comes
only from OpenDP's samplers (never ``random`` or ``numpy.random``, whose floats
leak through their low bits and whose generators are not cryptographic), and
the epsilon of each release is what OpenDP's privacy map says for the exact
measurement that drew the noise.

Epsilons are exact :class:`~fractions.Fraction` values. OpenDP computes in
floats, rounding outward; a float scale derived from a fraction may therefore
map to a loss a hair above what was asked, so every calibration checks the
map against the exact request and widens the scale by a few ulps when needed.
The reported loss is the map's float converted exactly, so it is never above
the request.

Values are released in 64-bit integers (``i64``): sums of clamped metrics can
pass the 2^31 of OpenDP's default ``int``, where the sampler would saturate.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from statistics import NormalDist
from typing import Any, Literal

import opendp.prelude as dp

from cleanroom.errors import T_, InternalError, UserError
from cleanroom.room.epsilon import Epsilon
from cleanroom.room.policy.privacy import MIN_QUERY_EPSILON

dp.enable_features("contrib")

ALPHA = 0.05
# The smallest epsilon a query may spend (see the policy module, which refuses
# less in a policy too): refused at the edge and in the engine.
MIN_EPSILON = Epsilon.parse(MIN_QUERY_EPSILON)
# The largest noise scale a release may use: past 2^52 floats no longer hold
# every integer, and noise that size makes any aggregate meaningless.
MAX_SCALE = float(2**52)
# OpenDP's discrete Gaussian accuracy sums the distribution term by term: its
# cost grows with the scale (~1 s per 10^6, measured), so a release at L2
# sensitivity 5e7 took minutes. Above this scale the bound is computed in
# closed form (``_gaussian_tail_bound``), which is never below OpenDP's.
EXACT_GAUSSIAN_ACCURACY_UP_TO = 1e4
# Exact aggregates beyond this are refused rather than noised: OpenDP saturates
# at the i64 limits, and a clamped (saturated) answer would be silently biased.
MAX_ABS_VALUE = 2**62
_MAX_NUDGES = 64

Mechanism = Literal["laplace", "gaussian"]
EpsilonLike = Fraction | int | float


class NoiseTooLarge(UserError):
    """The epsilon asked for, at this query's sensitivity, needs noise past ``MAX_SCALE``."""

    code = "noise_too_large"


@dataclass(frozen=True)
class Release:
    """Noisy integers with the parameters a reader needs to interpret them."""

    values: list[int]
    scale: float
    error95: float
    epsilon: Fraction
    delta: float


# -- public API ---------------------------------------------------------------


def as_epsilon(value: EpsilonLike | str) -> Epsilon:
    """The exact epsilon for a value from a policy, a request or the ledger.

    Floats are read through their shortest decimal form (``0.1`` is ``1/10``),
    because they come from YAML or JSON where the author wrote a decimal;
    reading the binary expansion instead would charge 0.1000000000000000055….
    Zero, negatives, NaN and infinities are refused: a zero or negative loss
    would let a release through without paying for it.
    """
    try:
        return Epsilon.positive(value)
    except ValueError as err:
        if "negative" in str(err):
            raise ValueError(f"epsilon must be positive, not {value}") from None
        raise


def split(epsilon: EpsilonLike, parts: int) -> list[Epsilon]:
    """Equal shares of a query's epsilon, one per measurement (basic composition).

    Exact, so the shares add back to precisely what the ledger charged.
    """
    eps = as_epsilon(epsilon)
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise ValueError(f"parts must be a positive integer, not {parts!r}")
    return [eps / parts] * parts


def laplace_release(exact: Sequence[int], *, l1_sensitivity: int, epsilon: Fraction) -> Release:
    """Vector discrete Laplace: pure epsilon-DP for integer counts and sums.

    ``l1_sensitivity`` is how much one person can move the whole vector in L1
    (the sum of their contributions over every cell), after contribution bounds.
    """
    values = _integers(exact)
    sensitivity = _l1(l1_sensitivity)
    scale, spent = _laplace_calibration(sensitivity, as_epsilon(epsilon))
    noisy = _laplace(scale)(values)
    return Release(
        values=_as_ints(noisy),
        scale=scale,
        error95=_laplace_error95(scale),
        epsilon=spent,
        delta=0.0,
    )


def gaussian_release(
    exact: Sequence[int], *, l2_sensitivity: float, epsilon: Fraction, delta: float
) -> Release:
    """Vector discrete Gaussian, accounted in zCDP and stated as (epsilon, delta).

    Worth its delta when one person touches many cells: its scale follows the
    L2 sensitivity (sqrt of the cells) where Laplace follows the L1 (the cells).
    """
    values = _integers(exact)
    sensitivity = _l2(l2_sensitivity)
    eps, fixed_delta = as_epsilon(epsilon), _delta(delta)
    scale, spent, spent_delta = _gaussian_calibration(sensitivity, eps, fixed_delta)
    noisy = _gaussian(scale)(values)
    return Release(
        values=_as_ints(noisy),
        scale=scale,
        error95=_gaussian_error95(scale),
        epsilon=spent,
        delta=spent_delta,
    )


def expected_error95(
    mechanism: Mechanism, sensitivity: float, epsilon: Fraction, delta: float | None
) -> float:
    """The error95 a release would carry, for dry runs: same calibration, no noise drawn."""
    eps = as_epsilon(epsilon)
    if mechanism == "laplace":
        if delta:
            raise ValueError("delta applies to the gaussian mechanism only")
        scale, _ = _laplace_calibration(_l1(sensitivity), eps)
        return _laplace_error95(scale)
    if mechanism == "gaussian":
        if delta is None:
            raise ValueError("the gaussian mechanism needs a delta")
        scale, _, _ = _gaussian_calibration(_l2(sensitivity), eps, _delta(delta))
        return _gaussian_error95(scale)
    raise ValueError(f"unknown mechanism {mechanism!r}; expected 'laplace' or 'gaussian'")


# -- calibration --------------------------------------------------------------


@lru_cache(maxsize=1024)
def _laplace(scale: float) -> Any:
    """The vector measurement for one scale (built once: construction costs ~1 ms)."""
    return dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale=scale
    )


@lru_cache(maxsize=1024)
def _gaussian(scale: float) -> Any:
    """See :func:`_laplace`."""
    return dp.m.make_gaussian(
        dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T=float), scale=scale
    )


def _gaussian_approx(scale: float, delta: float) -> Any:
    return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(_gaussian(scale)), delta)


@lru_cache(maxsize=1024)
def _laplace_calibration(sensitivity: int, epsilon: Fraction) -> tuple[float, Fraction]:
    """The smallest float scale (to a few ulps) whose map is within ``epsilon``, and that map.

    Cached: a scale depends only on (sensitivity, epsilon), and queries repeat them.
    """
    start = _finite_scale(Fraction(sensitivity) / epsilon)

    def loss(scale: float) -> tuple[Fraction, float]:
        return Fraction(_laplace(scale).map(sensitivity)), 0.0

    scale, spent, _ = _nudge_until_within(start, loss, epsilon, 0.0)
    return scale, spent


@lru_cache(maxsize=256)
def _unit_gaussian_scale(epsilon: Fraction, delta: float) -> float:
    """Scale for an L2 sensitivity of 1; other sensitivities scale it linearly.

    The search costs ~150 ms (each step evaluates the zCDP→(ε, δ) conversion),
    so it runs once per (epsilon, delta) and not once per sensitivity.
    """
    try:
        found = dp.binary_search_param(
            lambda s: _gaussian_approx(s, delta), d_in=1.0, d_out=(float(epsilon), delta)
        )
    except (ValueError, dp.OpenDPException) as err:
        raise ValueError(
            f"no gaussian noise scale meets epsilon={epsilon} (≈{float(epsilon):.3g}) "
            f"with delta={delta}: {err}"
        ) from None
    return float(found)


@lru_cache(maxsize=1024)
def _gaussian_calibration(
    sensitivity: float, epsilon: Fraction, delta: float
) -> tuple[float, Fraction, float]:
    # The zCDP loss (sensitivity/scale)²/2 is scale-invariant, so the unit scale
    # times the sensitivity is the smallest scale up to float rounding; the
    # exact check below settles the rounding.
    start = _finite_scale(Fraction(sensitivity) * Fraction(_unit_gaussian_scale(epsilon, delta)))

    def loss(scale: float) -> tuple[Fraction, float]:
        eps, spent_delta = _gaussian_approx(scale, delta).map(sensitivity)
        return Fraction(eps), float(spent_delta)

    return _nudge_until_within(start, loss, epsilon, delta)


def _nudge_until_within(
    scale: float,
    loss: Callable[[float], tuple[Fraction, float]],
    epsilon: Fraction,
    delta: float,
) -> tuple[float, Fraction, float]:
    for attempt in range(_MAX_NUDGES):
        spent, spent_delta = loss(scale)
        if spent <= epsilon and spent_delta <= delta:
            return scale, spent, spent_delta
        scale += math.ulp(scale) * 2**attempt
    raise InternalError(f"could not calibrate a noise scale within epsilon={epsilon}")


@lru_cache(maxsize=1024)
def _laplace_error95(scale: float) -> float:
    # OpenDP's accuracy a satisfies P[|noise| >= a] <= alpha for real a; the noise
    # is an integer, so |noise| <= floor(a) holds with probability >= 1 - alpha
    # (OpenDP: "you can take the floor without affecting the coverage").
    return float(math.floor(dp.discrete_laplacian_scale_to_accuracy(scale, alpha=ALPHA)))


@lru_cache(maxsize=1024)
def _gaussian_error95(scale: float) -> float:
    # OpenDP returns i + 1 for the smallest integer i with P[|noise| <= i] >= 1 - alpha,
    # i.e. a bound for |noise| < a. Reporting i keeps "<=" exact and the bound tight.
    if scale > EXACT_GAUSSIAN_ACCURACY_UP_TO:
        return _gaussian_tail_bound(scale)
    accuracy = dp.discrete_gaussian_scale_to_accuracy(scale, alpha=ALPHA)
    return float(max(0, math.ceil(accuracy) - 1))


def _gaussian_tail_bound(scale: float) -> float:
    """An integer i with P[|noise| <= i] >= 1 - ALPHA for the discrete Gaussian, in O(1).

    For X ~ N_Z(0, s^2): the normalizer sum_k exp(-k^2/2s^2) is at least
    s*sqrt(2*pi) (Poisson summation: the other terms are positive), and the
    tail sum over k >= i+1 of a decreasing function is at most the integral
    from i. So P[|X| >= i+1] <= erfc(i / (s*sqrt(2))) = 2*(1 - Phi(i/s)), at
    most ALPHA once i >= s * Phi^-1(1 - ALPHA/2). A relative margin of 1e-12
    covers float rounding; the result is then never below OpenDP's exact
    figure and at most one or two above it (checked in the tests where both
    are computable).
    """
    z = NormalDist().inv_cdf(1 - ALPHA / 2)
    return float(math.ceil(scale * z * (1 + 1e-12)))


# -- validation ---------------------------------------------------------------


def _integers(exact: Sequence[int]) -> list[int]:
    out: list[int] = []
    for i, value in enumerate(exact):
        if isinstance(value, bool):
            raise ValueError(f"value {i} is a boolean, not an integer")
        try:
            number = operator.index(value)
        except TypeError:
            raise ValueError(f"value {i} must be an integer, not {type(value).__name__}") from None
        if abs(number) > MAX_ABS_VALUE:
            raise ValueError(f"value {i} is out of range for a noisy release (|x| > 2^62)")
        out.append(number)
    return out


def _l1(sensitivity: float) -> int:
    if isinstance(sensitivity, bool):
        raise ValueError("l1_sensitivity must be a positive integer, not a boolean")
    if isinstance(sensitivity, float) and sensitivity.is_integer():
        sensitivity = int(sensitivity)
    if not isinstance(sensitivity, int) or sensitivity < 1:
        raise ValueError(f"l1_sensitivity must be a positive integer, not {sensitivity!r}")
    return sensitivity


def _l2(sensitivity: float) -> float:
    if isinstance(sensitivity, bool) or not isinstance(sensitivity, int | float):
        raise ValueError(f"l2_sensitivity must be a positive number, not {sensitivity!r}")
    value = float(sensitivity)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"l2_sensitivity must be positive and finite, not {sensitivity!r}")
    return value


def _delta(delta: float) -> float:
    if isinstance(delta, bool) or not isinstance(delta, int | float):
        raise ValueError(f"delta must be a number, not {delta!r}")
    value = float(delta)
    if not (math.isfinite(value) and 0 < value < 1):
        raise ValueError(f"delta must be strictly between 0 and 1, not {delta!r}")
    return value


def _finite_scale(scale: Fraction) -> float:
    try:
        value = float(scale)
    except OverflowError:
        value = math.inf
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"epsilon is too small or too large for a noise scale ({scale})")
    if value > MAX_SCALE:
        raise NoiseTooLarge(
            T_(
                "this epsilon needs a noise scale of %(value)s at this query's "
                "sensitivity, over the room's limit of %(max_scale)s: the answer would "
                "be noise; spend a larger epsilon or tighten the bounds",
                value=format(value, ".3g"),
                max_scale=format(MAX_SCALE, ".3g"),
            )
        )
    return value


def _as_ints(noisy: Any) -> list[int]:
    return [int(v) for v in noisy]


# -- private quantiles (cleanroom.room.bounds: per-person bounds chosen at match time) ---


@lru_cache(maxsize=64)
def quantile_measurement(grid: tuple[int, ...], quantile: float, epsilon: float) -> dp.Measurement:
    """OpenDP's private quantile over ``grid``, with the least noise that costs ≤ ``epsilon``.

    Its input is one integer per person (symmetric distance: one person added
    or removed changes one element); OpenDP's own privacy map sets the scale
    (found by a binary search, so the measurement is kept for the next match).
    """
    space = dp.vector_domain(dp.atom_domain(T=int)), dp.symmetric_distance()

    def make(scale: float) -> dp.Measurement:
        return dp.m.make_private_quantile(
            *space, dp.max_divergence(), candidates=list(grid), alpha=quantile, scale=scale
        )

    return dp.binary_search_chain(make, d_in=1, d_out=epsilon)


def private_quantile(
    values: Sequence[int], grid: Sequence[int], quantile: float, epsilon: float
) -> int:
    """OpenDP's private quantile of ``values`` over ``grid``, at most ``epsilon`` (pure DP).

    One value per person (symmetric distance 1). The noise scale is the
    smallest one OpenDP's own privacy map puts at or under ``epsilon``.
    """
    measurement = quantile_measurement(tuple(grid), quantile, epsilon)
    top = grid[-1] + 1  # values above the grid score alike: cap them, the answer is the same
    return int(measurement([min(int(v), top) for v in values]))
