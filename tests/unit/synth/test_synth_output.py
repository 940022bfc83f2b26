"""Files on disk: deterministic, same rows in both formats, specs that load, API checks."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from synth_support import PERSONS, files_bytes

from cleanroom.contract.spec import load_spec
from cleanroom.errors import UserError
from cleanroom.synth import DATASETS, SynthSummary, generate


def test_same_seed_same_bytes_and_different_seed_differs(tmp_path: Path) -> None:
    kwargs = {"persons": 1_500, "chunk_persons": 600}
    generate(tmp_path / "a", seed=3, **kwargs)  # type: ignore[arg-type]
    generate(tmp_path / "b", seed=3, **kwargs)  # type: ignore[arg-type]
    generate(tmp_path / "c", seed=4, **kwargs)  # type: ignore[arg-type]
    a, b, c = (files_bytes(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.endswith((".csv", ".parquet")))


def test_leaving_a_party_out_does_not_change_the_others(tmp_path: Path) -> None:
    full = generate(tmp_path / "all", persons=1_200, chunk_persons=500)
    some = generate(tmp_path / "some", persons=1_200, chunk_persons=500, parties=["tapsi", "okala"])
    assert set(some.files) == {("okala", "orders"), ("tapsi", "rides")}
    assert not (tmp_path / "some" / "ofogh").exists()
    for key, path in some.files.items():
        assert path.read_bytes() == full.files[key].read_bytes()
    assert some.room_persons < full.room_persons


def test_files_summary_and_progress(csv_run: SynthSummary) -> None:
    assert csv_run.persons == PERSONS
    assert set(csv_run.files) == {(d.party, d.name) for d in DATASETS}
    for key, path in csv_run.files.items():
        assert path == csv_run.out / key[0] / f"{key[1]}.csv"
        rows = pacsv.read_csv(path).num_rows
        assert rows == csv_run.rows[key] > 0
    assert not list(csv_run.out.rglob("*.partial"))
    assert csv_run.truth["persons"].exists() and csv_run.truth["summary"].exists()


def test_progress_reports_every_person(tmp_path: Path) -> None:
    seen: list[int] = []
    generate(tmp_path, persons=1_234, chunk_persons=500, progress=seen.append)
    assert seen == [500, 500, 234]


def test_specs_load_and_describe_the_files(csv_run: SynthSummary) -> None:
    for ds in DATASETS:
        key = (ds.party, ds.name)
        spec = load_spec(csv_run.specs[key])
        assert spec == ds.spec
        header = pacsv.read_csv(csv_run.files[key]).column_names
        assert header == spec.input_columns
        assert spec.time in header


def read_csv_as(path: Path, schema: pa.Schema) -> pa.Table:
    types = {f.name: (pa.string() if pa.types.is_dictionary(f.type) else f.type) for f in schema}
    return pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True,
                                             quoted_strings_can_be_null=False),
    )  # fmt: skip


def plain(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Categories as strings; timestamps back to seconds (Parquet has no seconds unit)."""
    return pa.table(
        {
            f.name: table[f.name].cast(pa.string() if pa.types.is_dictionary(f.type) else f.type)
            for f in schema
        }
    )


def test_csv_and_parquet_hold_the_same_rows(
    csv_run: SynthSummary, parquet_run: SynthSummary
) -> None:
    for ds in DATASETS:
        key = (ds.party, ds.name)
        from_parquet = plain(pq.read_table(parquet_run.files[key]), ds.schema)
        from_csv = read_csv_as(csv_run.files[key], ds.schema)
        assert from_csv.equals(from_parquet), key
    assert parquet_run.truth["persons"].read_bytes() == csv_run.truth["persons"].read_bytes()


def test_empty_cells_only_where_not_on_file(csv_run: SynthSummary) -> None:
    table = read_csv_as(csv_run.files[("ofogh", "purchases")], DATASETS[0].schema)
    assert table["loyalty_card"].null_count == 0
    share = table["mobile"].null_count / table.num_rows
    assert 0.08 < share < 0.25


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"persons": 0}, "persons"),
        ({"persons": 20_000_001}, "persons"),
        ({"persons": 10, "fmt": "xlsx"}, "format"),
        ({"persons": 10, "parties": ["ofogh", "snapp"]}, "snapp"),
        ({"persons": 10, "parties": []}, "party"),
        ({"persons": 10, "chunk_persons": 0}, "chunk_persons"),
        ({"persons": 10, "seed": -1}, "seed"),
    ],
)
def test_bad_arguments_are_user_errors(tmp_path: Path, kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(UserError, match=message):
        generate(tmp_path, **kwargs)
    assert not list(tmp_path.rglob("*.csv"))


def test_a_failed_run_leaves_no_half_files(tmp_path: Path) -> None:
    def stop(n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path, persons=1_000, chunk_persons=400, progress=stop)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
