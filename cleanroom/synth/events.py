"""What the persons do at each brand: event times and the business columns of every row.

Counts are ``1 + Poisson(mean)`` so that every member leaves at least one row, with a
mean scaled by persona, a per-person activity level (Gamma, mean 1) and the length of
the person's active window. The campaign's treatment arm gets ``LIFT`` times its usual
ofogh rate on top from the exposure day on, and more coupons in its ozone payments.
Rows of a chunk come out sorted by time, as an export would be.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from cleanroom.synth import brands as b
from cleanroom.synth.people import (
    FILIMO,
    OFOGH,
    OKALA,
    OZONE,
    PERIOD_DAYS,
    PERIOD_START,
    RATE_FACTOR,
    TAPSI,
    People,
)
from cleanroom.synth.sampling import Categorical

EPOCH = int(PERIOD_START.astype(np.int64))
DAY = 86_400
MEAN_EVENTS: tuple[float, ...] = (6.0, 4.0, 5.0, 4.5, 4.0)
"""Events beyond the first over the whole period, per brand, for an average customer."""
LIFT = 0.4
COUPON_RATE, TREATED_COUPON_RATE = 0.12, 0.45

# Relative activity per hour of the day, local time.
_SHOP = (1, 0, 0, 0, 0, 0, 1, 2, 4, 6, 8, 9, 9, 8, 6, 6, 7, 9, 10, 10, 9, 7, 4, 2)
_APP = (3, 2, 1, 0, 0, 0, 0, 1, 2, 4, 6, 8, 8, 7, 5, 5, 5, 6, 8, 10, 11, 11, 9, 6)
_WATCH = (8, 5, 3, 1, 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 3, 3, 4, 5, 6, 8, 11, 13, 13, 11)
_RIDE = (2, 1, 1, 0, 0, 1, 3, 9, 10, 6, 4, 4, 5, 5, 4, 5, 7, 10, 10, 8, 6, 5, 4, 3)
HOURS: tuple[tuple[int, ...], ...] = (_SHOP, _APP, _WATCH, _RIDE, _SHOP)


@dataclass(frozen=True)
class Events:
    """One dataset's rows for a chunk, without identifiers, sorted by time."""

    person: np.ndarray
    """Chunk-local person per row: never written, used for identifiers and the truth."""
    seconds: np.ndarray
    """Event time per row, seconds since the Unix epoch."""
    columns: dict[str, pa.Array]
    count: np.ndarray
    """Rows per chunk person."""
    first: np.ndarray
    """First event time per chunk person (seconds since the epoch), -1 when none."""


def _per_person(person: np.ndarray, seconds: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    count = np.bincount(person, minlength=n).astype(np.int64)
    first = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first, person, seconds)
    return count, np.where(count > 0, first, -1)


