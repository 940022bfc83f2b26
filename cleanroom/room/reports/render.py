"""A run's outputs: the HTML page, one PNG per chart, one CSV per table, and results.json.

Everything is written into a directory the caller later publishes in one
rename, so a run that fails half-way leaves no partial report behind. The page
is self-contained (inline style, charts embedded as data URIs) so it can be
mailed or archived alone, and it also links each PNG and CSV beside it.
Jinja2 autoescapes every value: template parameters are policy text, and a
policy is not trusted to be HTML-safe.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from cleanroom.i18n import (
    LANGUAGES,
    Language,
    current,
    direction,
    formats,
    labels,
    released,
    translations,
)
from cleanroom.i18n import cut as cut_text
from cleanroom.room.files import make_private
from cleanroom.room.reports.tables import tables_for


def _environment(language: Language) -> Environment:
    env = Environment(
        loader=PackageLoader("cleanroom.room.reports", "html"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.filters["number"] = lambda value: formats.number(value, language)
    env.filters["digits"] = lambda value: formats.digits(str(value), language)
    env.filters["decimal"] = lambda text: formats.localized(format(text), language)
    env.filters["label"] = lambda word: labels.label(word, language)
    env.filters["cut"] = lambda disclosure: cut_text.sentence(disclosure, language)
    env.globals["lang"] = language
    env.globals["words"] = frozenset(labels.WORDS)
    env.globals["dir"] = direction(language)
    env.globals["comma"] = "، " if language == "fa" else ", "
    return env


_envs = {language: _environment(language) for language in LANGUAGES}


@dataclass(frozen=True)
class SectionResult:
    """One section as run: its definition and the engine's released result."""

    template: str
    params: dict[str, str]
    epsilon: str
    result: dict[str, Any]


@dataclass(frozen=True)
class RunInfo:
    """What the page says about the run itself."""

    report: str
    title: str
    run_id: str
    slot: str
    policy_version: int
    generation: int | None
    epsilon: str
    generated_at: str
    recipients: list[str] = field(default_factory=list)


def write_outputs(
    out: Path,
    info: RunInfo,
    sections: list[SectionResult],
    *,
    language: Language = "en",
    brand_names: dict[str, str] | None = None,
    timezone: str = "UTC",
) -> list[str]:
    """Write every output file into ``out``; their names, page first.

    The page and its charts are in ``language`` (Persian: right-to-left,
    Persian digits, Solar Hijri dates in ``timezone``, brands by their display
    names); CSV and JSON stay machine-readable (ids, ASCII numbers).
    """
    with current.use(language, brand_names):
        return _write(out, info, sections, language, timezone)


def _write(
    out: Path, info: RunInfo, sections: list[SectionResult], language: Language, timezone: str
) -> list[str]:
    # matplotlib takes most of a second to import: only processes that draw pay for it.
    from cleanroom.room.charts import charts_for

    out.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    views = []
    for index, section in enumerate(sections, start=1):
        stem = f"{index:02d}-{section.template}"
        charts = []
        for chart in charts_for(section.template, section.result):
            name = f"{stem}-{chart.slug}.png"
            (out / name).write_bytes(chart.image)
            files.append(name)
            charts.append(
                {
                    "file": name,
                    "caption": chart.caption,
                    "data_uri": "data:image/png;base64," + base64.b64encode(chart.image).decode(),
                }
            )
        tables = []
        for table in tables_for(section.template, section.result):
            name = f"{stem}{'-' + table.name if table.name else ''}.csv"
            header, rows = table.csv_rows()
            (out / name).write_text(_csv(header, rows), encoding="utf-8")
            files.append(name)
            tables.append(
                {
                    "caption": table.caption,
                    "known": not table.name or table.name in labels.WORDS,
                    "csv": name,
                    "columns": table.columns,
                    "rows": table.shown(),
                }
            )
        noise, ranges = released.marks(released.cells_in(section.result))
        lift = section.result.get("lift")
        views.append(
            {
                "legend": released.legend(language, noise=noise, ranges=ranges),
                "rules": [
                    released.rule(entry, language, current.names())
                    for entry in section.result.get("rules") or []
                ],
                "evidence": released.evidence(
                    lift.get("evidence") if isinstance(lift, dict) else None, language
                ),
                "index": index,
                "template": section.template,
                "params": section.params,
                "epsilon": section.epsilon,
                "query_id": section.result.get("query_id", ""),
                "suppressed": section.result.get("suppressed_groups", 0),
                "opt_out": bool(section.result.get("suppression_applied")),
                "cut": section.result.get("cut"),
                "charts": charts,
                "tables": tables,
            }
        )
    results = {
        **asdict(info),
        "sections": [
            {
                "template": s.template,
                "params": s.params,
                "epsilon": s.epsilon,
                "result": s.result,
            }
            for s in sections
        ],
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True), "utf-8")
    page = (
        _envs[language]
        .get_template("report.html.j2")
        .render(
            info=info,
            sections=views,
            files=files,
            generated=formats.when(info.generated_at, language, timezone, gregorian=True),
            slot=formats.when(info.slot, language, timezone)
            if formats.parse_stamp(info.slot)
            else current._("on demand"),
            recipients=[current.brands_in(p) for p in info.recipients],
            font=_font_uri() if language == "fa" else "",
        )
    )
    (out / "report.html").write_text(page, encoding="utf-8")
    written = ["report.html", "results.json", *files]
    make_private(out)  # a report is for its recipients only, never other local accounts
    for name in written:
        make_private(out / name)
    return written


@cache
def _font_uri() -> str:
    """Vazirmatn as a data URI: the page stays one self-contained file (mailed, archived)."""
    woff2 = Path(__file__).parents[1] / "web" / "static" / "fonts" / "Vazirmatn-Regular.woff2"
    return "data:font/woff2;base64," + base64.b64encode(woff2.read_bytes()).decode()


def _csv(header: list[str], rows: list[dict[str, object]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(v) for k, v in row.items()})
    return buffer.getvalue()


def _csv_value(value: object) -> object:
    # A label that a spreadsheet would run as a formula is written as text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return "" if value is None else value
