"""What changes between two policy versions, and which way each change moves privacy.

A reviewer approving a version must answer one question: does it let anyone
learn more about a person than before? A text diff of two YAML files does not
answer it (a budget share going from 1.6 to 2.0 and a display name changing
look alike). So the two policies are walked field by field, generically, and
every difference is classified by an explicit rule for its path: ``loosens``
(more epsilon, more sensitivity, smaller released groups, more data or access
in the room, a lower approval bar), ``tightens`` (the opposite) or
``neutral`` (names and descriptions).

A field no rule knows fails closed: its changes are reported as loosening, so
a field added to the model later is never waved through unreviewed (a unit
test also checks that every field of the model has a rule).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel

from cleanroom.errors import T_
from cleanroom.i18n import N_
from cleanroom.room.epsilon import Epsilon
from cleanroom.room.policy.models import CollaborationPolicy

Kind = Literal["added", "removed", "changed"]
Privacy = Literal["loosens", "tightens", "neutral"]

LOOSENS: Privacy = "loosens"
TIGHTENS: Privacy = "tightens"
NEUTRAL: Privacy = "neutral"


@dataclass(frozen=True)
class PolicyChange:
    """One difference between two versions, with its direction for privacy and why."""

    path: str
    kind: Kind
    old: Any
    new: Any
    privacy: Privacy
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON data, for the API and the audit trail."""
        return asdict(self)


@dataclass(frozen=True)
class Difference:
    """A raw difference found by the walk, before a rule classifies it.

    ``element`` marks a value added to or removed from a list (a domain value,
    a table in an access list); otherwise an added or removed thing is a key of
    a mapping or an optional section.
    """

    segments: tuple[str, ...]
    kind: Kind
    old: Any
    new: Any
    element: bool = False


@dataclass(frozen=True)
class Context:
    """Both whole policies, for rules whose meaning depends on another field."""

    old: CollaborationPolicy
    new: CollaborationPolicy


Rule = Callable[[Difference, Context], tuple[Privacy, str]]


def diff_policies(old: CollaborationPolicy, new: CollaborationPolicy) -> list[PolicyChange]:
    """Every difference from ``old`` to ``new``, in the policy's field order, classified."""
    found: list[Difference] = []
    _walk(old, new, (), found)
    context = Context(old, new)
    changes = []
    for difference in found:
        privacy, reason = rule_for(difference.segments)(difference, context)
        changes.append(
            PolicyChange(
                path=render_path(difference.segments),
                kind=difference.kind,
                old=_plain(difference.old),
                new=_plain(difference.new),
                privacy=privacy,
                reason=reason,
            )
        )
    return changes


def summarize(changes: list[PolicyChange]) -> dict[str, int]:
    """How many changes go each way."""
    return {way: sum(c.privacy == way for c in changes) for way in (LOOSENS, TIGHTENS, NEUTRAL)}


# -- the walk ---------------------------------------------------------------


def _walk(old: Any, new: Any, at: tuple[str, ...], out: list[Difference]) -> None:
    if isinstance(old, BaseModel) and type(old) is type(new):
        for name in type(old).model_fields:
            _walk(getattr(old, name), getattr(new, name), (*at, name), out)
    elif isinstance(old, dict) and isinstance(new, dict):
        for key, value in new.items():
            if key not in old:
                out.append(Difference((*at, str(key)), "added", None, value))
            else:
                _walk(old[key], value, (*at, str(key)), out)
        for key, value in old.items():
            if key not in new:
                out.append(Difference((*at, str(key)), "removed", value, None))
    elif isinstance(old, list) and isinstance(new, list):
        # Lists in a policy are sets (domains, access lists): order carries no meaning.
        old_keys = {_identity(v) for v in old}
        new_keys = {_identity(v) for v in new}
        for value in new:
            if _identity(value) not in old_keys:
                out.append(Difference(at, "added", None, value, element=True))
        for value in old:
            if _identity(value) not in new_keys:
                out.append(Difference(at, "removed", value, None, element=True))
    elif old is None and new is not None:
        out.append(Difference(at, "added", None, new))
    elif new is None and old is not None:
        out.append(Difference(at, "removed", old, None))
    elif _identity(old) != _identity(new):
        out.append(Difference(at, "changed", old, new))


