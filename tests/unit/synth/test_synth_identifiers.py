"""Canonical identifiers are unique and valid, and every messy rendering normalizes back."""

from __future__ import annotations

import numpy as np
import phonenumbers
import pyarrow as pa
import pytest
from synth_support import NORMALIZE, email

from cleanroom.synth import formats, identifiers
from cleanroom.synth.brands import DATASETS, PARTIES
from cleanroom.synth.generator import build_chunk
from cleanroom.synth.people import CARD, EMAIL, PHONE

BITS = {"phone": PHONE, "email": EMAIL, "card": CARD}


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def test_canonical_phones_are_unique_and_valid() -> None:
    index = np.arange(0, identifiers.MAX_PERSONS, 37)
    national = identifiers.national_numbers(index)
    assert np.unique(national).size == index.size
    sample = np.random.default_rng(0).choice(identifiers.MAX_PERSONS, 3_000, replace=False)
    for e164 in identifiers.e164(sample):
        number = phonenumbers.parse(e164, "IR")
        assert phonenumbers.is_valid_number(number)
        assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE
    prefixes = {int(str(n)[:3]) for n in identifiers.national_numbers(sample)}
    assert prefixes == set(identifiers.PREFIXES)


def test_canonical_cards_are_unique_luhn_valid_16_digits() -> None:
    index = np.arange(0, identifiers.MAX_PERSONS, 97)
    digits = identifiers.card_digits(index)
    assert np.unique(digits, axis=0).shape[0] == index.size
    for card in identifiers.cards(index[:2_000]):
        assert len(card) == 16
        assert luhn_ok(card)


def test_canonical_emails_are_unique_and_well_formed() -> None:
    index = np.arange(0, identifiers.MAX_PERSONS, 101)
    mails = identifiers.emails(index).to_pylist()
    assert len(set(mails)) == len(mails)
    assert all(email(m) == m for m in mails[:5_000])


def test_index_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        identifiers.national_numbers(np.array([identifiers.MAX_PERSONS]))


@pytest.fixture(scope="module")
def chunk():  # type: ignore[no-untyped-def]
    return build_chunk(11, 0, 0, 3_000, PARTIES)


def canonical(kind: str, index: np.ndarray) -> list[str]:
    if kind == "phone":
        return identifiers.e164(index)
    if kind == "card":
        return identifiers.cards(index)
    return identifiers.emails(index).to_pylist()


@pytest.mark.parametrize("ds", DATASETS, ids=lambda d: d.key)
def test_every_cell_normalizes_to_its_person_or_is_deliberately_broken(chunk, ds) -> None:  # type: ignore[no-untyped-def]
    table = chunk.tables[(ds.party, ds.name)]
    who = chunk.events[(ds.party, ds.name)].person
    p = PARTIES.index(ds.party)
    for column, kind in ds.identifiers.items():
        bit = BITS[kind.value]
        cells = table[column].to_pylist()
        expected = canonical(kind.value, chunk.people.index[who])
        on_file = (chunk.people.on_file[who, p] & bit) != 0
        broken = (chunk.people.broken[who, p] & bit) != 0
        for cell, want, here, bad in zip(cells, expected, on_file, broken, strict=True):
            assert (cell is not None) == here
            if cell is None:
                continue
            got = NORMALIZE[kind.value](cell)
            assert got == (None if bad else want), f"{ds.key}.{column}: a cell normalized wrongly"


def test_all_scripts_and_spacing_appear(chunk) -> None:  # type: ignore[no-untyped-def]
    cells = [c for c in chunk.tables[("ofogh", "purchases")]["mobile"].to_pylist() if c]
    assert any("۹" in c for c in cells)  # Persian
    assert any("٩" in c for c in cells)  # Arabic-Indic
    assert any(c != c.strip() for c in cells)
    assert len({len(c.strip()) for c in cells}) >= 5
    mails = [c for c in chunk.tables[("filimo", "views")]["email"].to_pylist() if c]
    assert any(c.strip().isupper() for c in mails)
    assert any(c[:1].isupper() and not c.isupper() for c in mails)
    assert any(c != c.strip() for c in mails)
    cards = [c for c in chunk.tables[("ofogh", "purchases")]["loyalty_card"].to_pylist() if c]
    assert any(" " in c.strip() for c in cards) and any("-" in c for c in cards)


