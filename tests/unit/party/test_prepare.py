"""prepare(): streaming, typing, counting, and every bad input it must refuse cleanly."""

from __future__ import annotations

import io
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanroom.contract.bundle import open_bundle
from cleanroom.contract.spec import IdType, parse_spec
from cleanroom.errors import InputError
from cleanroom.party import source
from cleanroom.party.normalize import email_reference, phone_reference
from cleanroom.party.prepare import _ascii, _typing_sql, _untrimmed, prepare
from cleanroom.party.tokens import token
from tests.conftest import Keys, leftovers
from tests.unit.party.test_normalize import mixed_script_mobile, written

SPEC = parse_spec(
    {
        "dataset": "orders",
        "identifiers": {"mobile": "phone", "mail": "email"},
        "columns": {"ordered_at": "timestamp", "city": "category", "amount": "number"},
        "time": "ordered_at",
    }
)
HEADER = "mobile,mail,ordered_at,city,amount,internal_note\n"
ROWS = [
    "0912 345 6789, Ali@Gmail.com ,2026-01-02 10:00:00,Tehran,120000,vip\n",
    '۰۹۱۲۳۴۵۶۷۸۹,,2026-01-03 11:00:00,"Mash\nhad",5.5,"quoted, with comma"\n',
    "n/a,not-an-email,2026-01-03 12:00:00,Tehran,7,x\n",
    "+98 935 111 2233,,2026-01-04 11:00:00,Tehran,lots,x\n",
    ",b@c.ir,2026-01-05,Qom,,x\n",
]


def run(keys: Keys, path: Path, out: Path | None = None) -> tuple[pa.Table, dict]:
    out = out or path.with_suffix(".bundle")
    result = prepare(
        input_path=path,
        spec=SPEC,
        party="okala",
        match_key=keys.match,
        room_key=keys.room.public_key(),
        signing_key=keys.party,
        out=out,
    )
    buf = io.BytesIO()
    open_bundle(out, keys.room, buf, expected_signer=keys.party.public_key())
    return pq.read_table(io.BytesIO(buf.getvalue())), result.summary.as_dict()


def write_csv(tmp_path: Path, text: str | bytes, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_tokens_types_and_counts(tmp_path: Path, keys: Keys) -> None:
    table, summary = run(keys, write_csv(tmp_path, HEADER + "".join(ROWS)))
    assert table.column_names == ["mobile", "mail", "ordered_at", "city", "amount"]
    assert table.num_rows == 3
    phone = token(keys.match, IdType.phone, "+989123456789")
    assert table.column("mobile").to_pylist()[:2] == [phone, phone]
    assert table.column("mail").to_pylist()[0] == token(keys.match, IdType.email, "ali@gmail.com")
    # The quoted newline was read as part of the cell; category rules make it a space.
    assert table.column("city").to_pylist() == ["Tehran", "Mash had", "Qom"]
    assert table.column("amount").to_pylist() == [120000.0, 5.5, None]
    assert str(table.schema.field("ordered_at").type) == "timestamp[us]"
    assert summary["rows_read"] == 5 and summary["rows_written"] == 3
    assert summary["rows_rejected"] == {"amount: not a valid number": 1, "no usable identifier": 1}
    assert summary["identifiers"]["mobile"] == {
        "empty": 1,
        "invalid": 1,
        "tokens": 3,
        "reference_parser": 1,
    }
    assert summary["undeclared_columns_dropped"] == 1


def test_parquet_input_gives_the_same_payload(tmp_path: Path, keys: Keys) -> None:
    csv_path = write_csv(tmp_path, HEADER + "".join(ROWS))
    from_csv, _ = run(keys, csv_path)
    raw = pa.csv.read_csv(
        csv_path,
        parse_options=pa.csv.ParseOptions(newlines_in_values=True),
        convert_options=pa.csv.ConvertOptions(
            column_types={c: pa.string() for c in SPEC.input_columns}
        ),
    )
    pq.write_table(raw, tmp_path / "in.parquet")
    from_parquet, _ = run(keys, tmp_path / "in.parquet")
    assert from_parquet.equals(from_csv)


def test_streams_in_batches(tmp_path: Path, keys: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source, "CSV_BLOCK", 4096)
    lines = [f"0912{i:07d},u{i}@x.ir,2026-02-01 00:00:00,Karaj,{i}\n" for i in range(3000)]
    table, summary = run(
        keys, write_csv(tmp_path, HEADER.replace(",internal_note", "") + "".join(lines))
    )
    assert summary["rows_written"] == 3000
    assert table.column("amount").to_pylist() == [float(i) for i in range(3000)]


def test_batches_worked_at_once_give_the_one_batch_result(
    tmp_path: Path, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rejections spread over ~30 batches, worked on by the pool out of order.
    lines = [
        f"{'n/a' if i % 11 == 0 else f'0912{i:07d}'},u{i}@x.ir,2026-02-01,Karaj,"
        f"{'lots' if i % 7 == 0 else i},x\n"
        for i in range(3000)
    ]
    path = write_csv(tmp_path, HEADER + "".join(lines))
    whole, whole_summary = run(keys, path, tmp_path / "whole.bundle")
    monkeypatch.setattr(source, "CSV_BLOCK", 4096)
    batched, batched_summary = run(keys, path, tmp_path / "batched.bundle")
    assert batched.equals(whole)
    assert batched_summary == whole_summary
    assert whole_summary["rejected_rows"]["amount: not a valid number"][:3] == [1, 8, 15]


def test_duckdb_trims_only_spaces_from_ascii_text() -> None:
    """What lets the typing SQL skip ``trim`` on ASCII cells without an edge space."""
    con = duckdb.connect()
    edge = "chr(i::INTEGER)"
    trimmed = con.sql(
        f"SELECT list(i ORDER BY i) FROM range(1, 128) r(i) "
        f"WHERE trim({edge} || 'x' || {edge}) = 'x'"
    ).fetchone()
    assert trimmed == ([32],)


TYPED_SPEC = parse_spec(
    {
        "dataset": "orders",
        "identifiers": {"mobile": "phone"},
        "columns": {"at": "timestamp", "day": "date", "amount": "number", "items": "integer"},
    }
)
_CELL = st.one_of(
    st.none(),
    st.sampled_from(["2026-01-02 10:00:00", "2026-01-02", "12", "-3.5", "1e3", "", "x"]),
    st.text(st.sampled_from(" \t\n\u00a0\u3000\u200c0123456789.-:+\u06f1\u0661"), max_size=12),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_CELL, _CELL, _CELL, _CELL), min_size=1, max_size=12), st.data())
