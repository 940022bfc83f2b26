"""Each template's parameters, declared once: name, kind, default, range and a line of help.

Two readers need the same list. The web console builds each template's form
from it (an input per parameter, with its default, range and help), and
:class:`~cleanroom.room.analyses.params.Params` checks every getter call
against it: a template asking for a parameter that is not declared here, or
with another range or default than declared, is our bug and fails loudly
(:class:`~cleanroom.errors.InternalError`) in the first test that runs it, so
the form can never offer what the template refuses, nor miss what it takes.

Defaults that depend on the policy or the calendar (every brand open to you,
"today", a metric's upper bound) are ``None`` here and described in ``help``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["brands", "step", "steps", "integer", "integers", "date", "month", "text", "table"]


@dataclass(frozen=True)
class Param:
    """One template parameter as a form and the checks see it.

    ``brands``: comma-separated brand ids; ``step(s)``: ``brand``,
    ``brand.dataset`` or ``brand.dataset:column=value`` (comma-separated for
    ``steps``); ``integers``: comma-separated whole numbers; ``table``:
    ``party.dataset``.
    """

    name: str
    kind: Kind
    help: str
    default: str | None = None
    low: int | None = None
    high: int | None = None
    required: bool = False


START = Param("start", "date", "first day included (YYYY-MM-DD); default a year before end")
END = Param("end", "date", "first day excluded (YYYY-MM-DD); default today")


def _window(default: int, help: str = "days allowed from one step to the next") -> Param:
    return Param("window_days", "integer", help, str(default), 1, 365)


SCHEMAS: dict[str, tuple[Param, ...]] = {
    "overlap": (
        Param("parties", "brands", "2-8 brands to combine; default every brand open to you"),
    ),
    "transitions": (
        Param("brands", "brands", "brands to follow (at least two); default every one open to you"),
        _window(30),
        Param(
            "max_transitions",
            "integer",
            "brand-to-brand moves kept per person (the L1 sensitivity)",
            "3",
            1,
            10,
        ),
        START,
        END,
    ),
    "funnel": (
        Param(
            "steps",
            "steps",
            "2-6 ordered steps: brand, brand.dataset or brand.dataset:column=value",
            required=True,
        ),
        _window(30),
        START,
        END,
    ),
    "time_to_cross": (
        Param("from", "step", "where the journey starts (a brand or brand.dataset)", required=True),
        Param("to", "step", "where it crosses to", required=True),
        Param(
            "bins",
            "integers",
            "ascending day edges starting at 0; the last bin is open-ended",
            "0,1,7,14,30,60,90",
        ),
        START,
        END,
    ),
    "retention": (
        Param("brands", "brands", "brands whose first event starts a cohort; default all open"),
        Param("active_at", "step", "count a later month as active only at this (chosen) brand"),
        Param("start", "month", "first cohort month (YYYY-MM); default twelve months ago"),
        Param("months", "integer", "months followed from start", "6", 2, 12),
    ),
    "segments": (
        Param("brands", "brands", "brands to segment; default every brand open to you"),
        Param("as_of", "date", "the day the segments describe (YYYY-MM-DD); default today"),
        Param("recent_days", "integer", "days that count as recent", "30", 1, 365),
        Param("risk_days", "integer", "days after which a person is lapsed", "90", 2, 730),
        Param("loyal_events", "integer", "events in risk_days that make one loyal", "6", 2, 1000),
        Param("lookback_days", "integer", "days of history read", "365", 1, 3 * 366),
    ),
    "lift": (
        Param(
            "campaign",
            "table",
            "the campaign table (party.dataset); default the collaboration's only one",
        ),
        Param("arm_column", "text", "the column assigning each person an arm", "arm"),
        Param("treatment", "text", "the arm value of the exposed group", "treatment"),
        Param("control", "text", "the arm value of the control group", "control"),
        Param(
            "outcome",
            "step",
            "where conversion is measured (brand or brand.dataset)",
            required=True,
        ),
        Param("metric", "text", "a bounded metric of the outcome dataset to sum as spend"),
        Param(
            "spend_cap",
            "integer",
            "each person's spend is capped here; default the metric's upper bound (or 1)",
            None,
            1,
            10**12,
        ),
        _window(28, "days from exposure in which the outcome counts"),
        START,
        END,
    ),
    "app_to_store": (
        Param("from", "step", "the earlier event (e.g. brand.dataset:channel=app)", required=True),
        Param(
            "to",
            "step",
            "where a first-ever event counts as new (e.g. a store brand)",
            required=True,
        ),
        _window(30, "days from an event at 'from' to the first-ever event at 'to'"),
        START,
        END,
    ),
}


def schema(template: str) -> dict[str, Param]:
    """The declared parameters of one template, by name (empty for an unknown template)."""
    return {p.name: p for p in SCHEMAS.get(template, ())}
