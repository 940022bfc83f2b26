from __future__ import annotations

import io
import math
import tokenize
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from statistics import NormalDist, fmean, variance
from typing import Any

import opendp.prelude as opendp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cleanroom
from cleanroom.room import dp

PACKAGE = Path(cleanroom.__file__).parent
Z95 = NormalDist().inv_cdf(0.975)
# Each statistical check fails a correct implementation with probability ~1e-6
# under the normal approximation (|z| > 5); the skew of a sample variance of
# discrete-Laplace draws at n = 2,000 makes the upper tail heavier, still
# ~1e-5. Six such checks: < 1e-4 per run. A 99.9% interval (z = 3.29) per
# check would fail a correct build several times in a thousand runs.
Z = 5.0
N = 2_000
TRUE_COUNT = 1_234

BAD_EPSILONS: list[Any] = [
    0,
    Fraction(0),
    -1,
    Fraction(-1, 2),
    -0.5,
    0.0,
    float("nan"),
    float("inf"),
    float("-inf"),
]


# -- distributions, computed exactly from their definitions ---------------------


def _moments(weight: Callable[[int], float], reach: int) -> tuple[float, float, float]:
    """(mean, variance, 4th central moment) of a symmetric integer pmf ∝ weight."""
    xs = range(-reach, reach + 1)
    ws = [weight(x) for x in xs]
    total = math.fsum(ws)
    var = math.fsum(w * x * x for w, x in zip(ws, xs, strict=True)) / total
    m4 = math.fsum(w * x**4 for w, x in zip(ws, xs, strict=True)) / total
    return 0.0, var, m4


def _coverage(weight: Callable[[int], float], reach: int, bound: float) -> float:
    xs = range(-reach, reach + 1)
    total = math.fsum(weight(x) for x in xs)
    inside = math.fsum(weight(x) for x in xs if abs(x) <= bound)
    return inside / total


def discrete_laplace_weight(t: float) -> Callable[[int], float]:
    return lambda x: math.exp(-abs(x) / t)


def discrete_gaussian_weight(sigma: float) -> Callable[[int], float]:
    return lambda x: math.exp(-(x * x) / (2 * sigma * sigma))


def discrete_laplace_variance(t: float) -> float:
    q = math.exp(-1 / t)
    return 2 * q / (1 - q) ** 2


def _check_sample(
    noise: list[int], weight: Callable[[int], float], scale: float, bound: float
) -> None:
    reach = math.ceil(60 * scale) + 10
    mean, var, m4 = _moments(weight, reach)
    n = len(noise)

    z_mean = (fmean(noise) - mean) / math.sqrt(var / n)
    assert abs(z_mean) < Z, f"mean {fmean(noise)} is {z_mean:.1f} standard errors from 0"

    # Var(S²) for i.i.d. draws: μ4/n − σ⁴(n−3)/(n(n−1)).
    se_var = math.sqrt(m4 / n - var**2 * (n - 3) / (n * (n - 1)))
    z_var = (variance(noise) - var) / se_var
    assert abs(z_var) < Z, f"variance {variance(noise)} vs {var}: {z_var:.1f} standard errors"

    # The noise is an integer, so the coverage of error95 is a step function of
    # the scale: at least 95%, and checked exactly against the pmf; the sample
    # then has to agree with that exact coverage.
    exact = _coverage(weight, reach, bound)
    assert 0.95 <= exact <= 0.965, f"error95={bound} covers {exact:.4f}, not 95% ± 1.5%"
    hits = sum(abs(x) <= bound for x in noise) / n
    se_hits = math.sqrt(exact * (1 - exact) / n)
    assert abs(hits - exact) < Z * se_hits, f"empirical coverage {hits:.4f} vs exact {exact:.4f}"


# -- releases -------------------------------------------------------------------


