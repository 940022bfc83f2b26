"""The query gate: an analyst's restricted SQL, checked against the policy, as a plan.

Restricted SQL is one flat SELECT over analysis tables (``party.dataset``, a
``person`` column plus the contract's non-identifier columns) joined on
``person``, filtered by literal comparisons, grouped by dimensions and
releasing COUNT(*), COUNT(DISTINCT person), SUM(metric) and AVG(metric). The
checker accepts exactly that shape and builds a :class:`QueryPlan` from it; the
analyst's text is never run, only SQL compiled from the plan. Every refusal is a
:class:`QueryRejected` with a stable rule id and a message that names the
offending piece of the query. Why a shape is refused:

- only released aggregates leave the room, never a row (``row_level_output``)
  nor ``person`` (``person_in_output``), and every released number has a
  sensitivity the engine can bound: no arithmetic, functions or CASE;
- groups come from declared domains, so the set of released keys depends on the
  policy and the query, never on the data (``group_by_not_dimension``,
  ``domain_value_undeclared``);
- the join is on ``person`` only, so contribution bounding per person holds
  across tables (``join_not_on_person``, ``join_type``).

The syntactic rules (comments, statements, subqueries, ...) live in
:mod:`cleanroom.room.query.parse`; FROM, joins and column access in
:mod:`cleanroom.room.query.scope`; WHERE and domain narrowing in
:mod:`cleanroom.room.query.where`; GROUP BY and the select list in
:mod:`cleanroom.room.query.output`.
"""

from __future__ import annotations

from dataclasses import replace

from cleanroom.errors import T_
from cleanroom.room.policy.models import CollaborationPolicy
from cleanroom.room.policy.privacy import PartyAccess
from cleanroom.room.query.output import group_keys, select_list
from cleanroom.room.query.parse import PERSON, QueryRejected, canonical_sql, parse_select
from cleanroom.room.query.plan import GroupKey, QueryPlan
from cleanroom.room.query.scope import Scope
from cleanroom.room.query.where import Filters, narrow_domain

__all__ = ["MAX_GROUPS", "PERSON", "QueryRejected", "canonical_sql", "check_sql"]

MAX_GROUPS = 100_000  # released keys per query: the product of the grouped domains


def check_sql(sql: str, *, policy: CollaborationPolicy, party: str) -> QueryPlan:
    """The plan of ``sql`` asked by ``party``'s analysts, or :class:`QueryRejected`."""
    access = _access(policy, party)
    select = parse_select(sql)
    scope = Scope.from_query(select, policy, party, access)
    where = Filters(scope).of(select)
    keys = group_keys(select, scope)
    key_outputs, aggregates = select_list(select, scope, keys)
    group_by = tuple(
        GroupKey(key.ref, narrow_domain(key, where), key_outputs[key.ref]) for key in keys
    )
    plan = QueryPlan(tuple(t.ref for t in scope.tables), tuple(aggregates), group_by, where)
    for key in group_by:
        if not key.domain:
            raise QueryRejected(
                "empty_result",
                T_(
                    "the WHERE clause excludes every declared value of %(column)s; the query "
                    "would release nothing",
                    column=key.column.column,
                ),
            )
    if plan.key_count > MAX_GROUPS:
        raise QueryRejected(
            "too_many_groups",
            T_(
                "GROUP BY %(items)s releases %(key_count)s groups; the limit is "
                "%(max_groups)s (group by fewer dimensions, or restrict them in WHERE)",
                items=", ".join(k.column.column for k in group_by),
                key_count=format(plan.key_count, ","),
                max_groups=format(MAX_GROUPS, ","),
            ),
        )
    return replace(plan, canonical=canonical_sql(plan, policy))


def _access(policy: CollaborationPolicy, party: str) -> PartyAccess:
    spec = policy.parties.get(party)
    if spec is None:
        raise QueryRejected(
            "unknown_party", T_("'%(party)s' is not a party of this collaboration", party=party)
        )
    if not spec.analysts.free_sql:
        raise QueryRejected(
            "free_sql_disabled",
            T_(
                "the policy does not let %(party)s's analysts write SQL; run an approved template",
                party=party,
            ),
        )
    return spec.analysts
