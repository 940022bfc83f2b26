"""The words the room stores and a page shows: statuses, roles, periods, kinds of change.

They are stored in English (they are also API values), so they are
translated where they are shown: each is marked here for extraction, and
:func:`label` looks a stored word up. A word the room does not know (a new
status added later) is shown as stored, never dropped.
"""

from __future__ import annotations

from cleanroom.i18n import N_, Language, translations

WORDS: dict[str, str] = {
    # policy versions, report runs, audit outcomes, dataset states
    "active": N_("active"),
    "proposed": N_("proposed"),
    "rejected": N_("rejected"),
    "superseded": N_("superseded"),
    "withdrawn": N_("withdrawn"),
    "running": N_("running"),
    "done": N_("done"),
    "refused": N_("refused"),
    "failed": N_("failed"),
    "ok": N_("ok"),
    "denied": N_("denied"),
    "disabled": N_("disabled"),
    "approve": N_("approve"),
    "reject": N_("reject"),
    # roles
    "party_admin": N_("party admin"),
    "analyst": N_("analyst"),
    "reviewer": N_("reviewer"),
    "room_admin": N_("room admin"),
    "reporter": N_("reporter"),
    # budget periods
    "day": N_("day"),
    "week": N_("week"),
    "month": N_("month"),
    "quarter": N_("quarter"),
    "year": N_("year"),
    # policy diffs
    "loosens": N_("loosens"),
    "tightens": N_("tightens"),
    "neutral": N_("neutral"),
    "added": N_("added"),
    "removed": N_("removed"),
    "changed": N_("changed"),
    # report runs
    "schedule": N_("schedule"),
    "manual": N_("manual"),
    # mechanisms
    "laplace": N_("Laplace"),
    "gaussian": N_("Gaussian"),
    # column types and roles in the console's table list
    "person": N_("person"),
    "join key": N_("join key"),
    "join on it; never in the output": N_("join on it; never in the output"),
    "dimension": N_("dimension"),
    "metric": N_("metric"),
    "time": N_("time"),
    "stored": N_("stored"),
    "timestamp": N_("timestamp"),
    "date": N_("date"),
    "category": N_("category"),
    "integer": N_("integer"),
    "number": N_("number"),
    "boolean": N_("boolean"),
    # released columns and figures of the templates (report tables, chart legends)
    "persons": N_("persons"),
    "brand": N_("brand"),
    "brands": N_("brands"),
    "combination": N_("combination"),
    "from": N_("from"),
    "to": N_("to"),
    "step": N_("step"),
    "label": N_("label"),
    "bin": N_("bin"),
    "cohort": N_("cohort"),
    "share": N_("share"),
    "segment": N_("segment"),
    "arm": N_("arm"),
    "rate": N_("rate"),
    "converted": N_("converted"),
    "conversion": N_("conversion"),
    "spend_per_person": N_("spend per person"),
    "measure": N_("measure"),
    "estimate": N_("estimate"),
    "both": N_("both"),
    "pair": N_("pair"),
    "pairwise": N_("pairwise"),
    "lift": N_("lift"),
    "difference": N_("difference"),
    "relative": N_("relative"),
    "evidence": N_("evidence"),
    "spend_difference": N_("spend difference"),
    "city": N_("city"),
    "orders": N_("orders"),
    "treatment": N_("treatment"),
    "control": N_("control"),
    # report recipients that are not parties
    "reviewers": N_("reviewers"),
    # the templates, by name
    "overlap": N_("overlap"),
    "transitions": N_("transitions"),
    "funnel": N_("funnel"),
    "time_to_cross": N_("time to cross"),
    "retention": N_("retention"),
    "segments": N_("segments"),
    "app_to_store": N_("app to store"),
    # app_to_store: persons new at B, and those of them who came from A
    "after_origin": N_("after the origin"),
    # segments
    "new": N_("new"),
    "loyal": N_("loyal"),
    "at_risk": N_("at risk"),
    "lapsed": N_("lapsed"),
}


def label(word: object, language: Language) -> str:
    """A stored word as a reader of ``language`` reads it (unknown words unchanged)."""
    text = str(word)
    known = WORDS.get(text)
    return translations(language).gettext(known) if known is not None else text


# Each journey template's one-line summary (the first line of its module's
# docstring, after the name) and its parameters' help (templates/schema.py).
# Docstrings are not extracted, so they are listed here; a unit test fails
# when one of them has no entry (or no Persian translation).
TEMPLATE_TEXT: tuple[str, ...] = (
    N_("persons in every combination of brands, and pairwise overlap rates."),
    N_("for each ordered brand pair (A, B), persons whose next brand after A was B."),
    N_("persons reaching each of an ordered list of steps, each within a window of the last."),
    N_("how many days from a person's first event at brand A to their first at B."),
    N_("monthly cohorts by first brand, and the share active in each later month."),
    N_("recency/frequency segments per brand, as of a date."),
    N_("a campaign's effect at another brand, treatment against control, with its interval."),
    N_("first day included (YYYY-MM-DD); default a year before end"),
    N_("first day excluded (YYYY-MM-DD); default today"),
    N_("days allowed from one step to the next"),
    N_("2-8 brands to combine; default every brand open to you"),
    N_("brands to follow (at least two); default every one open to you"),
    N_("brand-to-brand moves kept per person (the L1 sensitivity)"),
    N_("2-6 ordered steps: brand, brand.dataset or brand.dataset:column=value"),
    N_("where the journey starts (a brand or brand.dataset)"),
    N_("where it crosses to"),
    N_("ascending day edges starting at 0; the last bin is open-ended"),
    N_("brands whose first event starts a cohort; default all open"),
    N_("count a later month as active only at this (chosen) brand"),
    N_("first cohort month (YYYY-MM); default twelve months ago"),
    N_("months followed from start"),
    N_("brands to segment; default every brand open to you"),
    N_("the day the segments describe (YYYY-MM-DD); default today"),
    N_("days that count as recent"),
    N_("days after which a person is lapsed"),
    N_("events in risk_days that make one loyal"),
    N_("days of history read"),
    N_("the campaign table (party.dataset); default the collaboration's only one"),
    N_("the column assigning each person an arm"),
    N_("the arm value of the exposed group"),
    N_("the arm value of the control group"),
    N_("where conversion is measured (brand or brand.dataset)"),
    N_("a bounded metric of the outcome dataset to sum as spend"),
    N_("each person's spend is capped here; default the metric's upper bound (or 1)"),
    N_("days from exposure in which the outcome counts"),
    N_("persons whose first-ever event at B came within a window after an event at A."),
    N_("the earlier event (e.g. brand.dataset:channel=app)"),
    N_("where a first-ever event counts as new (e.g. a store brand)"),
    N_("days from an event at 'from' to the first-ever event at 'to'"),
)
