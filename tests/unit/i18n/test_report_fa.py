"""A report written in Persian: rtl page, Persian digits and dates, brands by name, no English.

Every template's released shape (tests/unit/room/report_shapes) is rendered
with ``language="fa"``; the page's visible text outside data (codes, file
names, bdi-isolated values) must hold no Latin word the Persian catalog does
not itself use, and no ASCII digit. The CSV and JSON stay machine-readable.
"""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cleanroom.i18n import translations
from cleanroom.i18n.current import display
from cleanroom.room.reports.render import RunInfo, SectionResult, write_outputs
from tests.unit.room.report_shapes import SHAPES

NAMES = {"okala": "اکالا", "ofogh": "افق", "filimo": "فیلیمو", "tapsi": "تپسی", "ozone": "اوزون"}
INFO = RunInfo(
    report="journeys-monthly",
    title="سفرهای ماهانه",
    run_id="0123456789abcdef",
    slot="2026-11-01T07:00:00+00:00",
    policy_version=3,
    generation=2,
    epsilon="1.4",
    generated_at="2026-11-01T07:00:09+00:00",
    recipients=["okala", "reviewers"],
)
LATIN = re.compile(r"[A-Za-z][A-Za-z0-9_.]*")


def kept_latin() -> set[str]:
    words: set[str] = set()
    for text in translations("fa")._catalog.values():
        words.update(LATIN.findall(str(text)))
    return words


class Visible(HTMLParser):
    """Text a reader sees as interface: not inside code, bdi, style, title or .data."""

    SKIP = frozenset({"code", "bdi", "style", "title", "script"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []
        self.texts: list[str] = []
        self.attrs: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "html":
            self.attrs = {k: v or "" for k, v in attrs}
        if tag in ("img", "meta", "link", "br"):
            return
        data = "data" in (dict(attrs).get("class") or "").split()
        self.stack.append(tag in self.SKIP or data or (bool(self.stack) and self.stack[-1]))

    def handle_endtag(self, tag: str) -> None:
        if tag not in ("img", "meta", "link", "br") and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if data.strip() and not (self.stack and self.stack[-1]):
            self.texts.append(data.strip())


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("report-fa") / "run"
    sections = [SectionResult(name, {}, "0.2", shape()) for name, shape in SHAPES.items()]
    files = write_outputs(
        out, INFO, sections, language="fa", brand_names=NAMES, timezone="Asia/Tehran"
    )
    return out, files


def test_the_page_is_persian_and_right_to_left(written: tuple[Path, list[str]]) -> None:
    out, _ = written
    page = Visible()
    page.feed((out / "report.html").read_text("utf-8"))
    assert page.attrs == {"lang": "fa", "dir": "rtl"}
    html = (out / "report.html").read_text("utf-8")
    assert '@font-face { font-family: "Vazirmatn"; src: url(data:font/woff2;base64,' in html
    text = "\n".join(page.texts)
    assert "۱۴۰۵/۰۸/۱۰ ۱۰:۳۰" in text  # generated at 07:00:09 UTC, Tehran time, Solar Hijri
    assert "(۲۰۲۶-۱۱-۰۱)" in text  # and the Gregorian date beside it
    kept = kept_latin()
    english = [t for t in page.texts if any(w not in kept for w in LATIN.findall(t))]
    assert not english, english
    ascii_digits = [t for t in page.texts if re.search(r"[0-9]", LATIN.sub("", t))]
    assert not ascii_digits, ascii_digits


def test_brands_are_shown_by_their_persian_names(written: tuple[Path, list[str]]) -> None:
    out, _ = written
    html = (out / "report.html").read_text("utf-8")
    for name in ("اکالا", "افق", "فیلیمو"):
        assert name in html
    assert ">okala<" not in html


def test_csv_and_json_stay_machine_readable(written: tuple[Path, list[str]]) -> None:
    out, files = written
    rows = list(csv.DictReader(io.StringIO((out / "01-overlap.csv").read_text("utf-8"))))
    assert rows and all(re.fullmatch(r"-?[0-9.]+", r["persons"]) for r in rows)
    assert "اکالا" not in (out / "01-overlap.csv").read_text("utf-8")
    assert json.loads((out / "results.json").read_text("utf-8"))["report"] == INFO.report
    assert sum(f.endswith(".png") for f in files) >= len(SHAPES)


@pytest.mark.parametrize(
    ("bin_", "persian"),
    [("7-14 days", "۷ تا ۱۴ روز"), ("۱-۷ days", "۱ تا ۷ روز"), ("90+ days", "۹۰ روز و بیشتر")],
)
def test_time_to_cross_bins_are_labelled_in_persian(bin_: str, persian: str) -> None:
    assert display(bin_, "fa", None) == persian
    assert display("7-14 days", "en", None) == "7-14 days"  # English: the data as it is
    assert display("7-14 days later", "fa", None) == "7-14 days later"  # only whole bins
