"""Templates: named, parameterized analyses approved in the policy, run by the same engine."""

from __future__ import annotations

from collections.abc import Mapping

from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.query.check import QueryRejected
from cleanroom.room.query.prepared import Prepared
from cleanroom.room.templates.overlap import prepare_overlap

TEMPLATES = {"overlap": prepare_overlap}


def prepare_template(
    name: str, params: Mapping[str, str], *, policy: CollaborationPolicy, party: str
) -> Prepared:
    """Check that the template exists, is enabled and open to the party; check its parameters."""
    if name not in TEMPLATES:
        raise QueryRejected("unknown_template", f"there is no template '{name}'")
    approved = policy.templates.get(name)
    if approved is not None and not approved.enabled:
        raise QueryRejected("template_disabled", f"the policy has disabled the template '{name}'")
    access = policy.parties[party].analysts if party in policy.parties else None
    if access is not None and not access.may_run(name):
        raise QueryRejected("template_not_allowed", f"'{party}' analysts may not run '{name}'")
    return TEMPLATES[name](params, policy=policy, party=party)
