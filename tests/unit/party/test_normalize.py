"""Normalization rules, and proof that the fast path never disagrees with the reference."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom.contract.spec import IdType
from cleanroom.party.normalize import (
    ARABIC_DIGITS,
    INVISIBLE,
    PERSIAN_DIGITS,
    card_reference,
    email_reference,
    normalize,
    phone_reference,
)


def fast(values: list[str | None], id_type: IdType) -> list[str | None]:
    return normalize(pa.array(values, pa.string()), id_type).values.to_pylist()


# --- the rules, one by one ---------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    [
        "09123456789",
        "9123456789",
        "+989123456789",
        "989123456789",
        "00989123456789",
        "+98 0912 345 6789",
        "98 0912 345 6789",
        "0098 0912 345 6789",
        "(0912) 345-6789",
        "0912.345.6789",
        "+98-912-3456789",
        "  0912 345 6789\t",
        "۰۹۱۲۳۴۵۶۷۸۹",
        "٠٩١٢٣٤٥٦٧٨٩",
        "+۹۸ ۹۱۲ ۳۴۵ ۶۷۸۹",
        "\u200e+98 912 345 6789\u200f",
        "0912\u00a0345\u200c6789",
    ],
)
def test_every_spelling_of_one_mobile_gives_one_e164(raw: str) -> None:
    assert phone_reference(raw) == "+989123456789"
    assert fast([raw], IdType.phone) == ["+989123456789"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+1 650 253 0000", "+16502530000"),  # foreign numbers are kept, in E.164
        ("021 8888 7777", "+982188887777"),  # Iranian landlines too
        ("0912-FLOWERS", None),  # letters: phonenumbers would invent digits
        ("0912 345 6789 ext 12", None),  # extensions are not identities
        ("0912345678", None),  # too short
        ("091234567890", None),  # too long
        ("0989123456789", None),
        ("n/a", None),
        ("-", None),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_phone_rules(raw: str | None, expected: str | None) -> None:
    assert phone_reference(raw) == expected
    assert fast([raw], IdType.phone) == [expected]


def test_counts_empty_and_invalid_separately() -> None:
    result = normalize(pa.array(["09123456789", "", None, "  ", "n/a", "12"]), IdType.phone)
    assert (result.empty, result.invalid) == (3, 2)
    assert result.fallback == 2  # only the rows the fast path could not accept


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ali.Rezaei@Gmail.COM ", "ali.rezaei@gmail.com"),
        ("\u200cali@chmail.ir\u200f", "ali@chmail.ir"),
        ("a.b+tag@example.co.ir", "a.b+tag@example.co.ir"),  # no provider-specific folding
        ("no-at-sign.example.com", None),
        ("a@b", None),
        ("a@@b.com", None),
        ("a b@c.com", None),
        ("ali@ex ample.com", None),
        ("علی@example.com", None),  # non-ASCII addresses are rejected, not guessed at
        ("", None),
        (None, None),
    ],
)
def test_email_rules(raw: str | None, expected: str | None) -> None:
    assert email_reference(raw) == expected
    assert fast([raw], IdType.email) == [expected]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("6037 9912 3456 7890", "6037991234567890"),
        ("6037-9912-3456-7890", "6037991234567890"),
        ("۶۰۳۷۹۹۱۲۳۴۵۶۷۸۹۰", "6037991234567890"),
        ("1234567", None),
        ("12345678901234567890", None),
        ("6037x9912", None),
        (None, None),
    ],
)
def test_card_rules(raw: str | None, expected: str | None) -> None:
    assert card_reference(raw) == expected
    assert fast([raw], IdType.card) == [expected]


# --- properties -----------------------------------------------------------------------------
valid_nsn = (
    st.integers(min_value=9_000_000_000, max_value=9_999_999_999)
    .map(str)
    .filter(lambda n: phone_reference("0" + n) is not None)
)
scripts = st.sampled_from(["0123456789", PERSIAN_DIGITS, ARABIC_DIGITS])
prefixes = st.sampled_from(["0", "", "+98", "+98 ", "+98 0", "0098", "0098 ", "98", "98 0", "+98-"])
separators = st.sampled_from(["", " ", "-", ".", "\u00a0", "\u200c"])
pads = st.sampled_from(["", " ", "  ", "\t", "\u200e", "\u200f", "\ufeff"])


@st.composite
def mobile_spelling(draw: st.DrawFn, nsn: str) -> str:
    digits = draw(scripts)
    sep = draw(separators)
    cut1, cut2 = sorted(draw(st.lists(st.integers(1, 9), min_size=2, max_size=2)))
    grouped = sep.join([nsn[:cut1], nsn[cut1:cut2], nsn[cut2:]])
    if draw(st.booleans()):
        grouped = f"({grouped[:3]}) {grouped[3:]}"
    text = draw(prefixes) + grouped
    text = text.translate(str.maketrans("0123456789", digits))
    return draw(pads) + text + draw(pads)


@settings(max_examples=300, deadline=None)
@given(st.data(), valid_nsn)
def test_all_generated_spellings_of_one_number_agree(data: st.DataObject, nsn: str) -> None:
    forms = [data.draw(mobile_spelling(nsn)) for _ in range(8)]
    expected = "+98" + nsn
    assert [phone_reference(f) for f in forms] == [expected] * len(forms)
    assert fast(forms, IdType.phone) == [expected] * len(forms)


phone_noise = st.text(
    alphabet=st.sampled_from(
        list("0123456789+-.() /x#?aZ") + list(PERSIAN_DIGITS[:3]) + list(INVISIBLE)
    ),
    max_size=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            phone_noise,
            st.none(),
            st.from_regex(r"\+?9[0-9]{9,12}", fullmatch=True),
            # repeated cells: the reference parses each distinct one once
            st.sampled_from(
                ["n/a", "?", "-", "021 8888 1234", "0912 345 67a9", "+44 20 7946 0958"]
            ),
        ),
        max_size=30,
    )
)
def test_fast_path_equals_reference_on_arbitrary_text(values: list[str | None]) -> None:
    assert fast(values, IdType.phone) == [phone_reference(v) for v in values]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.emails(), st.text(max_size=30), st.none()), max_size=30))
def test_email_sql_equals_reference(values: list[str | None]) -> None:
    assert fast(values, IdType.email) == [email_reference(v) for v in values]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.from_regex(r"[0-9 \-]{0,24}", fullmatch=True), st.text(max_size=20), st.none()
        ),
        max_size=30,
    )
)
def test_card_sql_equals_reference(values: list[str | None]) -> None:
    assert fast(values, IdType.card) == [card_reference(v) for v in values]


@settings(max_examples=100, deadline=None)
@given(st.emails())
def test_email_case_and_spacing_do_not_matter(address: str) -> None:
    expected = email_reference(address)
    variants = [address.upper(), f"  {address}\u200c", address.swapcase()]
    if expected is not None and address.isascii():
        assert [email_reference(v) for v in variants] == [expected] * 3
        assert fast(variants, IdType.email) == [expected] * 3


# --- every written form: scripts mixed per digit, Unicode spaces, marks, separators --------
UNICODE_SPACES = "\v\x1c\x1d\x1e\x1f\x85\u1680\u2003\u2009\u2028\u202f\u205f\u3000"
ANY_DIGIT = st.sampled_from(list("0123456789" + PERSIAN_DIGITS + ARABIC_DIGITS))
written = st.text(
    alphabet=st.one_of(
        ANY_DIGIT,
        st.sampled_from(list("+-.()/ \t\n\r\f") + list(INVISIBLE) + list(UNICODE_SPACES)),
        st.sampled_from(list("x#@_aZ")),
    ),
    max_size=24,
)


@st.composite
def mixed_script_mobile(draw: st.DrawFn) -> str:
    """An Iranian mobile in any prefix, each digit in any script, any separators."""
    nsn = "9" + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=9, max_size=9)))
    text = draw(st.sampled_from(["", "0", "+98", "0098", "98", "+980", "00980", "980"])) + nsn
    out = []
    for char in text:
        ch = char
        if ch.isdigit():
            ch = draw(st.sampled_from([ch, PERSIAN_DIGITS[int(ch)], ARABIC_DIGITS[int(ch)]]))
        out.append(ch + draw(st.sampled_from(["", "", " ", "-", ".", "\u200c", "\u00a0"])))
    pad = st.sampled_from(["", " ", "\t", "\u200e", "\ufeff", "\u3000", "\v"])
    return draw(pad) + "".join(out) + draw(pad)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(mixed_script_mobile(), written, st.none()), max_size=40))
def test_phone_fast_path_equals_reference_on_every_written_form(
    values: list[str | None],
) -> None:
    assert fast(values, IdType.phone) == [phone_reference(v) for v in values]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(written, st.from_regex(r"[0-9 \-]{6,24}", fullmatch=True)), max_size=30))
def test_card_fast_path_equals_reference_with_any_script_and_space(values: list[str]) -> None:
    assert fast(values, IdType.card) == [card_reference(v) for v in values]


email_parts = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("aZ09._+-@ \t\v\u212a\u0130ß") + list(INVISIBLE)), ANY_DIGIT
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(email_parts, st.emails().map(str.upper)), max_size=30))
def test_email_fast_path_equals_reference_on_unicode_lookalikes(values: list[str]) -> None:
    # KELVIN SIGN and dotted capital I lower-case to ASCII; the reference refuses them.
    assert fast(values, IdType.email) == [email_reference(v) for v in values]
