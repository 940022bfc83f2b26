"""Ingest's re-key: every party token replaced by the room's, natively, NULL kept, rows in order."""

from __future__ import annotations

import hashlib
import hmac
import io
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom.contract.keyed_hash import TOKEN_TYPE
from cleanroom.contract.spec import parse_spec
from cleanroom.room import ingest
from cleanroom.room.ingest import _rekey, _rekeyed

SPEC = parse_spec(
    {
        "dataset": "orders",
        "identifiers": {"mobile": "phone", "mail": "email"},
        "columns": {"amount": "number"},
    }
)
tokens = st.one_of(st.binary(min_size=32, max_size=32), st.none())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(tokens, tokens, st.floats(allow_nan=False)), max_size=30),
    st.binary(min_size=32, max_size=32),
)
def test_rekey_is_the_room_hmac_of_each_token(
    rows: list[tuple[bytes | None, bytes | None, float]], secret: bytes
) -> None:
    table = pa.table(
        {
            "mobile": pa.array([r[0] for r in rows], TOKEN_TYPE),
            "mail": pa.array([r[1] for r in rows], TOKEN_TYPE),
            "amount": pa.array([r[2] for r in rows], pa.float64()),
        }
    )
    out = _rekey(table, SPEC, secret)
    assert out.schema == table.schema
    key = secret.hex().encode("ascii")  # the documented definition, version 2
    for i, name in enumerate(("mobile", "mail")):
        want = [None if r[i] is None else hmac.digest(key, r[i], hashlib.sha256) for r in rows]
        assert out.column(name).to_pylist() == want
    assert out.column("amount").equals(table.column("amount"))


def test_no_party_token_survives_a_rekey() -> None:
    party = [os.urandom(32) for _ in range(1000)]
    table = pa.table({"mobile": pa.array(party, TOKEN_TYPE), "mail": pa.nulls(1000, TOKEN_TYPE)})
    out = _rekey(table, SPEC, os.urandom(32))
    assert not set(party) & set(out.column("mobile").to_pylist())
    assert out.column("mail").null_count == 1000


def test_batches_rekeyed_ahead_of_the_load_come_back_whole_and_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = 1000
    table = pa.table(
        {
            "amount": pa.array([float(i) for i in range(rows)]),
            "mail": pa.array([os.urandom(32) if i % 3 else None for i in range(rows)], TOKEN_TYPE),
            "mobile": pa.array([os.urandom(32) for _ in range(rows)], TOKEN_TYPE),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=300)
    monkeypatch.setattr(ingest, "BATCH_ROWS", 64)
    expected = pa.schema([table.schema.field(n) for n in ("mobile", "mail", "amount")])
    secret = os.urandom(32)
    parquet = pq.ParquetFile(pa.BufferReader(buffer.getvalue()))
    batches = list(_rekeyed(parquet, expected, SPEC, secret))
    assert len(batches) > 10
    assert pa.concat_tables(batches).equals(_rekey(table.select(expected.names), SPEC, secret))