def _identity(value: Any) -> Any:
    """A hashable equality key that tells ``True`` from ``1`` (Python says they are equal).

    Structured list members (a report's sections) compare by their canonical JSON.
    """
    if isinstance(value, str | int | float | bool):
        return (type(value).__name__, value)
    if isinstance(value, BaseModel | dict | list):
        return ("json", json.dumps(_plain(value), sort_keys=True))
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Epsilon):
        return int(value) if value.denominator == 1 else float(value)
    return value


_PLAIN_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def render_path(segments: tuple[str, ...]) -> str:
    """``parties.okala.analysts.columns["okala.orders"]``: dotted, keys with dots quoted."""
    out = ""
    for segment in segments:
        if _PLAIN_SEGMENT.match(segment):
            out += f".{segment}" if out else segment
        else:
            out += f"[{json.dumps(segment)}]"
    return out


# -- rules --------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value == math.inf:  # an unset limit (e.g. retention): no limit at all
        return "unlimited"
    return json.dumps(_plain(value), ensure_ascii=False)


def neutral(what: str) -> Rule:
    """Names and descriptions: nothing about what may be learned changes."""

    def rule(d: Difference, c: Context) -> tuple[Privacy, str]:
        return NEUTRAL, str(T_("%(what)s %(kind)s; cosmetic", what=what, kind=d.kind))

    return rule


def always_loosens(why: str) -> Rule:
    """Changes with no safe direction: always reviewed as loosening."""

    def rule(d: Difference, c: Context) -> tuple[Privacy, str]:
        return LOOSENS, why

    return rule


def ordered(
    what: str,
    *,
    looser_when: Literal["higher", "lower"],
    consequence: str,
    absent: Callable[[Context, bool], Any] | None = None,
) -> Rule:
    """A number where one direction loosens: up (epsilon, shares) or down (group size).

    ``absent(context, new_side)`` gives the effective value when the field is
    unset on that side (a template's epsilon falls back to the default); without
    it, setting the field loosens and unsetting it tightens.
    """

    def rule(d: Difference, c: Context) -> tuple[Privacy, str]:
        old, new = d.old, d.new
        if absent is not None:
            old = absent(c, False) if old is None else old
            new = absent(c, True) if new is None else new
        if old is None:
            return LOOSENS, str(
                T_(
                    "%(what)s is set to %(fmt)s: %(consequence)s",
                    what=what,
                    fmt=_fmt(new),
                    consequence=consequence,
                )
            )
        if new is None:
            return TIGHTENS, str(T_("%(what)s is removed (was %(fmt)s)", what=what, fmt=_fmt(old)))
        if old == new:
            return NEUTRAL, str(
                T_(
                    "%(what)s stays %(fmt)s (now written explicitly, or now implied)",
                    what=what,
                    fmt=_fmt(new),
                )
            )
        up = new > old
        loosens = up if looser_when == "higher" else not up
        direction = "goes up" if up else "goes down"
        if loosens:
            return LOOSENS, str(
                T_(
                    "%(what)s %(direction)s (%(fmt)s → %(fmt2)s): %(consequence)s",
                    what=what,
                    direction=direction,
                    fmt=_fmt(old),
                    fmt2=_fmt(new),
                    consequence=consequence,
                )
            )
        return TIGHTENS, str(
            T_(
                "%(what)s %(direction)s (%(fmt)s → %(fmt2)s)",
                what=what,
                direction=direction,
                fmt=_fmt(old),
                fmt2=_fmt(new),
            )
        )

    return rule