def test_typing_without_trim_where_it_changes_nothing_equals_typing_with_it(
    rows: list[tuple[str | None, ...]], data: st.DataObject
) -> None:
    spaced = data.draw(st.lists(st.booleans(), min_size=len(rows), max_size=len(rows)))
    rows = [
        tuple(None if c is None else f" {c} " if pad else c for c in row)
        for row, pad in zip(rows, spaced, strict=True)
    ]
    names = list(TYPED_SPEC.columns)
    t = pa.table(
        {n: [r[i] for r in rows] for i, n in enumerate(names)},
        pa.schema([(n, pa.string()) for n in names]),
    )
    folded = frozenset(n for n in names if not _ascii(t.column(n)))
    trimmed = frozenset(n for n in names if n in folded or not _untrimmed(t.column(n)))
    con = duckdb.connect()
    con.register("t", t)
    fast = con.sql(_typing_sql(TYPED_SPEC, folded, trimmed)).to_arrow_table()
    assert fast.equals(con.sql(_typing_sql(TYPED_SPEC, folded, frozenset(names))).to_arrow_table())


def test_the_first_bad_row_is_named_whatever_the_threads_do(
    tmp_path: Path, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source, "CSV_BLOCK", 4096)
    rows = [f"0912{i:07d},1405/01/01,2026-01-01,تهران,1,1\n" for i in range(3000)]
    for bad in (2500, 700, 2900):
        rows[bad - 1] = rows[bad - 1].replace("2026-01-01", "1405-01-15")
    text = "mobile,ordered_at,day,city,amount,items\n" + "".join(rows)
    with pytest.raises(InputError) as err:
        run_spec(keys, write_csv(tmp_path, text), PERSIAN_SPEC)
    assert (err.value.row, err.value.field) == (700, "day")
    assert not leftovers(tmp_path)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "file is empty"),
        (HEADER.encode(), "header but no data rows"),
        (b"mobile,ordered_at,city,amount\n0912,2026-01-01,a,1\n", "missing column(s) ['mail']"),
        (b"mobile,mobile,mail,ordered_at,city,amount\n", "repeats column"),
        (
            (HEADER + ROWS[0] + "09123456789,a@b.ir,2026-01-01,Qom,1,x,EXTRA\n").encode(),
            "row 2: has 7 fields",
        ),
        ((HEADER + ROWS[0] + "09123456789,a@b.ir\n").encode(), "row 2: has 2 fields"),
        (
            HEADER.encode() + ROWS[0].encode() + b"09123456789,a\xff\xfe@b.ir,2026-01-01,Qom,1,x\n",
            "row 2: column 'mail': is not valid UTF-8",
        ),
        (b"\xef\xbb\xbf" + HEADER.encode() + ROWS[0].encode(), "byte-order mark"),
        ((HEADER + "n/a,nope,2026-01-01,Qom,1,x\n").encode(), "no row has a usable identifier"),
        ((HEADER + '"0912,unclosed quote\n').encode(), "row 1: has 1 fields"),
    ],
)
def test_bad_input_is_refused_with_file_row_and_reason(
    tmp_path: Path, keys: Keys, content: bytes, fragment: str
) -> None:
    path = write_csv(tmp_path, content)
    with pytest.raises(InputError) as err:
        run(keys, path)
    message = str(err.value)
    assert message.startswith(str(path))
    assert fragment in message
    assert "\n" not in message
    assert "0912" not in message and "9123456789" not in message  # never a raw value
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("ragged", "fragment"), [(False, "row 2501: column 'city'"), (True, "row 1200: has 2 fields")]
)
def test_the_first_bad_cell_or_row_is_named_from_a_later_batch(
    tmp_path: Path, keys: Keys, monkeypatch: pytest.MonkeyPatch, ragged: bool, fragment: str
) -> None:
    monkeypatch.setattr(source, "CSV_BLOCK", 4096)  # the bad cell is many batches in
    lines = [f"0912{i:07d},u{i}@x.ir,2026-02-01,Karaj,{i},x\n".encode() for i in range(1, 4001)]
    lines[2500] = lines[2500].replace(b"Karaj", b"Kar\xffaj")
    lines[3000] = lines[3000].replace(b"u3001", b"u\xfe3001")
    if ragged:
        lines[1199] = b"09120001199,too-few\n"
    path = write_csv(tmp_path, HEADER.encode() + b"".join(lines))
    with pytest.raises(InputError) as err:
        run(keys, path)
    assert fragment in str(err.value)
    assert "Kar" not in str(err.value) and "0912" not in str(err.value)  # never the cell
    assert leftovers(tmp_path) == []


