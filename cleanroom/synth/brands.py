"""The five brands of the group, the datasets they export and the values those may take.

Category sets are declared here once so that the generated files, their specs and
any policy written against them agree on the domains (a policy may only group by a
dimension whose values are declared).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import yaml

from cleanroom.contract.spec import ColumnType, DatasetSpec, IdType

PARTIES: tuple[str, ...] = ("ofogh", "okala", "filimo", "tapsi", "ozone")
"""Fixed order: the bit of a party in every mask and the order of every per-party array."""

# Cities with a weight roughly following population, and ofogh's store count there.
CITIES: tuple[str, ...] = (
    "Tehran", "Mashhad", "Isfahan", "Karaj", "Shiraz", "Tabriz",
    "Qom", "Ahvaz", "Kermanshah", "Rasht", "Urmia", "Kerman",
)  # fmt: skip
CITY_WEIGHTS: tuple[float, ...] = (
    0.35, 0.10, 0.08, 0.08, 0.07, 0.07, 0.05, 0.05, 0.04, 0.04, 0.04, 0.03,
)  # fmt: skip
STORES_PER_CITY: tuple[int, ...] = (20, 6, 5, 5, 4, 4, 3, 3, 2, 2, 2, 2)
_CITY_CODES = ("THR", "MHD", "IFN", "KRJ", "SYZ", "TBZ", "QOM", "AWZ", "KSH", "RAS", "OMH", "KER")
STORES: tuple[str, ...] = tuple(
    f"OF-{code}-{k:02d}"
    for code, count in zip(_CITY_CODES, STORES_PER_CITY, strict=True)
    for k in range(1, count + 1)
)
STORE_CITY: tuple[int, ...] = tuple(
    c for c, count in enumerate(STORES_PER_CITY) for _ in range(count)
)

GROCERY: tuple[str, ...] = (
    "dairy", "bakery", "produce", "meat", "beverages",
    "snacks", "pantry", "frozen", "household", "personal_care",
)  # fmt: skip
GROCERY_WEIGHTS: tuple[float, ...] = (0.16, 0.12, 0.15, 0.10, 0.10, 0.09, 0.12, 0.05, 0.07, 0.04)
CHANNELS: tuple[str, ...] = ("app", "web")
PLANS: tuple[str, ...] = ("monthly", "quarterly", "semiannual", "annual")
PLAN_WEIGHTS: tuple[float, ...] = (0.55, 0.20, 0.10, 0.15)
GENRES: tuple[str, ...] = (
    "iranian_series", "foreign_series", "drama", "comedy",
    "action", "documentary", "animation", "kids",
)  # fmt: skip
GENRE_WEIGHTS: tuple[float, ...] = (0.24, 0.18, 0.14, 0.14, 0.10, 0.05, 0.07, 0.08)
SERVICES: tuple[str, ...] = ("ride", "food", "shop")
SERVICE_WEIGHTS: tuple[float, ...] = (0.65, 0.25, 0.10)
MERCHANTS: tuple[str, ...] = ("ofogh", "okala", "filimo", "tapsi", "other")
CAMPAIGNS: tuple[str, ...] = ("ozone_ofogh_cashback_2026",)
ARMS: tuple[str, ...] = ("treatment", "control")


@dataclass(frozen=True)
class Dataset:
    """One party export: how it looks on disk and which categories it may hold."""

    party: str
    name: str
    identifiers: Mapping[str, IdType]
    columns: Mapping[str, ColumnType]
    time: str
    domains: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``party/dataset``: how summaries name a dataset."""
        return f"{self.party}/{self.name}"

    @property
    def spec(self) -> DatasetSpec:
        """The dataset spec a party data engineer would hand to ``cleanroom prepare``."""
        return DatasetSpec(
            dataset=self.name,
            identifiers=dict(self.identifiers),
            columns=dict(self.columns),
            time=self.time,
        )

    @property
    def schema(self) -> pa.Schema:
        """Arrow schema; identifiers are plain strings because they are deliberately messy."""
        fields = [pa.field(name, pa.string()) for name in self.identifiers]
        fields += [pa.field(name, ARROW_TYPES[kind]) for name, kind in self.columns.items()]
        return pa.schema(fields)

    def write_spec(self, path: Path) -> None:
        """Write the spec as YAML, the shape ``cleanroom.contract.spec.load_spec`` reads."""
        data = self.spec.model_dump(mode="json")
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


ARROW_TYPES: Mapping[ColumnType, pa.DataType] = {
    ColumnType.timestamp: pa.timestamp("s"),
    ColumnType.date: pa.date32(),
    ColumnType.category: pa.dictionary(pa.int32(), pa.string()),
    ColumnType.integer: pa.int64(),
    ColumnType.number: pa.float64(),
    ColumnType.boolean: pa.bool_(),
}

_T, _C, _N = ColumnType.timestamp, ColumnType.category, ColumnType.number
PHONE, EMAIL, CARD = IdType.phone, IdType.email, IdType.card

DATASETS: tuple[Dataset, ...] = (
    Dataset(
        "ofogh", "purchases",
        {"mobile": PHONE, "loyalty_card": CARD},
        {"purchased_at": _T, "store_id": _C, "city": _C, "category": _C, "amount": _N},
        "purchased_at",
        {"store_id": STORES, "city": CITIES, "category": GROCERY},
    ),
    Dataset(
        "okala", "orders",
        {"mobile": PHONE, "email": EMAIL},
        {"ordered_at": _T, "city": _C, "category": _C, "channel": _C, "amount": _N},
        "ordered_at",
        {"city": CITIES, "category": GROCERY, "channel": CHANNELS},
    ),
    Dataset(
        "filimo", "views",
        {"email": EMAIL, "mobile": PHONE},
        {"viewed_at": _T, "plan": _C, "genre": _C, "minutes": ColumnType.integer},
        "viewed_at",
        {"plan": PLANS, "genre": GENRES},
    ),
    Dataset(
        "tapsi", "rides",
        {"mobile": PHONE},
        {"ride_at": _T, "city": _C, "service": _C, "fare": _N},
        "ride_at",
        {"city": CITIES, "service": SERVICES},
    ),
    Dataset(
        "ozone", "payments",
        {"mobile": PHONE},
        {"paid_at": _T, "merchant": _C, "amount": _N, "coupon": ColumnType.boolean},
        "paid_at",
        {"merchant": MERCHANTS},
    ),
    Dataset(
        "ozone", "campaign",
        {"mobile": PHONE},
        {"campaign_id": _C, "arm": _C, "exposed_on": ColumnType.date},
        "exposed_on",
        {"campaign_id": CAMPAIGNS, "arm": ARMS},
    ),
)  # fmt: skip


def dataset(party: str, name: str) -> Dataset:
    """Look a dataset up by party and name."""
    for ds in DATASETS:
        if ds.party == party and ds.name == name:
            return ds
    raise KeyError(f"{party}/{name}")


def category(values: tuple[str, ...], codes: object) -> pa.DictionaryArray:
    """A dictionary column over the full declared domain, so every chunk has one schema."""
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(values))