def flag(what: str, *, looser_when: bool, consequence: str) -> Rule:
    """A boolean where one value loosens (free SQL on, joins no longer required)."""

    def rule(d: Difference, c: Context) -> tuple[Privacy, str]:
        if d.new == looser_when:
            return LOOSENS, str(
                T_(
                    "%(what)s turns %(new)s: %(consequence)s",
                    what=what,
                    new=d.new,
                    consequence=consequence,
                )
            )
        return TIGHTENS, str(T_("%(what)s turns %(new)s", what=what, new=d.new))

    return rule


def presence(what: str, *, added: str, removed: str, changed: str | None = None) -> Rule:
    """Something that brings data or access into the room when added (a party, a column)."""

    def rule(d: Difference, c: Context) -> tuple[Privacy, str]:
        name = d.segments[-1]
        if d.kind == "added":
            return LOOSENS, str(
                T_("%(what)s '%(name)s' is added: %(added)s", what=what, name=name, added=added)
            )
        if d.kind == "removed":
            return TIGHTENS, str(
                T_(
                    "%(what)s '%(name)s' is removed: %(removed)s",
                    what=what,
                    name=name,
                    removed=removed,
                )
            )
        return LOOSENS, str(
            T_(
                "%(what)s '%(name)s' changes (%(fmt)s → %(fmt2)s): %(changed)s",
                what=what,
                name=name,
                fmt=_fmt(d.old),
                fmt2=_fmt(d.new),
                changed=changed,
            )
        )

    return rule


def access_list(what: str) -> Rule:
    """``"*"`` or a list: a member added, or the list opened to ``"*"``, loosens."""

    def rule(d: Difference, c: Context) -> tuple[Privacy, str]:
        party = d.segments[1]
        if d.element:
            verb = "may now use" if d.kind == "added" else "may no longer use"
            value = d.new if d.kind == "added" else d.old
            return (
                LOOSENS if d.kind == "added" else TIGHTENS,
                str(
                    T_(
                        "%(party)s's analysts %(verb)s %(what)s '%(value)s'",
                        party=party,
                        verb=verb,
                        what=what,
                        value=value,
                    )
                ),
            )
        if d.new == "*":
            return LOOSENS, str(
                T_(
                    "%(party)s's analysts may now use every %(what)s (was %(fmt)s)",
                    party=party,
                    what=what,
                    fmt=_fmt(d.old),
                )
            )
        if d.old == "*":
            return TIGHTENS, str(
                T_(
                    "%(party)s's analysts are limited to the %(what)ss %(fmt)s",
                    party=party,
                    what=what,
                    fmt=_fmt(d.new),
                )
            )
        return LOOSENS, str(
            T_(
                "%(party)s's %(what)s access changes; review it as a loosening",
                party=party,
                what=what,
            )
        )

    return rule


def _column_allow_list(d: Difference, c: Context) -> tuple[Privacy, str]:
    """``analysts.columns``: a table it names is limited to those columns; unnamed: all."""
    party, table = d.segments[1], d.segments[-1]
    if d.element:
        value = d.new if d.kind == "added" else d.old
        if d.kind == "added":
            return LOOSENS, str(
                T_(
                    "%(party)s's analysts may now use column '%(value)s' of %(table)s",
                    party=party,
                    value=value,
                    table=table,
                )
            )
        return TIGHTENS, str(
            T_(
                "%(party)s's analysts may no longer use column '%(value)s' of %(table)s",
                party=party,
                value=value,
                table=table,
            )
        )
    if d.kind == "added":
        return TIGHTENS, str(
            T_(
                "%(party)s's analysts are limited to some columns of %(table)s (was: all)",
                party=party,
                table=table,
            )
        )
    return LOOSENS, str(
        T_(
            "%(party)s's analysts may now use every column of %(table)s (the list is gone)",
            party=party,
            table=table,
        )
    )


