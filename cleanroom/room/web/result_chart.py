"""The console's result chart: drawn by the room's one chart stack, shown as an SVG image.

The chart is :func:`cleanroom.room.charts.result_chart` — the reports' bars,
whiskers and marks, by the same interval rule — so a number reads the same
on the page and in a report. It reaches the page as ``<img src="data:…">``:
the Content-Security-Policy already admits ``data:`` images, an SVG inside an
``<img>`` runs no script and loads nothing, its text is drawn as outlines (no
font needed, Persian shaped by matplotlib), and no markup of the chart is
ever mixed into the page. Its alternative text comes from the catalogs.

Drawing costs 0.4-1.4 s (10-40 bars on 2 busy cores: ``bench/charts.py``) and
the same answer is shown again and again (re-run from the cache, reopened
from the history), so drawn charts are kept per (query id, language, display
names, the columns and rows drawn), a small bounded number of them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections import OrderedDict
from typing import Any

from markupsafe import Markup

from cleanroom.i18n import Language, current

MAX_CACHED = 64  # charts kept: each is 50-100 kB

_cache: OrderedDict[tuple[str, ...], Markup | None] = OrderedDict()
_lock = threading.Lock()
_SIZE = re.compile(rb'<svg[^>]*?width="([0-9.]+)pt"[^>]*?height="([0-9.]+)pt"')


def _key(
    result: dict[str, Any], language: Language, names: dict[str, str] | None
) -> tuple[str, ...]:
    # Only what is drawn: a cached replay of the answer (another "cached", "seconds")
    # finds the chart of the first.
    drawn = {"columns": result.get("columns"), "rows": result.get("rows")}
    content = json.dumps(drawn, sort_keys=True, default=str).encode()
    shown = json.dumps(sorted((names or {}).items()), ensure_ascii=False)
    digest = hashlib.sha256(content).hexdigest()
    return (str(result.get("query_id", "")), language, shown, digest)


def chart(
    result: dict[str, Any], language: Language, names: dict[str, str] | None = None
) -> Markup | None:
    """The answer's chart as an ``<img>`` in ``language`` (None: a dry run, or nothing to draw)."""
    if result.get("dry_run") or not result.get("rows"):
        return None
    key = _key(result, language, names)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    shown = _draw(result, language, names)
    with _lock:
        _cache[key] = shown
        while len(_cache) > MAX_CACHED:
            _cache.popitem(last=False)
    return shown


def _draw(
    result: dict[str, Any], language: Language, names: dict[str, str] | None
) -> Markup | None:
    # matplotlib takes most of a second to import: the service pays it at the first chart.
    from cleanroom.room.charts import result_chart

    with current.use(language, names):
        drawn = result_chart(result)
    if drawn is None:
        return None
    size = _SIZE.search(drawn.image)
    width, height = (round(float(v) * 4 / 3) for v in size.groups()) if size else (768, 432)
    return Markup(
        '<img class="chart" alt="{alt}" title="{alt}" width="{w}" height="{h}" '
        'src="data:image/svg+xml;base64,{data}">'
    ).format(
        alt=drawn.caption,
        w=width,
        h=height,
        data=base64.b64encode(drawn.image).decode("ascii"),
    )
