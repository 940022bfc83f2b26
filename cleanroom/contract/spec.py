"""The dataset spec: which input columns a party keeps, and what they mean.

The same shape appears per dataset in a collaboration policy, so both sides of
the trust boundary import it from here.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from cleanroom.contract.documents import format_validation_error, read_yaml
from cleanroom.contract.keyed_hash import TOKEN_TYPE
from cleanroom.errors import T_, SpecError

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class IdType(StrEnum):
    """Identifier types; each is a separate token domain."""

    phone = "phone"
    email = "email"
    card = "card"


class ColumnType(StrEnum):
    """Types a kept column may have."""

    timestamp = "timestamp"
    date = "date"
    category = "category"
    integer = "integer"
    number = "number"
    boolean = "boolean"


class Calendar(StrEnum):
    """The calendar a date or timestamp column is written in."""

    gregorian = "gregorian"
    jalali = "jalali"  # Solar Hijri, converted exactly to Gregorian by prepare


class DatasetSpec(BaseModel):
    """What a party's export looks like and what of it may leave the party.

    A column is ``name: type``, or ``name: {type: timestamp, calendar: jalali}``
    for a date or timestamp written in the Solar Hijri calendar; the long form
    is kept as ``calendars`` beside ``columns``, so the types stay one flat
    mapping and a spec without calendars is exactly what it was.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(pattern=NAME.pattern)
    identifiers: dict[str, IdType] = Field(min_length=1)
    columns: dict[str, ColumnType] = Field(default_factory=dict)
    calendars: dict[str, Calendar] = Field(default_factory=dict)
    time: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _long_column_form(cls, data: Any) -> Any:
        """``name: {type: ..., calendar: ...}`` under columns, split into columns + calendars."""
        if not isinstance(data, dict) or not isinstance(data.get("columns"), dict):
            return data
        columns: dict[str, Any] = {}
        calendars: dict[str, Any] = dict(data.get("calendars") or {})
        for name, value in data["columns"].items():
            if isinstance(value, dict):
                unknown = set(value) - {"type", "calendar"}
                if unknown or "type" not in value:
                    raise ValueError(
                        f"column '{name}': the long form is {{type: ..., calendar: ...}}"
                        + (f", not {sorted(unknown)}" if unknown else "")
                    )
                columns[name] = value["type"]
                if "calendar" in value:
                    calendars[name] = value["calendar"]
            else:
                columns[name] = value
        return {**data, "columns": columns, "calendars": calendars}

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpec:
        for name in [*self.identifiers, *self.columns]:
            if not NAME.match(name):
                raise ValueError(
                    f"column name '{name}' must be lower-case letters, digits and '_', "
                    "starting with a letter"
                )
        both = set(self.identifiers) & set(self.columns)
        if both:
            raise ValueError(f"column(s) {sorted(both)} are both an identifier and a column")
        for name, calendar in self.calendars.items():
            kind = self.columns.get(name)
            if kind not in (ColumnType.timestamp, ColumnType.date):
                raise ValueError(
                    f"column '{name}' has calendar {calendar.value}; only a declared "
                    "timestamp or date column has a calendar"
                )
        if self.time is not None:
            kind = self.columns.get(self.time)
            if kind not in (ColumnType.timestamp, ColumnType.date):
                raise ValueError(
                    f"time column '{self.time}' must be declared under columns as timestamp or date"
                )
        return self

    @model_serializer(mode="wrap")
    def _without_empty_calendars(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A spec without Solar Hijri columns dumps exactly as before calendars existed."""
        data: dict[str, Any] = handler(self)
        if not data.get("calendars"):
            data.pop("calendars", None)
        return data

    def calendar(self, name: str) -> Calendar:
        """The calendar a column is written in (Gregorian unless declared)."""
        return self.calendars.get(name, Calendar.gregorian)

    @property
    def input_columns(self) -> list[str]:
        """Every input column the spec reads, identifiers first."""
        return [*self.identifiers, *self.columns]


SQL_TYPES = {
    ColumnType.timestamp: "TIMESTAMP",
    ColumnType.date: "DATE",
    ColumnType.category: "VARCHAR",
    ColumnType.integer: "BIGINT",
    ColumnType.number: "DOUBLE",
    ColumnType.boolean: "BOOLEAN",
}
ARROW_TYPES = {
    ColumnType.timestamp: pa.timestamp("us"),
    ColumnType.date: pa.date32(),
    ColumnType.category: pa.string(),
    ColumnType.integer: pa.int64(),
    ColumnType.number: pa.float64(),
    ColumnType.boolean: pa.bool_(),
}


def payload_schema(spec: DatasetSpec) -> pa.Schema:
    """A bundle's payload: tokens under the identifier columns' names, then typed columns."""
    return pa.schema(
        [pa.field(name, TOKEN_TYPE) for name in spec.identifiers]
        + [pa.field(name, ARROW_TYPES[kind]) for name, kind in spec.columns.items()]
    )


def parse_spec(data: Any, source: str = "<spec>") -> DatasetSpec:
    """Validate an already-loaded mapping."""
    try:
        return DatasetSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_validation_error(source, err)) from None


def load_spec(path: str | Path) -> DatasetSpec:
    """Read a YAML dataset spec; every error names the file and the field."""
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise SpecError(
            T_("%(path)s: expected a mapping with 'dataset', 'identifiers', 'columns'", path=path)
        )
    return parse_spec(data, str(path))
