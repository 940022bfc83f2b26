"""Who the synthetic customers are: persona, brands, active windows, what each brand has on file.

Personas (shares of all persons):

- ``loyal`` (35%): 3-5 brands, active the whole six months, 1.5x the usual rate.
- ``converter`` (7%): app-to-store: starts at okala on day t0 (uniform in days 0-120),
  first ofogh purchase t0 + lag days later (lag 1 + Gamma(1.5, 10), at most 60 days);
  both first events are pinned to those days; 0-1 further brand.
- ``churner`` (18%): 2-3 brands, active from 1 January until a churn day (uniform in
  days 30-150), nothing after.
- ``single`` (20%): exactly one brand, all period.
- ``newcomer`` (20%): 1-3 brands, joins late (day 90-170, each brand up to 10 days
  later), first event pinned to the joining day.

Brands are drawn without replacement with weights (``MULTI_WEIGHTS``; one-brand users
lean to the smaller brands, ``SINGLE_WEIGHTS``). Overlap of two brands is measured as
the overlap coefficient |A∩B| / min(|A|, |B|). Over persons it is 45-58% for every pair
(ofogh+okala highest, from the converters); the clean room, which cannot link a card-only
ofogh record or an e-mail-only filimo record to a phone, sees 32-53%.

Every member of a brand has at least one event there. What a brand has on file is
drawn per customer record: ofogh a card (and the mobile for 85%), okala a mobile (and
an e-mail for 70%), filimo an e-mail (and the mobile for 60%), tapsi and ozone the
mobile. 1% of records hold one identifier that no normalizer can parse; that
identifier is then broken in every row of the record.

The campaign enrolls ~10% of ozone customers who were customers before their exposure
day (a February day), half to treatment; treatment lifts ofogh activity afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cleanroom.synth.brands import CITY_WEIGHTS, PARTIES, STORES_PER_CITY
from cleanroom.synth.sampling import Categorical

PERIOD_START = np.datetime64("2026-01-01T00:00:00", "s")
PERIOD_DAYS = 181  # 2026-01-01 up to, not including, 2026-07-01
PERSONAS: tuple[str, ...] = ("loyal", "converter", "churner", "single", "newcomer")
PERSONA_SHARES: tuple[float, ...] = (0.35, 0.07, 0.18, 0.20, 0.20)
LOYAL, CONVERTER, CHURNER, SINGLE, NEWCOMER = range(5)
RATE_FACTOR: tuple[float, ...] = (1.5, 1.0, 1.0, 1.0, 1.0)

PHONE, EMAIL, CARD = 1, 2, 4
"""Bits of an identifier-type mask."""
OFOGH, OKALA, FILIMO, TAPSI, OZONE = range(len(PARTIES))
# Per party: identifier types always on file, the optional one, and how often it is there.
ON_FILE: tuple[tuple[int, int, float], ...] = (
    (CARD, PHONE, 0.85),
    (PHONE, EMAIL, 0.70),
    (EMAIL, PHONE, 0.60),
    (PHONE, 0, 0.0),
    (PHONE, 0, 0.0),
)
BROKEN_RATE = 0.01
ENROL_RATE = 0.115  # of eligible customers: ~10% of all ozone customers
EXPOSURE_DAYS = (31, 59)  # February

# Brand choice weights (party order) and how many brands a persona holds.
MULTI_WEIGHTS = np.array([0.85, 0.85, 1.2, 1.1, 1.1])
SINGLE_WEIGHTS = np.array([0.05, 0.10, 0.35, 0.25, 0.25])
BRAND_COUNTS: tuple[tuple[tuple[int, ...], tuple[float, ...]], ...] = (
    ((3, 4, 5), (0.50, 0.35, 0.15)),
    ((2, 3), (0.7, 0.3)),
    ((2, 3), (0.5, 0.5)),
    ((1,), (1.0,)),
    ((1, 2, 3), (0.4, 0.4, 0.2)),
)


@dataclass(frozen=True)
class People:
    """One chunk of persons; per-party arrays are (persons, parties) in ``PARTIES`` order."""

    index: np.ndarray
    persona: np.ndarray
    member: np.ndarray
    start: np.ndarray
    end: np.ndarray
    pinned: np.ndarray
    activity: np.ndarray
    city: np.ndarray
    store: np.ndarray
    on_file: np.ndarray
    broken: np.ndarray
    enrolled: np.ndarray
    treated: np.ndarray
    exposed: np.ndarray

    def __len__(self) -> int:
        return int(self.index.size)

    @property
    def usable(self) -> np.ndarray:
        """Identifier types each record holds in a normalizable form (0 for non-members)."""
        return np.asarray(self.on_file & ~self.broken)


def _brands(rng: np.random.Generator, persona: np.ndarray) -> np.ndarray:
    """Weighted subsets of brands without replacement (Gumbel top-k)."""
    n = persona.size
    weights = np.where((persona == SINGLE)[:, None], SINGLE_WEIGHTS, MULTI_WEIGHTS)
    weights = np.where(
        (persona == CONVERTER)[:, None] & (np.arange(len(PARTIES)) <= OKALA), 1e9, weights
    )
    keys = np.log(weights) - np.log(-np.log(rng.random((n, len(PARTIES)))))
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    k = np.zeros(n, dtype=np.int64)
    u = rng.random(n)
    for code, (sizes, probs) in enumerate(BRAND_COUNTS):
        mine = persona == code
        k[mine] = np.asarray(sizes)[Categorical(probs).pick(u[mine])]
    return rank < k[:, None]


def _windows(
    rng: np.random.Generator, persona: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Active window per brand in days since 1 January, and whether its first event is pinned."""
    n, nb = persona.size, len(PARTIES)
    start = np.zeros((n, nb))
    end = np.full((n, nb), float(PERIOD_DAYS))
    pinned = np.zeros((n, nb), dtype=bool)
    t0 = rng.uniform(0, 120, n)
    lag = np.minimum(1 + rng.gamma(1.5, 10.0, n), 60.0)
    churn = rng.uniform(30, 150, n)
    join = rng.uniform(90, 170, n)
    stagger = rng.uniform(0, 10, (n, nb))
    conv = persona == CONVERTER
    start[conv, OKALA] = t0[conv]
    start[conv, OFOGH] = t0[conv] + lag[conv]
    pinned[conv, OKALA] = pinned[conv, OFOGH] = True
    end[persona == CHURNER] = churn[persona == CHURNER, None]
    new = persona == NEWCOMER
    start[new] = np.minimum(join[new, None] + stagger[new], PERIOD_DAYS - 1)
    pinned[new] = True
    return start, end, pinned