@pytest.mark.parametrize("pattern", formats.PHONE_PATTERNS, ids=lambda p: p.text)
@pytest.mark.parametrize("script", formats.SCRIPTS)
def test_each_phone_pattern_in_each_script_parses(pattern, script) -> None:  # type: ignore[no-untyped-def]
    only = formats.Renderer(
        (pattern,), (pattern,), tuple(float(s == script) for s in formats.SCRIPTS)
    )
    index = np.arange(0, identifiers.MAX_PERSONS, identifiers.MAX_PERSONS // 50)
    n = index.size
    cells = only.render(
        np.random.default_rng(0), identifiers.phone_digits(index), np.arange(n),
        np.ones(n, bool), np.zeros(n, bool),
    ).to_pylist()  # fmt: skip
    assert [NORMALIZE["phone"](c) for c in cells] == identifiers.e164(index)


@pytest.mark.parametrize("pattern", formats.BAD_PHONE_PATTERNS, ids=lambda p: p.text)
def test_broken_phone_patterns_never_parse_even_as_keypad_letters(pattern) -> None:  # type: ignore[no-untyped-def]
    dialable = sum(ch == formats.SLOT or ch.isalnum() for ch in pattern.text)
    assert dialable <= 8
    index = np.arange(0, identifiers.MAX_PERSONS, identifiers.MAX_PERSONS // 200)
    n = index.size
    cells = formats.Renderer((pattern,), (pattern,), formats.PHONE_SCRIPT_WEIGHTS).render(
        np.random.default_rng(1), identifiers.phone_digits(index), np.arange(n),
        np.ones(n, bool), np.ones(n, bool),
    )  # fmt: skip
    assert all(NORMALIZE["phone"](c) is None for c in cells.to_pylist())


def test_absent_rows_are_null_not_empty() -> None:
    n = 10
    cells = formats.CARDS.render(
        np.random.default_rng(2), identifiers.card_digits(np.arange(n)), np.arange(n),
        np.zeros(n, bool), np.zeros(n, bool),
    )  # fmt: skip
    assert cells.null_count == n
    assert cells.type == pa.string()


@pytest.mark.parametrize("pattern", formats.BAD_CARD_PATTERNS, ids=lambda p: p.text)
def test_broken_card_patterns_hold_too_few_digits_for_any_card_rule(pattern) -> None:  # type: ignore[no-untyped-def]
    assert sum(ch == formats.SLOT or ch.isdigit() for ch in pattern.text) < 8
    index = np.arange(0, identifiers.MAX_PERSONS, identifiers.MAX_PERSONS // 50)
    n = index.size
    cells = formats.Renderer((pattern,), (pattern,)).render(
        np.random.default_rng(3), identifiers.card_digits(index), np.arange(n),
        np.ones(n, bool), np.ones(n, bool),
    )  # fmt: skip
    assert all(NORMALIZE["card"](c) is None for c in cells.to_pylist())


@pytest.mark.parametrize("ds", DATASETS, ids=lambda d: d.key)
def test_party_normalizer_recovers_exactly_the_usable_identifiers(chunk, ds) -> None:  # type: ignore[no-untyped-def]
    """Integration with ``cleanroom.party.normalize``: what the room will actually see."""
    party_normalize = pytest.importorskip("cleanroom.party.normalize")
    table = chunk.tables[(ds.party, ds.name)]
    who = chunk.events[(ds.party, ds.name)].person
    p = PARTIES.index(ds.party)
    for column, kind in ds.identifiers.items():
        bit = BITS[kind.value]
        usable = (chunk.people.usable[who, p] & bit) != 0
        expected = canonical(kind.value, chunk.people.index[who])
        got = party_normalize.normalize(table[column].combine_chunks(), kind).values
        want = [e if u else None for e, u in zip(expected, usable, strict=True)]
        assert got.to_pylist() == want, f"{ds.key}.{column}"
