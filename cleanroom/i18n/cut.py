"""The cut disclosure as one sentence, in the reader's language (console, CLI, reports).

A result's ``cut`` (see :func:`cleanroom.room.pipeline.disclose`) says how
much the per-person bounds removed. The sentence leads with what an analyst
acts on — the share of the data over the bound and that the true total is
higher — then the noisy counts with their 95% bounds. A cut within its noise
reads "no material cut"; a question whose bounds cannot cut anything says so.
"""

from __future__ import annotations

from typing import Any

from cleanroom.i18n import N_, Language, gettext
from cleanroom.i18n.formats import localized, number

UNITS = {
    "rows": N_("rows"),
    "groups": N_("person-groups"),
    "pairs": N_("transition pairs"),
    "amount": N_("spend"),
}
MATERIAL = N_(
    "≈ %(share)s of %(unit)s were over the per-person bound of %(bound)s: the true total is "
    "higher. At least %(cut)s ± %(error)s were cut, from ≈ %(persons)s ± %(persons_error)s "
    "persons (each person's excess counted up to %(cap)s)."
)
NOT_MATERIAL = N_(
    "No material cut: the per-person bound of %(bound)s %(unit)s removed nothing beyond the "
    "noise (cut %(cut)s ± %(error)s; persons over it ≈ %(persons)s ± %(persons_error)s)."
)
IMPOSSIBLE = N_("Nothing was cut: in this question each person counts at most once per cell.")


def sentence(cut: dict[str, Any] | None, language: Language) -> str:
    """The disclosure, or "" for a result from before cuts were disclosed."""
    if not cut:
        return ""
    if not cut.get("possible"):
        return gettext(language, IMPOSSIBLE)
    share = (cut.get("share") or {}).get("value")
    values = {
        "share": localized(f"{round(100 * (share or 0))}%", language),
        "unit": gettext(language, UNITS.get(cut.get("unit", ""), N_("rows"))),
        "bound": number(cut.get("bound"), language),
        "cap": number(cut.get("cap"), language),
        "cut": number(cut["cut"]["value"], language),
        "error": number(cut["cut"]["error95"], language),
        "persons": number(cut["persons"]["value"], language),
        "persons_error": number(cut["persons"]["error95"], language),
    }
    return gettext(language, MATERIAL if cut.get("material") else NOT_MATERIAL) % values