def test_values_are_python_ints_in_input_order() -> None:
    exact = [0, 10**12, -5, 3]
    lap = dp.laplace_release(exact, l1_sensitivity=1, epsilon=Fraction(100))
    gau = dp.gaussian_release(exact, l2_sensitivity=0.01, epsilon=Fraction(10), delta=1e-6)
    for release in (lap, gau):
        assert all(type(v) is int for v in release.values)
        assert len(release.values) == len(exact)
        # the noise at these scales is tiny: order is preserved, big values survive
        assert all(abs(v - x) <= 2 for v, x in zip(release.values, exact, strict=True))
    assert lap.delta == 0.0
    assert gau.delta == 1e-6
    assert dp.laplace_release([], l1_sensitivity=1, epsilon=Fraction(1)).values == []


@pytest.mark.parametrize(
    ("sensitivity", "epsilon"),
    [
        (1, Fraction(1, 2)),
        (1, Fraction(1, 100)),  # 1/0.01 rounds to 100.0, whose float map is above 1/100
        (10, Fraction(7, 100)),
        (3, Fraction(1, 3)),
        (7, Fraction(10)),
        (100, Fraction(2)),
        (1, Fraction(123_456_789, 10**12)),
    ],
)
def test_laplace_loss_is_opendps_map_and_never_above_the_request(
    sensitivity: int, epsilon: Fraction
) -> None:
    release = dp.laplace_release([5, 6], l1_sensitivity=sensitivity, epsilon=epsilon)
    assert isinstance(release.epsilon, Fraction)
    assert release.epsilon <= epsilon
    measurement: Any = opendp.m.make_laplace(
        opendp.vector_domain(opendp.atom_domain(T="i64")),
        opendp.l1_distance(T="i64"),
        scale=release.scale,
    )
    assert Fraction(measurement.map(sensitivity)) == release.epsilon
    # calibrated, not wasteful: the scale is sensitivity/epsilon up to float rounding
    assert release.scale == pytest.approx(float(sensitivity / epsilon), rel=1e-12)
    assert release.epsilon == pytest.approx(float(epsilon), rel=1e-12)


@pytest.mark.parametrize(
    ("sensitivity", "epsilon", "delta"),
    [
        (1.0, Fraction(1, 2), 1e-6),
        (math.sqrt(5), Fraction(1, 10), 1e-7),
        (3, Fraction(2), 1e-5),
        (1.0, Fraction(1, 3), 1e-9),
    ],
)
def test_gaussian_loss_is_opendps_map_and_never_above_the_request(
    sensitivity: float, epsilon: Fraction, delta: float
) -> None:
    release = dp.gaussian_release([5, 6], l2_sensitivity=sensitivity, epsilon=epsilon, delta=delta)
    assert release.epsilon <= epsilon
    assert release.delta <= delta
    gaussian = opendp.m.make_gaussian(
        opendp.vector_domain(opendp.atom_domain(T="i64")),
        opendp.l2_distance(T=float),
        scale=release.scale,
    )
    approx: Any = opendp.c.make_fix_delta(opendp.c.make_zCDP_to_approxDP(gaussian), delta)
    eps, fixed = approx.map(float(sensitivity))
    assert Fraction(eps) == release.epsilon
    assert fixed == release.delta
    # the smallest such scale: 0.1% less noise would spend more than asked
    tighter: Any = opendp.c.make_fix_delta(
        opendp.c.make_zCDP_to_approxDP(
            opendp.m.make_gaussian(
                opendp.vector_domain(opendp.atom_domain(T="i64")),
                opendp.l2_distance(T=float),
                scale=release.scale * 0.999,
            )
        ),
        delta,
    )
    assert Fraction(tighter.map(float(sensitivity))[0]) > epsilon


def test_laplace_noise_has_the_discrete_laplace_distribution() -> None:
    releases = [
        dp.laplace_release([TRUE_COUNT], l1_sensitivity=1, epsilon=Fraction(1, 2)) for _ in range(N)
    ]
    scale = releases[0].scale
    assert scale == pytest.approx(2.0)
    bound = releases[0].error95
    assert all(r.scale == scale and r.error95 == bound for r in releases)
    weight = discrete_laplace_weight(scale)
    # the closed form agrees with the pmf that the moments are computed from
    assert _moments(weight, 200)[1] == pytest.approx(discrete_laplace_variance(scale), rel=1e-12)
    _check_sample([r.values[0] - TRUE_COUNT for r in releases], weight, scale, bound)


