"""Persian chart text: matplotlib shapes it (libraqm); we give it Persian digits and Vazirmatn."""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.text import Text

from cleanroom.i18n import current
from cleanroom.i18n.shaping import FONTS, localize, shape, shapes_text
from cleanroom.room.charts.draw import figure, png


def test_this_matplotlib_lays_out_persian() -> None:
    # Without libraqm matplotlib draws Persian as isolated letters, right to left reversed.
    assert shapes_text()
    assert (FONTS / "Vazirmatn-Regular.ttf").exists()
    assert (FONTS / "OFL.txt").read_text().startswith("Copyright")


def test_persian_text_keeps_its_logical_order_and_gets_persian_digits() -> None:
    assert shape("افراد ۹۵% 1,234") == "افراد ۹۵% ۱,۲۳۴"


def _labelled() -> Figure:
    fig = figure(4, 2)
    ax = fig.add_subplot()
    ax.bar([0, 1], [120, 3400], tick_label=["اکالا", "افق"])
    ax.set_title("افراد 2026")
    return fig


def test_a_persian_figure_is_set_in_vazirmatn_with_persian_digits() -> None:
    fig = _labelled()
    with current.use("fa"):
        localize(fig)
        data = png(fig)
    texts = [t for t in fig.findobj(Text) if isinstance(t, Text) and t.get_text()]
    title = next(t for t in texts if "افراد" in t.get_text())
    assert title.get_text() == "افراد ۲۰۲۶"
    assert "Vazirmatn" in title.get_fontfamily()
    ticks = fig.axes[0].yaxis.get_major_formatter().format_ticks([0, 1000, 2000])
    assert ticks == ["۰", "۱۰۰۰", "۲۰۰۰"]
    assert data.startswith(b"\x89PNG")


def test_an_english_figure_is_left_alone() -> None:
    fig = _labelled()
    with current.use("en"):
        localize(fig)
    title = next(t for t in fig.findobj(Text) if isinstance(t, Text) and "2026" in t.get_text())
    assert title.get_text() == "افراد 2026"