def test_damaged_parquet_is_refused(tmp_path: Path, keys: Keys) -> None:
    pq.write_table(
        pa.table({c: ["09123456789"] for c in SPEC.input_columns}), tmp_path / "in.parquet"
    )
    data = (tmp_path / "in.parquet").read_bytes()
    (tmp_path / "in.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="not a readable Parquet file"):
        run(keys, tmp_path / "in.parquet")
    assert leftovers(tmp_path) == []


def test_existing_output_survives_a_failed_prepare(tmp_path: Path, keys: Keys) -> None:
    out = tmp_path / "out.bundle"
    run(keys, write_csv(tmp_path, HEADER + ROWS[0]), out)
    before = out.read_bytes()
    with pytest.raises(InputError):
        run(keys, write_csv(tmp_path, HEADER + "x,y\n", "bad.csv"), out)
    assert out.read_bytes() == before


def test_prepare_says_which_phase_it_is_in(tmp_path: Path, keys: Keys) -> None:
    phases: list[str] = []
    read: list[tuple[int, int]] = []
    path = write_csv(tmp_path, HEADER + "".join(ROWS))
    prepare(
        input_path=path,
        spec=SPEC,
        party="okala",
        match_key=keys.match,
        room_key=keys.room.public_key(),
        signing_key=keys.party,
        out=tmp_path / "out.bundle",
        progress=lambda done, total: read.append((done, total)),
        phase=phases.append,
    )
    assert phases[0].endswith(": 0 rows read")
    assert phases[-3:] == [
        "normalizing, tokenizing and encrypting: 5 rows read",
        "finishing the encrypted Parquet payload",
        "signing the bundle",
    ]
    assert read and read[-1][0] == read[-1][1] == path.stat().st_size


ID_SPEC = parse_spec({"dataset": "ids", "identifiers": {"mobile": "phone", "mail": "email"}})


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.one_of(mixed_script_mobile(), written, st.none()),
            st.one_of(st.emails(), written, st.none()),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_bundle_tokens_are_the_reference_tokens_of_every_row(
    tmp_path: Path, keys: Keys, rows: list[tuple[str | None, str | None]]
) -> None:
    """The whole native pipeline against phonenumbers and Python's hmac, row by row."""
    src = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"mobile": [r[0] for r in rows], "mail": [r[1] for r in rows]}), src)
    expected = []
    for phone, mail in rows:
        p, m = phone_reference(phone), email_reference(mail)
        if p is not None or m is not None:
            expected.append(
                (
                    None if p is None else token(keys.match, IdType.phone, p),
                    None if m is None else token(keys.match, IdType.email, m),
                )
            )
    out = tmp_path / "ids.bundle"
    out.unlink(missing_ok=True)
    if not expected:
        with pytest.raises(InputError, match="no row has a usable identifier"):
            prepare(
                input_path=src,
                spec=ID_SPEC,
                party="okala",
                match_key=keys.match,
                room_key=keys.room.public_key(),
                signing_key=keys.party,
                out=out,
            )
        return
    result = prepare(
        input_path=src,
        spec=ID_SPEC,
        party="okala",
        match_key=keys.match,
        room_key=keys.room.public_key(),
        signing_key=keys.party,
        out=out,
    )
    buf = io.BytesIO()
    open_bundle(out, keys.room, buf, expected_signer=keys.party.public_key())
    table = pq.read_table(io.BytesIO(buf.getvalue()))
    got = zip(table.column("mobile").to_pylist(), table.column("mail").to_pylist(), strict=True)
    assert list(got) == expected
    counts = result.summary.identifiers
    assert counts["mobile"]["tokens"] == sum(phone_reference(r[0]) is not None for r in rows)
    assert counts["mail"]["tokens"] == sum(email_reference(r[1]) is not None for r in rows)


