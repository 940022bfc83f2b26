"""`cleanroom demo` end to end at a small size: the flow `make demo` runs, as a user sees it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.system.world import run_cli

PNG = b"\x89PNG\r\n\x1a\n"


def test_demo_publishes_the_journeys_report_with_every_template(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    done = run_cli("demo", "--persons", "3000", "--out", out, cwd=tmp_path, env={"COLUMNS": "400"})
    assert done.returncode == 0, done.stderr[-2000:]
    report = out / "report"
    assert f"report: {report / 'report.html'}" in done.stdout
    results = json.loads((report / "results.json").read_text())
    templates = [s["template"] for s in results["sections"]]
    assert templates == [
        "overlap", "transitions", "funnel", "time_to_cross", "retention", "segments", "lift",
    ]  # fmt: skip
    for section in results["sections"]:
        assert section["result"]["rows"], section["template"]
    html = (report / "report.html").read_text()
    pngs = sorted(report.glob("*.png"))
    assert len(pngs) >= len(templates)
    for png in pngs:
        assert png.read_bytes().startswith(PNG) and png.stat().st_size > 5_000, png.name
        assert png.name in html
    for template in templates:
        assert template in done.stdout
    # A second run starts from nothing, but only in a directory a demo made; this one in
    # Persian (the room's `language` setting): the report opens right-to-left, in Persian.
    again = run_cli("demo", "--persons", "1000", "--out", out, "--language", "fa", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    persian = (report / "report.html").read_text()
    assert '<html lang="fa" dir="rtl">' in persian
    assert "سفرهای مشتریان گروه میان برندها" in persian and "اکالا" in persian
    assert (out / "room" / "room.yaml").read_text() == "language: fa\n"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("not the demo's")
    refused = run_cli("demo", "--persons", "1000", "--out", tmp_path / "mine", cwd=tmp_path)
    assert refused.returncode != 0 and (tmp_path / "mine" / "keep.txt").exists()