def _on_file(rng: np.random.Generator, member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Identifier types on file per record, and the one broken type (0 if none)."""
    on_file = np.zeros(member.shape, dtype=np.uint8)
    u = rng.random(member.shape)
    for p, (always, optional, share) in enumerate(ON_FILE):
        on_file[:, p] = always | np.where(u[:, p] < share, optional, 0)
    on_file[~member] = 0
    low = on_file & (~on_file + np.uint8(1))  # lowest set bit
    high = on_file & ~low
    pick = np.where((high != 0) & (rng.random(member.shape) < 0.5), high, low)
    broken = np.where(rng.random(member.shape) < BROKEN_RATE, pick, 0).astype(np.uint8)
    return on_file, broken & on_file


def draw(rng: np.random.Generator, index: np.ndarray) -> People:
    """Draw one chunk of persons; the order of draws is part of the output format."""
    n = index.size
    persona = Categorical(PERSONA_SHARES).sample(rng, n).astype(np.int8)
    member = _brands(rng, persona)
    start, end, pinned = _windows(rng, persona)
    activity = rng.gamma(2.0, 0.5, n)
    city = Categorical(CITY_WEIGHTS).sample(rng, n)
    first_store = np.concatenate([[0], np.cumsum(STORES_PER_CITY)[:-1]])
    store = first_store[city] + (rng.random(n) * np.asarray(STORES_PER_CITY)[city]).astype(int)
    on_file, broken = _on_file(rng, member)
    exposed = rng.integers(*EXPOSURE_DAYS, size=n)
    eligible = member[:, OZONE] & (start[:, OZONE] <= exposed)
    enrolled = eligible & (rng.random(n) < ENROL_RATE)
    treated = enrolled & (rng.random(n) < 0.5)
    return People(
        index=index, persona=persona, member=member, start=start, end=end, pinned=pinned,
        activity=activity, city=city, store=store, on_file=on_file, broken=broken,
        enrolled=enrolled, treated=treated, exposed=exposed,
    )  # fmt: skip
