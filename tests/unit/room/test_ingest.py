"""Ingest's re-key: every party token replaced by the room's, natively, NULL kept, rows in order."""

from __future__ import annotations

import hashlib
import hmac
import os

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom.contract.keyed_hash import TOKEN_TYPE
from cleanroom.contract.spec import parse_spec
from cleanroom.room.ingest import _rekey

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
