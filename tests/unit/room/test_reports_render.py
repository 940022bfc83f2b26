"""Rendering a report: every chart referenced and real, every number with its bound."""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from cleanroom.room.charts import charts_for
from cleanroom.room.reports.render import RunInfo, SectionResult, write_outputs
from tests.unit.room import report_shapes
from tests.unit.room.report_shapes import SHAPES, count, released

INFO = RunInfo(
    report="journeys-monthly",
    title="Monthly journeys <script>alert(1)</script>",
    run_id="0123456789abcdef",
    slot="2026-11-01T07:00:00+00:00",
    policy_version=3,
    generation=2,
    epsilon="1.4",
    generated_at="2026-11-01T07:00:09+00:00",
    recipients=["okala", "reviewers"],
)


class Page(HTMLParser):
    """Collects image references, links and every table cell (header or data)."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.links: list[str] = []
        self.cells: list[tuple[str, str]] = []  # (tag, text) inside <table>
        self._table = 0
        self._cell: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs))
        if tag == "a":
            self.links.append(dict(attrs).get("href") or "")
        if tag == "table":
            self._table += 1
        if self._table and tag in ("td", "th"):
            self._cell, self._text = tag, []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table -= 1
        if self._cell == tag:
            self.cells.append((tag, "".join(self._text).strip()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell:
            self._text.append(data)


BOUNDED = re.compile(r"± \d|\[[-\d.,% ]+, [-\d.,% ]+\]")


def render(tmp_path: Path, shapes: dict[str, Any]) -> tuple[list[str], Page, str]:
    sections = [
        SectionResult(name, {"window_days": "30", "note": "<b>x</b>"}, "0.2", make())
        for name, make in shapes.items()
    ]
    files = write_outputs(tmp_path, INFO, sections)
    html = (tmp_path / "report.html").read_text()
    page = Page()
    page.feed(html)
    return files, page, html


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], Page, str]:
    out = tmp_path_factory.mktemp("report")
    return (out, *render(out, SHAPES))


def test_the_page_references_every_chart_and_every_chart_is_a_real_png(
    rendered: tuple[Path, list[str], Page, str],
) -> None:
    out, files, page, _ = rendered
    pngs = [f for f in files if f.endswith(".png")]
    # every template shape has at least one chart; transitions has its heatmap and Sankey
    for template in SHAPES:
        assert any(f.split("-", 1)[1].startswith(template) for f in pngs), template
    assert {"02-transitions-heatmap.png", "02-transitions-sankey.png"} <= set(pngs)
    assert {"01-overlap-upset.png", "01-overlap-pairwise.png"} <= set(pngs)
    assert sorted(i["data-file"] for i in page.images) == sorted(pngs)
    assert set(pngs) <= set(page.links)
    for image in page.images:
        assert (image["src"] or "").startswith("data:image/png;base64,")  # self-contained
        assert image["alt"]
    for name in pngs:
        path = out / name
        assert path.stat().st_size > 5_000, name
        with Image.open(path) as picture:
            assert picture.format == "PNG"
            picture.load()
            colours = picture.convert("RGB").getcolors(maxcolors=1_000_000)
            assert colours is not None and len(colours) > 10, name
            assert picture.width >= 400 and picture.height >= 200


def test_no_number_in_any_table_lacks_its_error_bound(
    rendered: tuple[Path, list[str], Page, str],
) -> None:
    _, _, page, _ = rendered
    data = [text for tag, text in page.cells if tag == "td"]
    assert len(data) > 50
    for text in data:
        if re.search(r"\d", text):
            assert BOUNDED.search(text), text
    # labels (brands, months, steps, bins) are row headers, never data cells
    assert ("th", "okala") in page.cells and ("th", "2026-01") in page.cells


def test_a_number_without_a_bound_is_never_shown(tmp_path: Path) -> None:
    bare = released(["city", "orders"], [{"city": "Qom", "orders": {"value": 98765}}])
    _, page, html = render(tmp_path, {"city_counts": lambda: bare})
    text = re.sub(r'src="data:[^"]*"', "", html)
    assert "98765" not in text and "98,765" not in text
    assert ("td", "— (no error bound)") in page.cells


def test_every_number_is_in_a_csv_with_its_bounds(
    rendered: tuple[Path, list[str], Page, str],
) -> None:
    out, files, page, _ = rendered
    csvs = [f for f in files if f.endswith(".csv")]
    assert set(csvs) <= set(page.links)
    lift = list(csv.DictReader(io.StringIO((out / "07-lift.csv").read_text())))
    assert lift[0]["arm"] == "treatment"
    assert {"rate", "rate_error95", "rate_low", "rate_high"} <= set(lift[0])
    effect = list(csv.DictReader(io.StringIO((out / "07-lift-lift.csv").read_text())))
    assert [r["measure"] for r in effect] == ["difference", "relative"]
    assert float(effect[0]["estimate_low"]) == 0.03
    results = json.loads((out / "results.json").read_text())
    assert [s["template"] for s in results["sections"]] == list(SHAPES)
    assert results["sections"][0]["result"]["rows"][0]["persons"]["error95"] == 29.96


def test_the_pairwise_rate_gets_a_conservative_interval(
    rendered: tuple[Path, list[str], Page, str],
) -> None:
    out, _, _, _ = rendered
    rows = list(csv.DictReader(io.StringIO((out / "01-overlap-pairwise.csv").read_text())))
    for row in rows:
        low, rate, high = float(row["rate_low"]), float(row["rate"]), float(row["rate_high"])
        assert 0 <= low < rate < high <= 1


def test_the_page_escapes_policy_text(rendered: tuple[Path, list[str], Page, str]) -> None:
    _, _, _, html = rendered
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "<b>x</b>" not in html


def test_a_section_that_released_nothing_still_gets_a_chart(tmp_path: Path) -> None:
    empty = released(["combination", "persons"], [], pairwise=[])
    files, page, _ = render(tmp_path, {"overlap": lambda: empty})
    assert files.count("01-overlap-empty.png") == 1
    assert ("th", "nothing released") in page.cells


def test_an_unexpected_shape_falls_back_to_the_generic_chart() -> None:
    odd = released(["origin", "persons"], [{"origin": "okala", "persons": count(40)}])
    charts = charts_for("transitions", odd)  # no 'from'/'to' columns
    assert [c.slug for c in charts] == ["bars"]
    assert charts_for("some_future_template", report_shapes.unknown())[0].slug == "bars"


def test_labels_that_look_like_formulas_are_quoted_in_csv(tmp_path: Path) -> None:
    risky = released(["label", "persons"], [{"label": "=HYPERLINK(1)", "persons": count(12)}])
    render(tmp_path, {"custom": lambda: risky})
    assert "'=HYPERLINK(1)" in (tmp_path / "01-custom.csv").read_text()


@pytest.mark.parametrize(
    ("language", "notice"),
    [
        ("en", "Customers who opted out were left out of these numbers at every brand."),
        ("fa", "مشتریانی که انصراف داده‌اند، در همهٔ برندها از این اعداد کنار گذاشته شده‌اند."),
    ],
)
def test_a_section_says_when_opted_out_customers_were_left_out(
    tmp_path: Path, language: str, notice: str
) -> None:
    plain = released(["city", "orders"], [{"city": "Qom", "orders": count(40, 3)}])
    applied = {**plain, "suppression_applied": True}
    sections = [
        SectionResult("city_counts", {}, "0.2", plain),
        SectionResult("city_counts", {}, "0.2", applied),
    ]
    write_outputs(tmp_path, INFO, sections, language=language)  # type: ignore[arg-type]
    html = (tmp_path / "report.html").read_text()
    assert html.count(notice) == 1  # the second section only
    assert html.index('id="section-1"') < html.index('id="section-2"') < html.index(notice)
    assert "suppression_applied" not in html  # a notice, never shown as a figure of the template