# -- Persian data ---------------------------------------------------------------------------

PERSIAN_SPEC = parse_spec(
    {
        "dataset": "orders",
        "identifiers": {"mobile": "phone"},
        "columns": {
            "ordered_at": {"type": "timestamp", "calendar": "jalali"},
            "day": "date",
            "city": "category",
            "amount": "number",
            "items": "integer",
        },
        "time": "ordered_at",
    }
)


def run_spec(keys: Keys, path: Path, spec: object) -> tuple[pa.Table, dict]:
    out = path.with_suffix(".bundle")
    result = prepare(
        input_path=path,
        spec=spec,  # type: ignore[arg-type]
        party="okala",
        match_key=keys.match,
        room_key=keys.room.public_key(),
        signing_key=keys.party,
        out=out,
    )
    buf = io.BytesIO()
    open_bundle(out, keys.room, buf, expected_signer=keys.party.public_key())
    return pq.read_table(io.BytesIO(buf.getvalue())), result.summary.as_dict()


def test_persian_digits_letters_and_solar_hijri_dates_are_read(tmp_path: Path, keys: Keys) -> None:
    text = (
        "mobile,ordered_at,day,city,amount,items\n"
        "09123456789,۱۴۰۵/۰۱/۱۵ ۱۰:۰۰:۰۰,۲۰۲۶-۰۴-۰۴,شيراز,۱۲۰٬۰۰۰٫۵,۳\n"
        "09123456780,1405-01-01,2026-03-21,شیراز,\u200f٤٥\u200e,٧\n"
        "09123456781,1403/12/30 23:59:59,2025-03-20,كرمان ,−۵,0\n"
    )
    table, summary = run_spec(keys, write_csv(tmp_path, text), PERSIAN_SPEC)
    assert table.column("city").to_pylist() == ["شیراز", "شیراز", "کرمان"]
    assert table.column("amount").to_pylist() == [120000.5, 45.0, -5.0]
    assert table.column("items").to_pylist() == [3, 7, 0]
    stamps = [str(v) for v in table.column("ordered_at").to_pylist()]
    assert stamps == ["2026-04-04 10:00:00", "2026-03-21 00:00:00", "2025-03-20 23:59:59"]
    assert str(table.column("day")[0].as_py()) == "2026-04-04"
    assert summary["time_ranges"]["ordered_at"] == ["2025-03-20 23:59:59", "2026-04-04 10:00:00"]
    assert summary["rows_rejected"] == {}


