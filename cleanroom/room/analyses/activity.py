"""Brand activity as one event stream ``(person, brand, t)``: what journey templates read.

A brand's activity is every event of its datasets that have a time column and
count as activity in the policy (a campaign assignment table does not). The
stream is restricted to a period given by parameters, never by the data, and
to the tables the asking party's analysts may read; with ``join_required`` the
party's own brand must be among the chosen ones. Names in the SQL come from
the policy (validated names); values are ``$name`` markers, each bound to a
typed literal where the statement is made (:func:`cleanroom.sql.statement`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cleanroom.errors import T_
from cleanroom.room.analyses.params import Params
from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.policy.privacy import PartyAccess
from cleanroom.room.query.check import QueryRejected
from cleanroom.sql import quote_column, table_sql
from cleanroom.text import quoted


@dataclass(frozen=True)
class Source:
    """One dataset feeding a brand's activity, with an optional dimension filter."""

    party: str
    dataset: str
    time: str
    where: tuple[str, object] | None = None  # (column, value): a declared domain value

    @property
    def table(self) -> str:
        """``party.dataset``."""
        return f"{self.party}.{self.dataset}"


def _access(policy: CollaborationPolicy, party: str) -> PartyAccess | None:
    spec = policy.parties.get(party)
    return spec.analysts if spec is not None else None  # None: the reporter sees every brand


def activity_sources(policy: CollaborationPolicy, party: str, brand: str) -> list[Source]:
    """The datasets that make up ``brand``'s activity and are open to ``party``."""
    access = _access(policy, party)
    spec = policy.parties.get(brand)
    if spec is None:
        return []
    return [
        Source(brand, name, contract.time)
        for name, contract in sorted(spec.datasets.items())
        if contract.time is not None
        and contract.activity
        and (access is None or access.may_read(f"{brand}.{name}"))
    ]


def brands(params: Params, name: str, policy: CollaborationPolicy, party: str) -> list[str]:
    """The brands a journey covers: named ones (checked) or every brand open to the party."""
    open_brands = [b for b in sorted(policy.parties) if activity_sources(policy, party, b)]
    wanted = params.names(name)
    if wanted is None:
        chosen = open_brands
    else:
        for b in wanted:
            if b not in policy.parties:
                raise params.reject(
                    name, T_("names no brand %(b)s of this collaboration", b=quoted(b))
                )
            if b not in open_brands:
                raise QueryRejected(
                    "table_not_allowed",
                    T_("%(name)s: %(b)s is not open to you", name=name, b=quoted(b)),
                )
        chosen = sorted(set(wanted))
    require_own(params, name, chosen, policy, party)
    return chosen


def require_own(
    params: Params, name: str, chosen: list[str], policy: CollaborationPolicy, party: str
) -> None:
    """AWS-style "join required": an analyst's journey must include their own brand."""
    access = _access(policy, party)
    if access is not None and access.join_required and party not in chosen:
        raise QueryRejected(
            "join_required",
            T_(
                "%(template)s: '%(name)s' must include your own brand '%(party)s'",
                template=params.template,
                name=name,
                party=party,
            ),
        )


def step_source(
    params: Params, name: str, text: str, policy: CollaborationPolicy, party: str
) -> list[Source]:
    """``brand``, ``brand.dataset`` or ``brand.dataset:column=value`` (a declared value)."""
    head, _, condition = text.partition(":")
    brand, _, dataset = head.partition(".")
    sources = activity_sources(policy, party, brand)
    if not sources:
        raise params.reject(
            name, T_("names no brand with activity open to you: %(brand)s", brand=quoted(brand))
        )
    if dataset:
        sources = [s for s in sources if s.dataset == dataset]
        if not sources:
            raise params.reject(name, T_("names no activity dataset %(head)s", head=quoted(head)))
    if not condition:
        return sources
    if len(sources) != 1:
        raise params.reject(
            name, T_("%(head)s: name the dataset to filter on (brand.dataset:…)", head=quoted(head))
        )
    column, _, value = condition.partition("=")
    contract = policy.contract(sources[0].party, sources[0].dataset)
    assert contract is not None
    col = contract.columns.get(column)
    access = _access(policy, party)
    if (
        col is None
        or col.domain is None
        or (access is not None and not access.may_use(head, column))
    ):
        raise params.reject(
            name,
            T_("can only filter on a dimension open to you, not %(column)s", column=quoted(column)),
        )
    matches = [v for v in col.domain if str(v).lower() == value.lower()]
    if not matches:
        raise params.reject(
            name,
            T_(
                "%(column)s has no declared value %(value)s",
                column=quoted(column),
                value=quoted(value),
            ),
        )
    return [Source(sources[0].party, sources[0].dataset, sources[0].time, (column, matches[0]))]


def events_sql(
    sources: list[Source],
    tables: dict[str, str],
    start: dt.date | None,
    end: dt.date,
    *,
    prefix: str = "events",
    value: str | None = None,
    brand_ids: dict[str, int] | None = None,
) -> tuple[str, dict[str, object]]:
    """``SELECT person, brand, t[, v]`` over the sources' current tables, within [start, end).

    ``start`` None: from the first event the room holds (a "first-ever" reading).
    ``value`` names a metric column of the sources to carry along as ``v``;
    ``brand_ids`` makes ``brand`` a small integer (cheaper to sort on) instead of the name.

    Returns the text and the values of its ``$name`` markers, for the
    statement that embeds it (:func:`cleanroom.sql.statement`): the period
    ``$<prefix>_start`` (absent when ``start`` is None) and ``$<prefix>_end``,
    and per source ``i`` its brand ``$<prefix>_brand_<i>`` and, filtered,
    its dimension value ``$<prefix>_where_<i>``. A statement that reads
    several event streams gives each its own ``prefix``, so no two values
    share a marker.
    """
    parts = []
    values: dict[str, object] = {}
    for i, s in enumerate(sources):
        if s.table not in tables:
            continue  # not uploaded yet: the brand simply has no events
        time = quote_column(s.time)
        condition = ""
        if s.where is not None:
            condition = f" AND {quote_column(s.where[0])} = ${prefix}_where_{i}"
            values[f"{prefix}_where_{i}"] = s.where[1]
        carried = f", CAST({quote_column(value)} AS DOUBLE) AS v" if value else ""
        since = "" if start is None else f"{time} >= ${prefix}_start AND "
        parts.append(
            f"SELECT person, ${prefix}_brand_{i} AS brand, "  # noqa: S608
            f"CAST({time} AS TIMESTAMP) AS t{carried} "
            f"FROM {table_sql(tables[s.table])} "
            f"WHERE {since}{time} < ${prefix}_end{condition}"
        )
        values[f"{prefix}_brand_{i}"] = brand_ids[s.party] if brand_ids else s.party
    if not parts:
        extra = ", NULL::DOUBLE AS v" if value else ""
        return (
            "SELECT NULL::BIGINT AS person, NULL::VARCHAR AS brand, NULL::TIMESTAMP AS t"
            f"{extra} LIMIT 0"
        ), {}
    values[f"{prefix}_end"] = end
    if start is not None:
        values[f"{prefix}_start"] = start
    return " UNION ALL ".join(parts), values