def test_gaussian_noise_has_the_discrete_gaussian_distribution() -> None:
    releases = [
        dp.gaussian_release([TRUE_COUNT], l2_sensitivity=1.0, epsilon=Fraction(1, 2), delta=1e-6)
        for _ in range(N)
    ]
    scale = releases[0].scale
    bound = releases[0].error95
    weight = discrete_gaussian_weight(scale)
    # OpenDP's scale is the σ of N_Z(0, σ²) ∝ exp(−x²/2σ²); its variance is σ²
    # up to a term in exp(−2π²σ²), nothing at σ ≈ 8.7.
    assert _moments(weight, 1_000)[1] == pytest.approx(scale**2, rel=1e-9)
    _check_sample([r.values[0] - TRUE_COUNT for r in releases], weight, scale, bound)


def test_a_vector_gets_independent_noise_per_cell() -> None:
    # one release of N cells is N independent draws: same distribution checks
    release = dp.laplace_release([TRUE_COUNT] * N, l1_sensitivity=1, epsilon=Fraction(1, 2))
    noise = [v - TRUE_COUNT for v in release.values]
    _check_sample(noise, discrete_laplace_weight(release.scale), release.scale, release.error95)
    assert len(set(noise)) > 10


# -- no other noise source ----------------------------------------------------------

RANDOM_NAMES = {"random", "default_rng", "RandomState", "SystemRandom"}


