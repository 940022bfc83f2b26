"""A small generated room for the journey templates: three brands, a campaign, refunds.

Tables are laid out as a match publishes them (``person`` plus the contract's
columns) in an in-memory DuckDB, so the templates run their real SQL on them.
``alpha`` runs the campaign; every brand has an activity table ``events``
whose ``amount`` may be negative (refunds) on ``alpha`` and ``beta`` and is
positive-only on ``gamma``.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cleanroom.room.policy import CollaborationPolicy

BRANDS = ("alpha", "beta", "gamma")
CHANNELS = ("app", "web")
ARMS = ("treatment", "control")
REFUNDS = (-2000.0, 5000.0)  # alpha's and beta's amount: a refund is a negative amount
POSITIVE = (0.0, 3000.0)  # gamma's
START = dt.datetime(2026, 1, 1)
END = dt.datetime(2026, 7, 1)
PERIOD = {"start": "2026-01-01", "end": "2026-07-01"}


def _pem() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def policy(
    mechanism: str = "laplace", max_epsilon: float = 10, k: int = 10, g: int = 5
) -> CollaborationPolicy:
    """Every template approved; the reporter (no party) may read every brand.

    ``k`` and ``g`` are the rows and groups per person SQL queries are bounded to.
    """
    parties: dict[str, Any] = {}
    for brand in BRANDS:
        bounds = list(POSITIVE if brand == "gamma" else REFUNDS)
        datasets: dict[str, Any] = {
            "events": {
                "identifiers": {"mobile": "phone"},
                "columns": {
                    "at": "timestamp",
                    "channel": {"type": "category", "domain": list(CHANNELS)},
                    "amount": {"type": "number", "bounds": bounds},
                },
                "time": "at",
            }
        }
        if brand == "alpha":
            datasets["campaign"] = {
                "identifiers": {"mobile": "phone"},
                "columns": {
                    "exposed_at": "timestamp",
                    "arm": {"type": "category", "domain": [*ARMS, "holdout"]},
                },
                "time": "exposed_at",
                "activity": False,
            }
        parties[brand] = {
            "name": brand.title(),
            "public_key": _pem(),
            "datasets": datasets,
            "analysts": {"join_required": False},  # SQL tests query any brand alone
        }
    gaussian = mechanism == "gaussian"
    return CollaborationPolicy.model_validate(
        {
            "collaboration": "sensitivity",
            "match_key_id": "0123456789abcdef0123456789abcdef",
            "parties": parties,
            "privacy": {
                "mechanism": mechanism,
                "delta": 1e-6 if gaussian else None,
                "budget": {"epsilon": 100, "shares": {"reporter": 100}},
                "max_epsilon_per_query": max_epsilon,
                "default_epsilon": 1,
                "min_noisy_persons": 0,
                "max_rows_per_person": k,
                "max_groups_per_person": g,
            },
            "templates": {
                name: {}
                for name in (
                    "overlap",
                    "transitions",
                    "funnel",
                    "time_to_cross",
                    "retention",
                    "segments",
                    "lift",
                    "app_to_store",
                )
            },
        }
    )


@dataclass(frozen=True)
class Event:
    """One activity event of a person at a brand."""

    person: int
    brand: str
    at: dt.datetime
    channel: str | None
    amount: float | None


@dataclass(frozen=True)
class Exposure:
    """One row of alpha's campaign table."""

    person: int
    at: dt.datetime
    arm: str


TABLES = {f"{b}.events": f"t__{b}__events" for b in BRANDS} | {"alpha.campaign": "t__alpha__camp"}


# As the match publishes a table: each person's rows in a random order (``_rank``).
RANKED = "*, row_number() OVER (PARTITION BY person ORDER BY random()) AS _rank"


def load(events: Iterable[Event], exposures: Iterable[Exposure]) -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse (schema ``wh``) holding the events and the campaign."""
    con = duckdb.connect()
    con.execute("ATTACH ':memory:' AS wh")
    events = list(events)
    for brand in BRANDS:
        mine = [e for e in events if e.brand == brand]
        data = pa.table(
            {
                "person": pa.array([e.person for e in mine], pa.int64()),
                "at": pa.array([e.at for e in mine], pa.timestamp("us")),
                "channel": pa.array([e.channel for e in mine], pa.string()),
                "amount": pa.array([e.amount for e in mine], pa.float64()),
            }
        )
        con.register("data", data)
        con.execute(f'CREATE TABLE wh."{TABLES[f"{brand}.events"]}" AS SELECT {RANKED} FROM data')
        con.unregister("data")
    shown = list(exposures)
    data = pa.table(
        {
            "person": pa.array([x.person for x in shown], pa.int64()),
            "exposed_at": pa.array([x.at for x in shown], pa.timestamp("us")),
            "arm": pa.array([x.arm for x in shown], pa.string()),
        }
    )
    con.register("data", data)
    con.execute(f'CREATE TABLE wh."{TABLES["alpha.campaign"]}" AS SELECT {RANKED} FROM data')
    con.unregister("data")
    return con


def ordinary(seed: int, persons: int = 80, most: int = 12) -> tuple[list[Event], list[Exposure]]:
    """Ordinary persons: 1 to ``most`` events each, within the bounds, at distinct instants."""
    rng = random.Random(seed)
    used: set[dt.datetime] = set()
    span = int((END - START).total_seconds())

    def instant() -> dt.datetime:
        while True:
            t = START + dt.timedelta(seconds=rng.randrange(span))
            if t not in used:
                used.add(t)
                return t

    events, exposures = [], []
    for person in range(persons):
        for _ in range(rng.randint(1, most)):
            brand = rng.choice(BRANDS)
            lo, hi = POSITIVE if brand == "gamma" else REFUNDS
            amount = None if rng.random() < 0.1 else round(rng.uniform(lo, hi), 2)
            events.append(Event(person, brand, instant(), rng.choice(CHANNELS), amount))
        if rng.random() < 0.7:
            exposures.append(Exposure(person, instant(), rng.choice(ARMS)))
    return events, exposures
