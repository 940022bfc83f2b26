"""Category normalization (shared by party and room) and the quoting of user values."""

from __future__ import annotations

import unicodedata

import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cleanroom.text import (
    EmptiedValue,
    isolate,
    normalize_categories,
    normalize_category,
    quoted,
)

# Letters of Persian and Arabic text, their variants, marks, spaces and invisible characters.
PERSIAN = "ابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهیآئؤأإ"
VARIANTS = "يىكةۀەہھ"
MARKS = "\u0640\u064b\u064c\u064d\u064e\u064f\u0650\u0651\u0652\u0654\u0655\u0670"
SPACES = " \t\u00a0\u200c\u2009\u3000\n"
INVISIBLE = "\u200b\u200d\u200e\u200f\u202a\u202e\u2066\u2069\ufeff\u00ad"
DIGITS = "0123456789۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩"
PRESENTATION = "\ufeb4\ufef4\ufe8e\ufedb\ufb8f\ufef3"
ALPHABET = PERSIAN + VARIANTS + MARKS + SPACES + INVISIBLE + DIGITS + PRESENTATION + "abcAB-"

texts = st.text(alphabet=ALPHABET, max_size=30) | st.text(max_size=30)


def _norm_or_none(value: str) -> str | None:
    try:
        return normalize_category(value)
    except EmptiedValue:
        return None


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("شيراز", "شیراز"),  # Arabic yeh
        ("كرمان", "کرمان"),  # Arabic kaf
        ("مدرسة", "مدرسه"),  # teh marbuta
        ("خانۀ", "خانه"),  # heh with yeh above
        ("خرم\u200cآباد", "خرم آباد"),  # ZWNJ and space
        ("  تهران\u00a0 ", "تهران"),  # no-break and surrounding space
        ("تهـــران", "تهران"),  # tatweel
        ("تَهْران", "تهران"),  # vowel marks
        ("منطقه ۲", "منطقه 2"),  # Persian digits
        ("\u200fتهران\u200e", "تهران"),  # bidi marks
        ("\ufeb7\ufef4\ufeae\ufe8d\ufeaf", "شیراز"),  # presentation forms
        ("ي\u0654", "ئ"),  # decomposed yeh with hamza
        ("ی\u0654", "ئ"),  # Persian yeh + hamza is the same letter
    ],
)
def test_variants_collapse(a: str, b: str) -> None:
    assert normalize_category(a) == normalize_category(b)
    assert normalize_category(b) == normalize_category(normalize_category(b))


def test_distinct_values_stay_distinct() -> None:
    # Letters of their own are not folded: آمل and امل, ئ and ی, Latin case.
    assert normalize_category("آمل") != normalize_category("امل")
    assert normalize_category("پائیز") != normalize_category("پاییز")
    assert normalize_category("App") != normalize_category("app")


@settings(max_examples=400, deadline=None)
@given(texts)
@example("ـ")
@example("\u0654\u06cc")
def test_idempotent(value: str) -> None:
    once = _norm_or_none(value)
    if once is not None:
        assert normalize_category(once) == once
        assert unicodedata.is_normalized("NFC", once)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=PERSIAN + "abc ", min_size=1, max_size=20).filter(str.strip), st.data())
def test_letter_variants_collapse(word: str, data: st.DataObject) -> None:
    # Replace some letters by a variant spelling (and add marks, tatweel, invisible
    # characters between letters): the normalized value does not change.
    variants = {"ی": "يى", "ک": "ك", "ه": "ةەہھ"}
    out = []
    for letter in word:
        swap = letter in variants and data.draw(st.booleans())
        out.append(data.draw(st.sampled_from(variants[letter])) if swap else letter)
        if data.draw(st.booleans()):
            out.append(data.draw(st.sampled_from("\u0640\u200d\u200f\u064e")))
    assert normalize_category("".join(out)) == normalize_category(word)


@settings(max_examples=400, deadline=None)
@given(texts)
def test_never_empties_silently(value: str) -> None:
    visible = any(
        not (ch.isspace() or ch == "\u200c" or unicodedata.category(ch) in ("Cc", "Cf", "Zs"))
        for ch in value
    )
    try:
        result = normalize_category(value)
    except EmptiedValue:
        assert visible  # refused only when there was something to lose
        return
    if visible:
        assert result != ""
    else:
        assert result == ""


def test_emptied_value_is_refused_with_the_value_quoted() -> None:
    with pytest.raises(EmptiedValue, match="only marks"):
        normalize_category("ــَ")


def test_column_normalization_flags_emptied_rows() -> None:
    values, emptied = normalize_categories(pa.array(["شيراز", "شیراز", None, " ", "ـ"]))
    assert values.to_pylist() == ["شیراز", "شیراز", None, None, None]
    assert emptied.to_pylist() == [False, False, False, False, True]


def test_quoted_is_whole_isolated_and_shows_controls() -> None:
    long = "تهران" * 30
    assert quoted(long) == "'" + isolate(long) + "'"
    assert "<U+202E>" in quoted("a\u202eb")
    assert "\u200c" in quoted("می\u200cخواهم")  # ZWNJ is spelling, shown as is