def _code_names(path: Path) -> set[str]:
    """NAME tokens of a module: code only, not strings (SQL's random()) or comments."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    return {t.string for t in tokens if t.type == tokenize.NAME}


def test_no_module_outside_synth_uses_another_randomness_source() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent)
        if relative.parts[:2] == ("cleanroom", "synth"):
            continue  # synthetic test data, never a release
        if found := _code_names(path) & RANDOM_NAMES:
            offenders.append(f"{relative}: {sorted(found)}")
    assert offenders == [], "noise must come from OpenDP (cleanroom/room/dp.py) only"


def test_only_the_dp_module_imports_opendp() -> None:
    importers = sorted(
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if "opendp" in _code_names(path)
    )
    assert importers == ["cleanroom/room/dp.py"]


# -- error bounds -----------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    sensitivity=st.integers(min_value=1, max_value=100),
    hundredths=st.integers(min_value=1, max_value=200),
    factor=st.integers(min_value=2, max_value=5),
)
def test_laplace_error95_is_linear_in_sensitivity_and_inverse_in_epsilon(
    sensitivity: int, hundredths: int, factor: int
) -> None:
    epsilon = Fraction(hundredths, 100)
    error = dp.expected_error95("laplace", sensitivity, epsilon, None)
    # ln(1/α)·scale up to the integer rounding of a discrete noise
    assert abs(error - math.log(20) * sensitivity / epsilon) <= 1
    # only the ratio matters: k× the sensitivity costs the same as 1/k the epsilon
    assert dp.expected_error95("laplace", sensitivity * factor, epsilon, None) == (
        dp.expected_error95("laplace", sensitivity, epsilon / factor, None)
    )
    bigger = dp.expected_error95("laplace", sensitivity * factor, epsilon, None)
    assert abs(bigger - factor * error) <= 3
    assert dp.expected_error95("laplace", sensitivity, epsilon * factor, None) <= error


@settings(max_examples=40, deadline=None)
@given(
    sensitivity=st.floats(min_value=1, max_value=100),
    epsilon=st.sampled_from([Fraction(1, 100), Fraction(1, 10), Fraction(1, 2), Fraction(2)]),
    factor=st.integers(min_value=2, max_value=5),
)
def test_gaussian_error95_is_linear_in_sensitivity_and_falls_with_epsilon(
    sensitivity: float, epsilon: Fraction, factor: int
) -> None:
    unit = dp.gaussian_release([0], l2_sensitivity=1.0, epsilon=epsilon, delta=1e-6).scale
    error = dp.expected_error95("gaussian", sensitivity, epsilon, 1e-6)
    assert abs(error - Z95 * unit * sensitivity) <= 1
    bigger = dp.expected_error95("gaussian", sensitivity * factor, epsilon, 1e-6)
    assert abs(bigger - factor * error) <= factor + 1
    assert dp.expected_error95("gaussian", sensitivity, epsilon * 2, 1e-6) < error


def test_expected_error95_is_what_a_release_reports() -> None:
    eps = Fraction(3, 10)
    assert dp.expected_error95("laplace", 4, eps, None) == (
        dp.laplace_release([1], l1_sensitivity=4, epsilon=eps).error95
    )
    assert dp.expected_error95("laplace", 4.0, eps, 0.0) == (
        dp.laplace_release([1], l1_sensitivity=4, epsilon=eps).error95
    )
    assert dp.expected_error95("gaussian", 2.5, eps, 1e-6) == (
        dp.gaussian_release([1], l2_sensitivity=2.5, epsilon=eps, delta=1e-6).error95
    )


def test_error95_bounds_are_tight_integers() -> None:
    # P(|X| <= e) >= 95% and P(|X| <= e - 1) < 95%, from the exact pmfs
    for scale_eps in (Fraction(1, 2), Fraction(1, 10), Fraction(2)):
        lap = dp.laplace_release([0], l1_sensitivity=1, epsilon=scale_eps)
        weight = discrete_laplace_weight(lap.scale)
        reach = math.ceil(60 * lap.scale) + 10
        assert _coverage(weight, reach, lap.error95) >= 0.95
        assert _coverage(weight, reach, lap.error95 - 1) < 0.95
        gau = dp.gaussian_release([0], l2_sensitivity=1, epsilon=scale_eps, delta=1e-6)
        weight = discrete_gaussian_weight(gau.scale)
        reach = math.ceil(60 * gau.scale) + 10
        assert _coverage(weight, reach, gau.error95) >= 0.95
        assert _coverage(weight, reach, gau.error95 - 1) < 0.95


# -- split and validation -----------------------------------------------------------


@given(
    numerator=st.integers(min_value=1, max_value=10**6),
    denominator=st.integers(min_value=1, max_value=10**6),
    parts=st.integers(min_value=1, max_value=50),
)
def test_split_is_exact_and_adds_up(numerator: int, denominator: int, parts: int) -> None:
    epsilon = Fraction(numerator, denominator)
    shares = dp.split(epsilon, parts)
    assert len(shares) == parts
    assert all(isinstance(s, Fraction) and s == shares[0] for s in shares)
    assert sum(shares, Fraction(0)) == epsilon


def test_split_examples() -> None:
    assert dp.split(Fraction(1), 3) == [Fraction(1, 3)] * 3
    assert dp.split(Fraction(1, 2), 1) == [Fraction(1, 2)]
    bad_parts: list[Any] = [0, -1, 1.5, True]
    for bad in bad_parts:
        with pytest.raises(ValueError, match="parts"):
            dp.split(Fraction(1), bad)


@pytest.mark.parametrize("epsilon", BAD_EPSILONS, ids=repr)
def test_invalid_epsilons_are_refused(epsilon: Any) -> None:
    with pytest.raises(ValueError, match="epsilon"):
        dp.laplace_release([1], l1_sensitivity=1, epsilon=epsilon)
    with pytest.raises(ValueError, match="epsilon"):
        dp.gaussian_release([1], l2_sensitivity=1.0, epsilon=epsilon, delta=1e-6)
    with pytest.raises(ValueError, match="epsilon"):
        dp.expected_error95("laplace", 1, epsilon, None)
    with pytest.raises(ValueError, match="epsilon"):
        dp.split(epsilon, 2)
    with pytest.raises(ValueError, match="epsilon"):
        dp.as_epsilon(epsilon)


def test_as_epsilon_reads_decimals_exactly() -> None:
    assert dp.as_epsilon(0.1) == Fraction(1, 10)
    assert dp.as_epsilon("1/3") == Fraction(1, 3)
    assert dp.as_epsilon("0.25") == Fraction(1, 4)
    assert dp.as_epsilon(2) == Fraction(2)
    for bad in ("nan", "inf", "abc", "1/0", True):
        with pytest.raises(ValueError, match="epsilon"):
            dp.as_epsilon(bad)


def test_invalid_inputs_are_refused() -> None:
    eps = Fraction(1, 2)
    with pytest.raises(ValueError, match="integer"):
        dp.laplace_release([1.5], l1_sensitivity=1, epsilon=eps)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="boolean"):
        dp.laplace_release([True], l1_sensitivity=1, epsilon=eps)
    with pytest.raises(ValueError, match="range"):
        dp.laplace_release([2**63], l1_sensitivity=1, epsilon=eps)
    for sensitivity in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="l1_sensitivity"):
            dp.laplace_release([1], l1_sensitivity=sensitivity, epsilon=eps)  # type: ignore[arg-type]
    for l2 in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="l2_sensitivity"):
            dp.gaussian_release([1], l2_sensitivity=l2, epsilon=eps, delta=1e-6)
    for delta in (0, 0.0, 1.0, -1e-6, float("nan")):
        with pytest.raises(ValueError, match="delta"):
            dp.gaussian_release([1], l2_sensitivity=1.0, epsilon=eps, delta=delta)
    with pytest.raises(ValueError, match="delta"):
        dp.expected_error95("gaussian", 1.0, eps, None)
    with pytest.raises(ValueError, match="delta"):
        dp.expected_error95("laplace", 1, eps, 1e-6)
    with pytest.raises(ValueError, match="mechanism"):
        dp.expected_error95("exponential", 1, eps, None)  # type: ignore[arg-type]


# -- bounded in time: large Gaussian scales, noise past the cap -----------------


@given(st.floats(min_value=dp.EXACT_GAUSSIAN_ACCURACY_UP_TO / 100, max_value=2e5))
@settings(max_examples=25, deadline=None)
def test_the_closed_form_gaussian_bound_covers_opendps_and_is_at_most_two_wider(
    scale: float,
) -> None:
    exact = max(0, math.ceil(opendp.discrete_gaussian_scale_to_accuracy(scale, alpha=0.05)) - 1)
    bound = dp._gaussian_tail_bound(scale)
    assert exact <= bound <= exact + 2, (scale, exact, bound)


def test_a_gaussian_release_at_a_huge_sensitivity_never_sums_the_distribution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The audit's L2 = 5e7 release ran for minutes in OpenDP's term-by-term accuracy."""
    summed: list[float] = []
    real = opendp.discrete_gaussian_scale_to_accuracy

    def counting(scale: float, alpha: float) -> float:
        summed.append(scale)
        return float(real(scale, alpha=alpha))

    monkeypatch.setattr(dp.dp, "discrete_gaussian_scale_to_accuracy", counting)
    release = dp.gaussian_release(
        [1_000_000, 2_000_000], l2_sensitivity=5e7, epsilon=Fraction(1), delta=1e-6
    )
    assert release.scale > 5e7 and release.error95 == dp._gaussian_tail_bound(release.scale)
    assert all(s <= dp.EXACT_GAUSSIAN_ACCURACY_UP_TO for s in summed)
    expected = dp.expected_error95("gaussian", 5e7, Fraction(1), 1e-6)
    assert expected == release.error95


@pytest.mark.parametrize("mechanism", ["laplace", "gaussian"])
def test_noise_past_the_scale_cap_is_refused_as_the_callers_choice(mechanism: str) -> None:
    delta = 1e-6 if mechanism == "gaussian" else None
    with pytest.raises(dp.NoiseTooLarge) as refused:
        dp.expected_error95(mechanism, 10**12, dp.MIN_EPSILON, delta)  # type: ignore[arg-type]
    assert refused.value.status == 400 and "epsilon" in str(refused.value)
    with pytest.raises(dp.NoiseTooLarge):
        dp.laplace_release([5], l1_sensitivity=10**12, epsilon=dp.MIN_EPSILON)