def _adaptive_bounds(d: Difference, c: Context) -> tuple[Privacy, str]:
    """Bounds chosen from the data: a release about persons at every match, bounds that move."""
    if d.kind == "added":
        return LOOSENS, (
            "per-person bounds are chosen from the data at every match (a DP quantile, "
            f"{_fmt(getattr(d.new, 'epsilon', None))} ε per match): "
            "they may rise up to the section's hard maxima, raising every query's sensitivity"
        )
    if d.kind == "removed":
        return TIGHTENS, "per-person bounds are the policy's fixed ones again"
    return LOOSENS, "the adaptive bounds change; review them as a loosening"


def _mechanism(d: Difference, c: Context) -> tuple[Privacy, str]:
    if (d.old, d.new) == ("laplace", "gaussian"):
        why = "pure ε-DP becomes (ε, δ)-DP: with probability δ the ε bound does not hold"
    else:
        why = "the noise, the error bounds and the accounting all change"
    return LOOSENS, str(
        T_(
            "the noise mechanism changes (%(old)s → %(new)s): %(why)s",
            old=d.old,
            new=d.new,
            why=why,
        )
    )


def _bounds(d: Difference, c: Context) -> tuple[Privacy, str]:
    column = d.segments[-2]
    if d.kind == "added":
        return LOOSENS, str(
            T_("'%(column)s' gets bounds: it becomes a metric queries may aggregate", column=column)
        )
    if d.kind == "removed":
        return TIGHTENS, str(
            T_("'%(column)s' loses its bounds: no query may aggregate it", column=column)
        )
    (old_lo, old_hi), (new_lo, new_hi) = d.old, d.new
    if new_lo < old_lo or new_hi > old_hi:
        return LOOSENS, (
            str(
                T_(
                    "bounds of '%(column)s' widen (%(fmt)s → %(fmt2)s): fewer values are "
                    "clamped, so each person's real values weigh more in an answer",
                    column=column,
                    fmt=_fmt(d.old),
                    fmt2=_fmt(d.new),
                )
            )
        )
    return TIGHTENS, str(
        T_(
            "bounds of '%(column)s' narrow (%(fmt)s → %(fmt2)s)",
            column=column,
            fmt=_fmt(d.old),
            fmt2=_fmt(d.new),
        )
    )


def _domain(d: Difference, c: Context) -> tuple[Privacy, str]:
    column = d.segments[-2]
    if not d.element:
        if d.kind == "added":
            return LOOSENS, str(
                T_("'%(column)s' gets a domain: it becomes a dimension to group by", column=column)
            )
        return TIGHTENS, str(
            T_("'%(column)s' loses its domain: no query may group by it", column=column)
        )
    if d.kind == "added":
        return LOOSENS, str(
            T_(
                "'%(column)s' may now show the value %(fmt)s in results",
                column=column,
                fmt=_fmt(d.new),
            )
        )
    return TIGHTENS, str(
        T_(
            "'%(column)s' no longer shows the value %(fmt)s in results",
            column=column,
            fmt=_fmt(d.old),
        )
    )


def _time(d: Difference, c: Context) -> tuple[Privacy, str]:
    if d.kind == "added":
        return LOOSENS, str(
            T_("'%(new)s' becomes the event time: journeys can follow the dataset", new=d.new)
        )
    if d.kind == "removed":
        return TIGHTENS, N_("the dataset no longer has an event time")
    return LOOSENS, str(
        T_(
            "the event time moves from '%(old)s' to '%(new)s': journeys follow another",
            old=d.old,
            new=d.new,
        )
    )


_PERIODS = {"day": 0, "week": 1, "month": 2, "jalali_month": 2, "quarter": 3, "year": 4}