def _timeline(rng: np.random.Generator, people: People, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows per member as (person, seconds), time-sorted."""
    n = len(people)
    start, end = people.start[:, p], people.end[:, p]
    member = people.member[:, p]
    rate = MEAN_EVENTS[p] * np.asarray(RATE_FACTOR)[people.persona] * people.activity
    rate /= PERIOD_DAYS
    count = np.where(member, 1 + rng.poisson(rate * np.maximum(end - start, 0)), 0)
    person = np.repeat(np.arange(n), count)
    day = start[person] + rng.random(person.size) * (end - start)[person]
    first_row = np.cumsum(count) - count
    pin = member & people.pinned[:, p]
    day[first_row[pin]] = start[pin]
    if p == OFOGH:
        lift_from = np.maximum(start, people.exposed)
        lift_days = np.maximum(end - lift_from, 0)
        extra = np.where(member & people.treated, rng.poisson(LIFT * rate * lift_days), 0)
        more = np.repeat(np.arange(n), extra)
        person = np.concatenate([person, more])
        more_day = lift_from[more] + rng.random(more.size) * lift_days[more]
        day = np.concatenate([day, more_day])
    day_int = np.minimum(day.astype(np.int64), PERIOD_DAYS - 1)
    hour = Categorical(HOURS[p]).sample(rng, person.size)
    seconds = EPOCH + day_int * DAY + hour * 3600 + rng.integers(0, 3600, person.size)
    # Unique keys (time, then row): any sort algorithm numpy picks for this CPU gives
    # the same order, so files are identical across machines.
    order = np.argsort(((seconds - EPOCH) << 32) + np.arange(seconds.size))
    return person[order], seconds[order]


def _toman(rng: np.random.Generator, median: float, sigma: float, m: int) -> pa.Array:
    """Lognormal amounts in tomans, rounded to 1,000 as prices are."""
    value = np.round(rng.lognormal(np.log(median), sigma, m) / 1000) * 1000
    return pa.array(np.maximum(value, 1000.0))


def _pick(rng: np.random.Generator, weights: tuple[float, ...], m: int) -> np.ndarray:
    return Categorical(weights).sample(rng, m)


def _home_city(
    rng: np.random.Generator, people: People, person: np.ndarray, stay: float
) -> pa.Array:
    m = person.size
    away = Categorical(b.CITY_WEIGHTS).sample(rng, m)
    return b.category(b.CITIES, np.where(rng.random(m) < stay, people.city[person], away))


def _build(
    people: People, person: np.ndarray, seconds: np.ndarray, columns: dict[str, pa.Array]
) -> Events:
    count, first = _per_person(person, seconds, len(people))
    return Events(person, seconds, columns, count, first)


def purchases(rng: np.random.Generator, people: People) -> dict[str, Events]:
    """Ofogh baskets: mostly at the person's home store."""
    person, seconds = _timeline(rng, people, OFOGH)
    m = person.size
    store = np.where(rng.random(m) < 0.85, people.store[person], rng.integers(0, len(b.STORES), m))
    return {"purchases": _build(people, person, seconds, {
        "purchased_at": pa.array(seconds.astype("datetime64[s]")),
        "store_id": b.category(b.STORES, store),
        "city": b.category(b.CITIES, np.asarray(b.STORE_CITY)[store]),
        "category": b.category(b.GROCERY, _pick(rng, b.GROCERY_WEIGHTS, m)),
        "amount": _toman(rng, 850_000, 0.7, m),
    })}  # fmt: skip


def orders(rng: np.random.Generator, people: People) -> dict[str, Events]:
    """Okala deliveries: to the home city, through the person's preferred channel."""
    person, seconds = _timeline(rng, people, OKALA)
    m = person.size
    app_lover = rng.random(len(people)) < 0.75
    web = rng.random(m) >= np.where(app_lover, 0.95, 0.30)[person]
    return {"orders": _build(people, person, seconds, {
        "ordered_at": pa.array(seconds.astype("datetime64[s]")),
        "city": _home_city(rng, people, person, 0.95),
        "category": b.category(b.GROCERY, _pick(rng, b.GROCERY_WEIGHTS, m)),
        "channel": b.category(b.CHANNELS, web.astype(np.int32)),
        "amount": _toman(rng, 1_100_000, 0.6, m),
    })}  # fmt: skip


def views(rng: np.random.Generator, people: People) -> dict[str, Events]:
    """Filimo viewing sessions under the person's plan."""
    person, seconds = _timeline(rng, people, FILIMO)
    m = person.size
    plan = _pick(rng, b.PLAN_WEIGHTS, len(people))
    minutes = np.clip(np.round(rng.lognormal(np.log(45), 0.8, m)), 1, 600).astype(np.int64)
    return {"views": _build(people, person, seconds, {
        "viewed_at": pa.array(seconds.astype("datetime64[s]")),
        "plan": b.category(b.PLANS, plan[person]),
        "genre": b.category(b.GENRES, _pick(rng, b.GENRE_WEIGHTS, m)),
        "minutes": pa.array(minutes),
    })}  # fmt: skip


def rides(rng: np.random.Generator, people: People) -> dict[str, Events]:
    """Tapsi rides, food and shop orders, with a fare level per service."""
    person, seconds = _timeline(rng, people, TAPSI)
    m = person.size
    service = _pick(rng, b.SERVICE_WEIGHTS, m)
    median = np.array([120_000.0, 380_000.0, 520_000.0])[service]
    fare = np.round(median * rng.lognormal(0.0, 0.5, m) / 1000) * 1000
    return {"rides": _build(people, person, seconds, {
        "ride_at": pa.array(seconds.astype("datetime64[s]")),
        "city": _home_city(rng, people, person, 0.90),
        "service": b.category(b.SERVICES, service),
        "fare": pa.array(np.maximum(fare, 1000.0)),
    })}  # fmt: skip


def payments_and_campaign(rng: np.random.Generator, people: People) -> dict[str, Events]:
    """Ozone wallet payments (mostly at brands the person uses) and the campaign roster."""
    person, seconds = _timeline(rng, people, OZONE)
    m = person.size
    brands = len(b.MERCHANTS) - 1
    keys = rng.random((m, brands)) * people.member[person, :brands]
    at_brand = (rng.random(m) < 0.6) & (keys.max(axis=1) > 0)
    elsewhere = np.where(rng.random(m) < 0.75, brands, rng.integers(0, brands, m))
    merchant = np.where(at_brand, keys.argmax(axis=1), elsewhere)
    after = people.treated[person] & (seconds >= EPOCH + people.exposed[person] * DAY)
    coupon = rng.random(m) < np.where(after, TREATED_COUPON_RATE, COUPON_RATE)
    payments = _build(people, person, seconds, {
        "paid_at": pa.array(seconds.astype("datetime64[s]")),
        "merchant": b.category(b.MERCHANTS, merchant),
        "amount": _toman(rng, 400_000, 0.8, m),
        "coupon": pa.array(coupon),
    })  # fmt: skip
    enrolled = np.flatnonzero(people.enrolled)
    enrolled = enrolled[np.argsort(people.exposed[enrolled], kind="stable")]
    day = people.exposed[enrolled]
    campaign = _build(people, enrolled, EPOCH + day * DAY, {
        "campaign_id": b.category(b.CAMPAIGNS, np.zeros(enrolled.size, dtype=np.int32)),
        "arm": b.category(b.ARMS, np.where(people.treated[enrolled], 0, 1)),
        "exposed_on": pa.array((EPOCH // DAY + day).astype(np.int32), pa.date32()),
    })  # fmt: skip
    return {"payments": payments, "campaign": campaign}


BEHAVIOUR: dict[str, Callable[[np.random.Generator, People], dict[str, Events]]] = {
    "ofogh": purchases,
    "okala": orders,
    "filimo": views,
    "tapsi": rides,
    "ozone": payments_and_campaign,
}
