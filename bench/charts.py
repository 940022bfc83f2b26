"""The console's result chart: time to draw it (matplotlib, SVG) and to serve a kept one.

    python bench/charts.py
    python bench/charts.py --rows 10 40 60 --repeat 9

Each answer is a GROUP BY of ``--rows`` groups, a noisy count per group with
its 95% bound (a third of them mostly noise, one withheld, one only a
range), drawn in English and in Persian through the web UI's own
:func:`cleanroom.room.web.result_chart.chart` — a fresh query id per repeat,
so every repeat draws — then asked once more with the last id (the kept
chart). The first draw of the process also pays matplotlib's import and
font loading; it is timed apart. Results in ``bench/out/charts.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

from common import save, table

from cleanroom.i18n import LANGUAGES
from cleanroom.room.web.result_chart import chart


def answer(rows: int, query_id: str) -> dict[str, Any]:
    """A released answer of ``rows`` groups, as the engine returns one."""
    cells: list[dict[str, Any]] = []
    for i in range(rows):
        value = 40 * i + 7
        cells.append({"value": value, "error95": 120.0 if i % 3 else float(value + 50)})
    if rows > 2:
        cells[1] = {"value": None, "withheld": "min_noisy_persons"}
        cells[2] = {"value": None, "low": 0, "high": 900, "error95": None, "range_only": True}
    return {
        "query_id": query_id,
        "columns": ["city", "channel", "buyers"],
        "rows": [
            {"city": f"city {i}", "channel": "app" if i % 2 else "web", "buyers": cell}
            for i, cell in enumerate(cells)
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10, 40, 60])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    start = time.perf_counter()
    chart(answer(3, "warm-up"), "fa")
    first = time.perf_counter() - start
    results: list[dict[str, Any]] = []
    for rows in args.rows:
        for language in sorted(LANGUAGES):
            times = []
            for k in range(args.repeat):
                result = answer(rows, f"q-{rows}-{language}-{k}")
                start = time.perf_counter()
                chart(result, language)
                times.append(time.perf_counter() - start)
            start = time.perf_counter()
            chart(result, language)
            kept = time.perf_counter() - start
            results.append(
                {
                    "rows": rows,
                    "language": language,
                    "median_s": round(statistics.median(times), 3),
                    "min_s": round(min(times), 3),
                    "max_s": round(max(times), 3),
                    "kept_ms": round(kept * 1000, 2),
                }
            )
    path = save("charts", {"first_draw_s": round(first, 3), "runs": results})
    print(f"first draw of the process (imports, fonts): {first:.2f} s")
    print(
        table(
            ["rows", "language", "median s", "min s", "max s", "kept ms"],
            [list(r.values()) for r in results],
        )
    )
    print(f"load average {os.getloadavg()[0]:.1f}; results in {path}")


if __name__ == "__main__":
    main()
