"""Persian text on matplotlib charts: shaped, right-to-left, Persian digits, Vazirmatn.

Shaping (joined letter forms) and the bidirectional algorithm are done by
matplotlib itself since 3.11, which lays text out with libraqm (HarfBuzz +
FriBiDi); older versions drew Persian as isolated letters in reverse order,
so pyproject requires 3.11 and :func:`shapes_text` lets a test fail loudly on
a build without libraqm. Text must therefore reach matplotlib in logical
order, unshaped (pre-shaping it with ``arabic-reshaper``/``python-bidi``
would reverse it a second time).

What is left to do here, just before a figure of a Persian report is saved:
every text on it (titles, axis labels, annotations, legends, and tick labels
through their formatter) gets Persian digits and Vazirmatn (shipped in
``fonts/``, OFL, so a fresh machine draws the same PNG).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from matplotlib import font_manager, ft2font, rc_context
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FixedFormatter, Formatter

from cleanroom.i18n import current
from cleanroom.i18n.formats import digits

FONTS = Path(__file__).parent / "fonts"
FAMILY = "Vazirmatn"


@cache
def _font() -> str:
    for ttf in sorted(FONTS.glob("Vazirmatn-*.ttf")):
        font_manager.fontManager.addfont(str(ttf))
    return FAMILY


def shapes_text() -> bool:
    """Whether this matplotlib lays out complex scripts (built with libraqm)."""
    return bool(getattr(ft2font, "__libraqm_version__", ""))


def shape(text: str) -> str:
    """Text as a Persian chart shows it: Persian digits (matplotlib shapes and orders it)."""
    return digits(text, "fa")


class _Shaped(Formatter):
    """Any tick formatter, its labels in Persian digits (keeping its locations and offset)."""

    def __init__(self, inner: Formatter) -> None:
        self.inner = inner

    def __call__(self, x: float, pos: int | None = None) -> str:
        return shape(str(self.inner(x, pos)))

    def format_ticks(self, values: Sequence[float]) -> list[str]:
        return [shape(str(s)) for s in self.inner.format_ticks(list(values))]

    def set_locs(self, locs: Any) -> None:
        self.inner.set_locs(locs)

    def get_offset(self) -> str:
        return shape(str(self.inner.get_offset()))


def localize(fig: Figure) -> None:
    """Make a figure read right in the language being written (a no-op but in Persian)."""
    if current.language() != "fa":
        return
    family = _font()
    for text in fig.findobj(Text):
        assert isinstance(text, Text)
        text.set_text(shape(text.get_text()))
        text.set_fontfamily([family, "DejaVu Sans"])  # DejaVu: arrows and symbols
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for which in ("major", "minor"):
                getter = axis.get_major_formatter if which == "major" else axis.get_minor_formatter
                setter = axis.set_major_formatter if which == "major" else axis.set_minor_formatter
                inner = getter()
                if isinstance(inner, _Shaped):
                    continue
                if isinstance(inner, FixedFormatter):
                    setter(FixedFormatter([shape(str(s)) for s in inner.seq]))
                else:
                    setter(_Shaped(inner))


@contextmanager
def fonts() -> Iterator[None]:
    """While saving: text matplotlib creates at draw time (tick labels) is in Vazirmatn too."""
    if current.language() != "fa":
        yield
        return
    with rc_context({"font.family": [_font(), "DejaVu Sans"]}):
        yield
