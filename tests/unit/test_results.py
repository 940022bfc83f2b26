"""The flat table of a result: one line per released number, bounds and flags as columns."""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
from hypothesis import given
from hypothesis import strategies as st

from cleanroom.results import tidy
from cleanroom.room.query.export import export

RESULT = {
    "query_id": "q1",
    "columns": ["city", "orders", "avg_amount"],
    "rows": [
        {
            "city": "=cmd()",
            "orders": {"value": 10, "error95": 2.5},
            "avg_amount": {"value": None, "low": 0, "high": 100, "error95": None},
        },
        {
            "city": "Tehran",
            "orders": {"value": 0, "error95": 2.5},
            "avg_amount": {"value": 5.5, "low": 4.0, "high": 7.0, "error95": 1.5},
        },
    ],
    "epsilon_float": 0.5,
    "cached": True,
    "policy_version": 3,
    "pairwise": [{"pair": "a+b"}],
}


def test_one_line_per_number_with_its_interval_and_flags() -> None:
    columns, records = tidy(RESULT)
    assert columns[:2] == ["city", "measure"]
    assert len(records) == 4
    first = records[0]
    assert (first["value"], first["low"], first["high"]) == (10, 7.5, 12.5)
    assert first["flags"] == "cached" and first["policy_version"] == 3
    unusable = records[1]
    assert unusable["value"] is None and unusable["flags"] == "no_estimate;cached"
    assert (unusable["low"], unusable["high"]) == (0, 100)


def test_every_format_holds_the_same_numbers() -> None:
    _, records = tidy(RESULT)
    values = [r["value"] for r in records]
    lines = list(csv.DictReader(io.StringIO(export(RESULT, "csv").body.decode())))
    assert [float(x["value"]) if x["value"] else None for x in lines] == values
    assert lines[0]["city"] == "'=cmd()"  # a spreadsheet would run it as a formula
    table = pq.read_table(io.BytesIO(export(RESULT, "parquet").body)).to_pylist()
    assert [r["value"] for r in table] == values
    assert json.loads(export(RESULT, "json").body)["pairwise"] == RESULT["pairwise"]
    assert export(RESULT, "xlsx").body[:2] == b"PK"


cells = st.fixed_dictionaries(
    {"value": st.one_of(st.none(), st.integers(-(10**6), 10**6)), "error95": st.floats(0, 1e6)}
)


@given(st.lists(st.tuples(st.text(max_size=8), cells, cells), max_size=20))
def test_no_number_is_lost_or_separated_from_its_bound(
    rows: list[tuple[str, dict[str, float], dict[str, float]]],
) -> None:
    result = {
        "query_id": "q",
        "columns": ["k", "a", "b"],
        "rows": [{"k": k, "a": a, "b": b} for k, a, b in rows],
    }
    _, records = tidy(result)
    if not rows:
        assert records == []
        return
    assert len(records) == 2 * len(rows)
    for record, (k, a, _) in zip(records[::2], rows, strict=True):
        assert (record["k"], record["measure"], record["value"]) == (k, "a", a["value"])
        assert record["error95"] == a["error95"]
    for record, (_, _, b) in zip(records[1::2], rows, strict=True):
        assert record["value"] == b["value"] and record["error95"] == b["error95"]
        if b["value"] is not None:
            assert record["low"] <= record["value"] <= record["high"]


def test_a_number_that_is_mostly_noise_or_withheld_says_so_in_its_flags() -> None:
    result = {
        "columns": ["pair", "both", "rate"],
        "rows": [
            {
                "pair": "a+b",
                "both": {"value": 4, "error95": 9.0, "restricted": "join_required"},
                "rate": {"value": None, "withheld": "join_required", "unit": "share"},
            },
            {
                "pair": "a+c",
                "both": {"value": 400, "error95": 9.0},
                "rate": {"value": 0, "low": 0, "high": 0.2, "error95": 0.2, "clamped": True},
            },
        ],
    }
    _, records = tidy(result)
    assert [r["flags"] for r in records] == [
        "mostly_noise;restricted:join_required",
        "no_estimate;withheld:join_required",
        "",
        "mostly_noise;clamped",
    ]
