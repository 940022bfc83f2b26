import hashlib

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom.contract.keys import new_symmetric_key
from cleanroom.contract.spec import IdType
from cleanroom.party.tokens import Tokenizer, token

KEY = new_symmetric_key("match-key")
TOKENIZER = Tokenizer(KEY)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.one_of(st.text(min_size=1, max_size=30), st.none()), max_size=20),
    st.sampled_from(list(IdType)),
)
def test_column_tokens_equal_reference(values: list[str | None], id_type: IdType) -> None:
    got = TOKENIZER(id_type, pa.array(values, pa.string())).to_pylist()
    assert got == [None if v is None else token(KEY, id_type, v) for v in values]


def test_tokens_are_domain_separated_and_keyed() -> None:
    value = "+989123456789"
    by_type = {t: token(KEY, t, value) for t in IdType}
    assert len(set(by_type.values())) == len(IdType)
    assert token(new_symmetric_key("match-key"), IdType.phone, value) != by_type[IdType.phone]
    # Not an unkeyed hash of the identifier, with or without the domain prefix.
    assert by_type[IdType.phone] not in {
        hashlib.sha256(value.encode()).digest(),
        hashlib.sha256(b"phone\x00" + value.encode()).digest(),
    }


def test_token_is_deterministic() -> None:
    assert token(KEY, IdType.email, "a@b.com") == token(KEY, IdType.email, "a@b.com")
    assert len(token(KEY, IdType.email, "a@b.com")) == 32