def _period(d: Difference, c: Context) -> tuple[Privacy, str]:
    if _PERIODS[d.new] == _PERIODS[d.old]:  # a Gregorian month for a Solar Hijri one, or back
        return LOOSENS, (
            str(
                T_(
                    "the budget period's boundaries move (%(old)s → %(new)s): spend before "
                    "the new period's start no longer counts against it",
                    old=d.old,
                    new=d.new,
                )
            )
        )
    if _PERIODS[d.new] < _PERIODS[d.old]:
        return LOOSENS, (
            str(
                T_(
                    "the budget period shortens (%(old)s → %(new)s): the same cap renews "
                    "more often, so more privacy loss per year",
                    old=d.old,
                    new=d.new,
                )
            )
        )
    return TIGHTENS, str(
        T_("the budget period lengthens (%(old)s → %(new)s)", old=d.old, new=d.new)
    )


def _template(d: Difference, c: Context) -> tuple[Privacy, str]:
    """A template entry: judged by whether it is enabled, not by its mere presence.

    The template runner refuses a template only when the policy disables it, so
    dropping an ``enabled: false`` entry opens the template again.
    """
    name = d.segments[-1]
    entry = d.new if d.kind == "added" else d.old
    enabled = bool(getattr(entry, "enabled", True))
    if d.kind == "added":
        if enabled:
            return LOOSENS, str(
                T_("template '%(name)s' is approved: analysts may run it", name=name)
            )
        return TIGHTENS, str(T_("template '%(name)s' is listed as disabled", name=name))
    if enabled:
        return TIGHTENS, str(T_("template '%(name)s' is no longer approved", name=name))
    return LOOSENS, str(
        T_("template '%(name)s' loses its 'enabled: false': it may run again", name=name)
    )


def _template_default(c: Context, new_side: bool) -> Any:
    privacy = (c.new if new_side else c.old).privacy
    return privacy.default_epsilon if privacy is not None else None


def _report(d: Difference, c: Context) -> tuple[Privacy, str]:
    name = d.segments[-1]
    entry = d.new if d.kind == "added" else d.old
    enabled = bool(getattr(entry, "enabled", True))
    if not enabled:
        return NEUTRAL, str(
            T_(
                "report '%(name)s' is %(kind)s disabled: it does not run either way",
                name=name,
                kind=d.kind,
            )
        )
    if d.kind == "added":
        return LOOSENS, str(
            T_("report '%(name)s' is added: its numbers leave the room on every run", name=name)
        )
    return TIGHTENS, str(T_("report '%(name)s' is removed: it no longer runs", name=name))


def _report_sections(d: Difference, c: Context) -> tuple[Privacy, str]:
    name = d.segments[1]
    section = d.new if d.kind == "added" else d.old
    what = f"{getattr(section, 'template', '?')} at epsilon {getattr(section, 'epsilon', '?')}"
    if d.kind == "added":
        return LOOSENS, str(
            T_(
                "report '%(name)s' releases another section per run (%(what)s)",
                name=name,
                what=what,
            )
        )
    return TIGHTENS, str(T_("report '%(name)s' drops a section (%(what)s)", name=name, what=what))


def _report_schedule(d: Difference, c: Context) -> tuple[Privacy, str]:
    name = d.segments[1]
    if d.kind == "added":
        return LOOSENS, str(
            T_("report '%(name)s' runs on its own now (%(new)s)", name=name, new=d.new)
        )
    if d.kind == "removed":
        return TIGHTENS, str(
            T_("report '%(name)s' runs only when asked (was %(old)s)", name=name, old=d.old)
        )
    return (
        LOOSENS,
        str(
            T_(
                "report '%(name)s' runs on another schedule (%(old)s → %(new)s): maybe more often",
                name=name,
                old=d.old,
                new=d.new,
            )
        ),
    )


def _recipients(d: Difference, c: Context) -> tuple[Privacy, str]:
    name = d.segments[1]
    if d.kind == "added":
        return LOOSENS, str(
            T_("'%(new)s' may now read the runs of report '%(name)s'", new=d.new, name=name)
        )
    return TIGHTENS, str(
        T_("'%(old)s' may no longer read the runs of report '%(name)s'", old=d.old, name=name)
    )


_PARTY = "parties.*"
_DATASET = "parties.*.datasets.*"
_COLUMN = "parties.*.datasets.*.columns.*"

