"""Released numbers in each language: Persian digits and percent sign, the mark, the rules said."""

from __future__ import annotations

import re

import pytest

from cleanroom.i18n import LANGUAGES, Language, released

NOISY = {"value": 783_232, "error95": 1_599_597.0}
RATE = {"value": 0.4213, "low": 0.4012, "high": 0.4421, "error95": 0.0208, "unit": "share"}
CLAMPED = {"value": 0, "low": 0, "high": 116_676, "error95": 116_676, "clamped": True}
ASCII_DIGIT = re.compile(r"[0-9]")


def test_english_reads_as_the_api_displays() -> None:
    assert released.text(NOISY, "en") == "≈ 800,000 ± 1,600,000 †"
    assert released.text(RATE, "en") == "42.1% [40.1%, 44.3%]"
    assert released.text(CLAMPED, "en") == "between 0 and 120,000"  # the range is the mark
    assert released.text({"value": 21_381, "error95": 9.0}, "en") == "21,381 ± 9"


def test_persian_writes_its_own_digits_separators_and_percent_sign() -> None:
    assert released.text(NOISY, "fa") == "≈ ۸۰۰٬۰۰۰ ± ۱٬۶۰۰٬۰۰۰ †"
    assert released.text(RATE, "fa") == "۴۲٫۱٪ [۴۰٫۱٪، ۴۴٫۳٪]"
    between = released.text(CLAMPED, "fa")
    assert between.startswith("بین ۰ و ۱۲۰٬۰۰۰") and not ASCII_DIGIT.search(between)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_rule_is_said_with_its_numbers_in_the_page_language(language: Language) -> None:
    minimum = released.rule({"rule": "min_noisy_persons", "cells": 3, "threshold": 10}, language)
    join = released.rule(
        {"rule": "join_required", "cells": 4, "party": "okala"}, language, {"okala": "اکالا"}
    )
    other = released.rule({"rule": "restricted_dimension", "cells": 2}, language)
    assert "min_noisy_persons" in minimum and "join_required" in join
    assert "\u2068اکالا\u2069" in join  # the party's name, bidi-isolated
    assert "restricted_dimension" in other
    digits = ("3", "10", "4", "2") if language == "en" else ("۳", "۱۰", "۴", "۲")
    for text, n in zip((minimum, minimum, join, other), digits, strict=True):
        assert n in text
    if language == "fa":
        assert not ASCII_DIGIT.search(minimum + join + other)
        assert "withheld" not in minimum


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_legend_explains_only_the_marks_used(language: Language) -> None:
    plain = released.legend(language, noise=False, ranges=False)
    both = released.legend(language, noise=True, ranges=True)
    assert len(plain) == 1 and len(both) == 3
    assert both[1].startswith("†")
    assert released.marks([NOISY, RATE]) == (True, False)
    assert released.marks([RATE, CLAMPED]) == (False, True)  # a range is its own mark
    assert released.marks([NOISY, CLAMPED]) == (True, True)


def test_a_withheld_cell_names_its_rule() -> None:
    cell = {"value": None, "withheld": "join_required", "unit": "share"}
    assert released.text(cell, "en") == "withheld (rule join_required)"
    assert "join_required" in released.text(cell, "fa")
    restricted = {"value": 40, "error95": 9.0, "restricted": "join_required"}
    assert released.text(restricted, "en") == "40 ± 9 (restricted by rule join_required)"


def test_the_lift_verdict_is_a_sentence_in_each_language() -> None:
    assert released.evidence("none", "en") == (
        "No evidence of an effect: the 95% interval of the difference includes 0."
    )
    assert released.evidence("treatment_higher", "fa") is not None
    assert released.evidence(None, "en") is None