def test_bad_persian_cells_are_rejected_by_reason_with_row_numbers(
    tmp_path: Path, keys: Keys
) -> None:
    text = (
        "mobile,ordered_at,day,city,amount,items\n"
        "09123456789,1404/12/30 10:00,2026-01-01,تهران,1,1\n"  # 1404 is not a leap year
        "09123456780,1405/01/01,2026-01-01,ـــ,1,1\n"  # only tatweel: emptied, not blank
        "09123456781,1405/01/01,2026-01-01,تهران,۱٬۲۳,1\n"  # a misplaced thousands mark
        "09123456782,1405/01/01,2026-01-01,تهران,1,۱٫۵\n"  # not a whole number
        "09123456783,1405/01/01,2026-01-01,,1,1\n"  # a blank category is a missing value
    )
    table, summary = run_spec(keys, write_csv(tmp_path, text), PERSIAN_SPEC)
    assert table.num_rows == 1
    assert summary["rows_rejected"] == {
        "ordered_at: not a valid jalali timestamp": 1,
        "city: only marks (tatweel, vowel signs)": 1,
        "amount: not a valid number": 1,
        "items: not a valid integer": 1,
    }
    assert summary["rejected_rows"] == {
        "ordered_at: not a valid jalali timestamp": [1],
        "city: only marks (tatweel, vowel signs)": [2],
        "amount: not a valid number": [3],
        "items: not a valid integer": [4],
    }
    # the manifest the room receives holds counts only
    manifest = open_bundle(tmp_path / "in.bundle", keys.room, io.BytesIO()).manifest
    assert "rejected_rows" not in manifest["summary"] and "time_ranges" not in manifest["summary"]


def test_a_solar_hijri_year_in_a_gregorian_column_is_refused(tmp_path: Path, keys: Keys) -> None:
    text = (
        "mobile,ordered_at,day,city,amount,items\n"
        + ("09123456789,1405/01/01,2026-01-01,تهران,1,1\n" * 3)
        + "09123456780,1405/01/01,۱۴۰۵-۰۱-۱۵,تهران,1,1\n"
    )
    out = tmp_path / "in.bundle"
    with pytest.raises(InputError) as err:
        run_spec(keys, write_csv(tmp_path, text), PERSIAN_SPEC)
    assert (err.value.row, err.value.field) == (4, "day")
    assert "year 1405 looks like a Solar Hijri date" in err.value.reason
    assert "calendar: jalali" in err.value.reason
    assert not out.exists() and not leftovers(tmp_path)


def test_a_gregorian_year_in_a_jalali_column_is_refused(tmp_path: Path, keys: Keys) -> None:
    text = "mobile,ordered_at,day,city,amount,items\n09123456789,2026-04-04,2026-04-04,a,1,1\n"
    with pytest.raises(InputError) as err:
        run_spec(keys, write_csv(tmp_path, text), PERSIAN_SPEC)
    assert (err.value.row, err.value.field) == (1, "ordered_at")
    assert "2026 is not a Solar Hijri year" in err.value.reason


LIST_SPEC = parse_spec(
    {"dataset": "suppression", "identifiers": {"phone": "phone", "mail": "email"}}
)


def seal_list(keys: Keys, path: Path, spec: object = LIST_SPEC) -> tuple[pa.Table, dict, dict]:
    out = path.with_suffix(".bundle")
    prepare(
        input_path=path,
        spec=spec,  # type: ignore[arg-type]
        party="okala",
        match_key=keys.match,
        room_key=keys.room.public_key(),
        signing_key=keys.party,
        out=out,
        kind="suppression",
    )
    buf = io.BytesIO()
    info = open_bundle(out, keys.room, buf, expected_signer=keys.party.public_key())
    return pq.read_table(io.BytesIO(buf.getvalue())), info.header, info.manifest


def test_a_suppression_list_carries_tokens_only_and_says_its_kind(
    tmp_path: Path, keys: Keys
) -> None:
    path = write_csv(tmp_path, "phone,mail\n0912 345 6789,\n,Ali@Gmail.com\n")
    table, header, manifest = seal_list(keys, path)
    assert header["kind"] == "suppression"
    assert table.column_names == ["phone", "mail"]
    assert table.column("phone").to_pylist()[0] == token(keys.match, IdType.phone, "+989123456789")
    assert table.column("mail").to_pylist()[1] == token(keys.match, IdType.email, "ali@gmail.com")
    assert manifest["rows"] == 2


def test_an_empty_suppression_list_withdraws_every_objection(tmp_path: Path, keys: Keys) -> None:
    table, header, manifest = seal_list(keys, write_csv(tmp_path, "phone,mail\n"))
    assert (table.num_rows, header["kind"], manifest["rows"]) == (0, "suppression", 0)
    with pytest.raises(InputError, match="no data rows"):  # a dataset may not be empty
        run(keys, write_csv(tmp_path, HEADER, "empty.csv"))


def test_a_suppression_list_with_columns_is_refused(tmp_path: Path, keys: Keys) -> None:
    spec = parse_spec(
        {"dataset": "x", "identifiers": {"phone": "phone"}, "columns": {"a": "number"}}
    )
    with pytest.raises(InputError, match="identifiers only"):
        seal_list(keys, write_csv(tmp_path, "phone,a\n09123456789,1\n"), spec)
    assert not (tmp_path / "in.bundle").exists()