RULES: dict[str, Rule] = {
    "collaboration": neutral(N_("the collaboration's name")),
    "description": neutral(N_("the description")),
    "match_key_id": always_loosens(
        N_("the match key changes: bundles tokenized with another key are accepted")
    ),
    "match_key_rotation": always_loosens(
        "a match-key rotation starts, ends or changes: bundles under another key are accepted"
    ),
    "match_key_rotation.to_key_id": always_loosens(
        "the rotation's new match key changes: bundles tokenized with another key are accepted"
    ),
    "match_key_rotation.cutover": always_loosens(
        "the rotation's cut-over moves: bundles under the new key are accepted at another time"
    ),
    "privacy": presence(
        N_("section"),
        added=N_("queries become possible (without it the room answers none)"),
        removed=N_("the room answers no query at all"),
    ),
    "privacy.mechanism": _mechanism,
    "privacy.delta": ordered(
        N_("delta"), looser_when="higher", consequence=N_("a larger chance the ε bound fails")
    ),
    "privacy.budget.epsilon": ordered(
        N_("the collaboration-wide epsilon per period"),
        looser_when="higher",
        consequence=N_("each person may lose more privacy per period"),
    ),
    "privacy.budget.period": _period,
    "privacy.budget.shares.*": ordered(
        N_("a budget share"),
        looser_when="higher",
        consequence=N_("this party may spend more epsilon per period"),
    ),
    "privacy.max_epsilon_per_query": ordered(
        N_("the epsilon cap per query"),
        looser_when="higher",
        consequence=N_("a single answer may be less noisy and say more about a person"),
    ),
    "privacy.default_epsilon": ordered(
        N_("the default epsilon per query"),
        looser_when="higher",
        consequence=N_("queries that name no epsilon get less noise"),
    ),
    "privacy.max_rows_per_person": ordered(
        N_("rows per person"),
        looser_when="higher",
        consequence=N_("each person may contribute more rows, raising every query's sensitivity"),
    ),
    "privacy.max_groups_per_person": ordered(
        N_("groups per person"),
        looser_when="higher",
        consequence=N_("each person may appear in more groups, raising every query's sensitivity"),
    ),
    "privacy.adaptive_bounds": _adaptive_bounds,
    "privacy.adaptive_bounds.epsilon": ordered(
        "the epsilon each match spends choosing bounds",
        looser_when="higher",
        consequence="the bounds chosen from the data say more about the persons at the top",
    ),
    "privacy.adaptive_bounds.charged_to": always_loosens(
        "another budget share pays for choosing bounds from the data"
    ),
    "privacy.adaptive_bounds.quantile": ordered(
        "the quantile of persons' counts the bounds cover",
        looser_when="higher",
        consequence="the chosen bounds are higher, raising every query's sensitivity",
    ),
    "privacy.adaptive_bounds.max_rows_per_person": ordered(
        "the hard maximum of adaptive rows per person",
        looser_when="higher",
        consequence="the data may set a higher row bound, raising every query's sensitivity",
    ),
    "privacy.adaptive_bounds.max_groups_per_person": ordered(
        "the hard maximum of adaptive groups per person",
        looser_when="higher",
        consequence="the data may set a higher group bound, raising every query's sensitivity",
    ),
    "privacy.adaptive_bounds.max_transitions": ordered(
        "the hard maximum of adaptive transition pairs per person",
        looser_when="higher",
        consequence="the data may set a higher pair bound for transitions",
    ),
    "privacy.min_noisy_persons": ordered(
        N_("the minimum noisy group size"),
        looser_when="lower",
        consequence=N_("smaller groups of persons are released"),
    ),
    "templates.*": _template,
    "templates.*.enabled": flag(
        N_("a template's 'enabled'"), looser_when=True, consequence=N_("analysts may run it")
    ),
    "templates.*.epsilon": ordered(
        N_("a template's epsilon"),
        looser_when="higher",
        consequence=N_("its answers get less noise"),
        absent=_template_default,
    ),
    "governance.approvals_required": ordered(
        N_("the approvals a new version needs"),
        looser_when="lower",
        consequence=N_("fewer reviewers can change what the data may be used for"),
    ),
    "identity.max_per_person.*": ordered(
        N_("identifiers of one type a person may hold"),
        looser_when="higher",
        consequence=(
            N_(
                "one party's rows may merge more identifiers, and so more of other parties'"
                " persons, into one person"
            )
        ),
    ),
    "identity.max_foreign_merges.*": ordered(
        N_("how many of another party's persons one party's rows may merge"),
        looser_when="higher",
        consequence=(
            N_("one party's rows may merge more of another party's persons, forged links included")
        ),
    ),
    "retention.*": ordered(
        "how many days data is kept",
        looser_when="higher",
        consequence="customer data, and what was matched from it, is kept longer",
        absent=lambda c, new_side: math.inf,  # unset: kept until replaced
    ),
    _PARTY: presence(
        N_("party"),
        added=N_("its data and its analysts enter the room"),
        removed=N_("its data and analysts leave"),
    ),
    f"{_PARTY}.name": neutral(N_("a party's display name")),
    f"{_PARTY}.names.*": neutral(N_("a party's display name in one interface language")),
    f"{_PARTY}.public_key": always_loosens(
        N_("a party's signing key changes: a different key may sign its uploads")
    ),
    _DATASET: presence(
        N_("dataset"), added=N_("more data enters the room"), removed=N_("its data leaves the room")
    ),
    f"{_DATASET}.identifiers.*": presence(
        N_("identifier"),
        added=N_("another identifier links persons across parties"),
        removed=N_("one identifier fewer links persons"),
        changed=N_("the identifier means something else for matching"),
    ),
    f"{_DATASET}.time": _time,
    _COLUMN: presence(
        N_("column"), added=N_("more data enters the room"), removed=N_("its data leaves the room")
    ),
    f"{_COLUMN}.type": always_loosens(
        N_("a column's type changes: what queries may do with it changes")
    ),
    f"{_DATASET}.activity": flag(
        N_("'activity'"), looser_when=True, consequence=N_("its events feed journey templates")
    ),
    f"{_COLUMN}.domain": _domain,
    f"{_COLUMN}.bounds": _bounds,
    f"{_PARTY}.analysts.tables": access_list(N_("table")),
    f"{_PARTY}.analysts.columns.*": _column_allow_list,
    f"{_PARTY}.analysts.free_sql": flag(
        N_("free SQL"), looser_when=True, consequence=N_("analysts may write their own SQL")
    ),
    f"{_PARTY}.analysts.templates": access_list(N_("template")),
    f"{_PARTY}.analysts.join_required": flag(
        N_("'join_required'"),
        looser_when=False,
        consequence=N_("analysts may query one party's table without a join"),
    ),
    "reports.*": _report,
    "reports.*.title": neutral(N_("a report's title")),
    "reports.*.sections": _report_sections,
    "reports.*.schedule": _report_schedule,
    "reports.*.recipients": _recipients,
    "reports.*.enabled": flag(
        N_("a report's 'enabled'"),
        looser_when=True,
        consequence=N_("it runs and releases its numbers"),
    ),
}

_RULES = [(tuple(pattern.split(".")), rule) for pattern, rule in RULES.items()]


def _unknown(d: Difference, c: Context) -> tuple[Privacy, str]:
    return LOOSENS, N_("no rule classifies this field; reviewed as a loosening until one does")


def rule_for(segments: tuple[str, ...]) -> Rule:
    """The rule for a path (``*`` matches any key); unknown paths fail closed."""
    for pattern, rule in _RULES:
        if len(pattern) == len(segments) and all(
            p in ("*", s) for p, s in zip(pattern, segments, strict=True)
        ):
            return rule
    return _unknown
