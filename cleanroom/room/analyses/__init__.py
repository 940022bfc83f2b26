"""Templates: named, parameterized analyses approved in the policy, run by the same engine."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from cleanroom.errors import T_
from cleanroom.room.analyses.app_to_store import prepare_app_to_store
from cleanroom.room.analyses.funnel import prepare_funnel
from cleanroom.room.analyses.lift import prepare_lift
from cleanroom.room.analyses.overlap import prepare_overlap
from cleanroom.room.analyses.retention import prepare_retention
from cleanroom.room.analyses.segments import prepare_segments
from cleanroom.room.analyses.time_to_cross import prepare_time_to_cross
from cleanroom.room.analyses.transitions import prepare_transitions
from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.query.check import QueryRejected
from cleanroom.room.query.prepared import Prepared
from cleanroom.text import quoted

TEMPLATES: dict[str, Callable[..., Prepared]] = {
    "overlap": prepare_overlap,
    "transitions": prepare_transitions,
    "funnel": prepare_funnel,
    "time_to_cross": prepare_time_to_cross,
    "retention": prepare_retention,
    "segments": prepare_segments,
    "lift": prepare_lift,
    "app_to_store": prepare_app_to_store,
}


def prepare_template(
    name: str, params: Mapping[str, str], *, policy: CollaborationPolicy, party: str
) -> Prepared:
    """Check that the template exists, is enabled and open to the party; check its parameters."""
    if name not in TEMPLATES:
        raise QueryRejected(
            "unknown_template", T_("there is no template %(name)s", name=quoted(name[:100]))
        )
    approved = policy.templates.get(name)
    if approved is None:  # fail closed: a template runs only once reviewers approved it
        raise QueryRejected(
            "template_not_in_policy", T_("the policy does not approve '%(name)s'", name=name)
        )
    if not approved.enabled:
        raise QueryRejected(
            "template_disabled", T_("the policy has disabled the template '%(name)s'", name=name)
        )
    access = policy.parties[party].analysts if party in policy.parties else None
    if access is not None and not access.may_run(name):
        raise QueryRejected(
            "template_not_allowed",
            T_("'%(party)s' analysts may not run '%(name)s'", party=party, name=name),
        )
    return TEMPLATES[name](params, policy=policy, party=party)
