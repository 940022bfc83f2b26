"""The one chart stack: one interval rule, read back from what the console and a report draw."""

from __future__ import annotations

import base64
import io
import json
import re
from typing import Any

import pytest
from PIL import Image

from cleanroom.i18n import Language, current
from cleanroom.room.charts import bars, charts_for, result_chart
from cleanroom.room.charts.draw import finish
from cleanroom.room.charts.whiskers import WITHHELD, Whisker, whisker
from cleanroom.room.reports.cells import flatten
from cleanroom.room.web.result_chart import chart

# A funnel as the template releases it: a clear step, a step that is mostly noise
# (its lower end below 0), a withheld step.
FUNNEL: dict[str, Any] = {
    "query_id": "q-funnel",
    "columns": ["step", "label", "persons"],
    "rows": [
        {"step": 1, "label": "okala", "persons": {"value": 1200, "error95": 35.5}},
        {"step": 2, "label": "ofogh", "persons": {"value": 20, "error95": 35.5}},
        {"step": 3, "label": "ozone", "persons": {"value": None, "withheld": "min_noisy_persons"}},
    ],
}


RANGE_ONLY = {"value": None, "low": 0, "high": 500, "error95": None, "range_only": True}
CLAMPED = {"value": 500, "low": 420, "high": 500, "error95": 80, "clamped": True}


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ({"value": 138, "error95": 90.0}, Whisker(138.0, 48.0, 228.0, "")),
        # A count that is mostly noise keeps the lower end its ± states: below 0, never cut.
        ({"value": 5, "error95": 9.0}, Whisker(5.0, -4.0, 14.0, "noise")),
        ({"value": -3, "error95": 2}, Whisker(-3.0, -5.0, -1.0, "")),
        (
            {"value": 0.4, "low": 0.3, "high": 0.6, "error95": 0.2, "unit": "share"},
            Whisker(0.4, 0.3, 0.6, ""),
        ),
        # Only a range: no bar, as the table prints no value.
        (RANGE_ONLY, Whisker(None, 0.0, 500.0, "range")),
        (CLAMPED, Whisker(None, 420.0, 500.0, "range")),
        ({"value": None, "withheld": "min_noisy_persons", "unit": "share"}, WITHHELD),
        ({"value": 12}, WITHHELD),  # a number without any bound is never drawn as one
        (None, WITHHELD),
        ("okala", WITHHELD),
    ],
)
def test_one_rule_says_what_a_bar_shows(cell: object, expected: Whisker) -> None:
    assert whisker(cell) == expected


def _svg_bars(markup: str) -> list[dict[str, Any]]:
    data = re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', markup)
    assert data is not None, markup[:200]
    svg = base64.b64decode(data.group(1)).decode()
    found = re.search(r"<dc:description>(.*?)</dc:description>", svg, re.S)
    assert found is not None
    bars_: list[dict[str, Any]] = json.loads(found.group(1))["bars"]
    return bars_


def _png_bars(png: bytes) -> list[dict[str, Any]]:
    with Image.open(io.BytesIO(png)) as image:
        bars_: list[dict[str, Any]] = json.loads(image.info["Description"])["bars"]
    return bars_


def _ends(drawn: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(b["value"], b["low"], b["high"], b["mark"]) for b in drawn]


@pytest.mark.parametrize("language", ["en", "fa"])
def test_the_console_and_the_report_draw_the_same_interval_ends(language: Language) -> None:
    page = chart(FUNNEL, language)
    assert page is not None
    with current.use(language):
        (report,) = charts_for("funnel", FUNNEL)
    on_page, in_report = _ends(_svg_bars(str(page))), _ends(_png_bars(report.image))
    assert on_page == in_report
    # ... and they are the ends the report's CSV states for the same cells.
    csv = [flatten("persons", row["persons"]) for row in FUNNEL["rows"]]
    assert [(b[1], b[2]) for b in on_page] == [(c["persons_low"], c["persons_high"]) for c in csv]
    assert on_page[1] == (20.0, -15.5, 55.5, "noise")  # below 0, marked, not cut
    assert on_page[2] == (None, None, None, "withheld")


def _footnote(result: dict[str, Any], language: Language = "en") -> tuple[str, Any]:
    with current.use(language):
        ((_, _, fig),) = bars.generic(result)
        described = finish(fig)
    return fig.get_supxlabel(), described


def test_marks_are_explained_and_long_results_are_capped() -> None:
    rows = [{"k": f"g{i}", "n": {"value": 100 + i, "error95": 10.0}} for i in range(45)]
    rows[0]["n"] = {"value": 3, "error95": 10.0}
    rows[1]["n"] = {"value": None, "low": 0, "high": 9, "error95": None, "range_only": True}
    rows[2]["n"] = {"value": None, "withheld": "min_noisy_persons"}
    note, described = _footnote({"columns": ["k", "n"], "rows": rows})
    assert "the first 40 of 45 rows are drawn" in note
    assert "† mostly noise" in note and "↔ only the range" in note and "n/a: not released" in note
    assert len(json.loads(described["Description"])["bars"]) == bars.MAX_BARS
    plain, _ = _footnote({"columns": ["k", "n"], "rows": rows[3:10]})
    assert plain == ""  # nothing marked, nothing left out: no footnote


def test_a_persian_chart_reads_right_to_left_in_persian() -> None:
    rows = [{"k": "تهران", "n": {"value": 3, "error95": 10.0}}, {"k": "کرج", "n": None}]
    with current.use("fa"):
        ((_, _, fig),) = bars.generic({"columns": ["k", "n"], "rows": rows})
        finish(fig)
    ax = fig.axes[0]
    assert ax.xaxis_inverted()  # bars grow from the right
    assert ax.yaxis.get_ticks_position() == "right"
    note = fig.get_supxlabel()
    assert "بیشتر نویز" in note and "ناموجود" in note
    assert not re.search(r"[A-Za-z0-9]", note), note  # Persian words and digits only


def test_a_result_without_released_numbers_has_no_chart() -> None:
    assert result_chart({"columns": ["a"], "rows": [{"a": "x"}]}) is None
    assert result_chart({"columns": [], "rows": []}) is None


@pytest.mark.parametrize(
    ("language", "grouped"), [("en", r"^\d{2},000$"), ("fa", r"^[۰-۹]{2}٬۰۰۰$")]
)
def test_value_ticks_are_grouped_like_the_tables(language: Language, grouped: str) -> None:
    rows = [{"k": "a", "n": {"value": 52_000, "error95": 900.0}}]
    with current.use(language):
        ((_, _, fig),) = bars.generic({"columns": ["k", "n"], "rows": rows})
        finish(fig)
        fig.canvas.draw()
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert any(re.match(grouped, t) for t in ticks), ticks
