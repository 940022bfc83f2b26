"""What the engine runs: a checked query in a form it can price, compute and release.

Restricted SQL and templates differ in how they are checked and computed, not
in how they are charged, cached, audited and released; both implement this.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

from cleanroom.room.policy.privacy import PrivacyPolicy
from cleanroom.room.query.compile import compile_plan, measure
from cleanroom.room.query.plan import QueryPlan
from cleanroom.room.query.release import Released, preview, release


def bounds(privacy: PrivacyPolicy) -> dict[str, Any]:
    """The per-person bounds a plan is compiled under, from the policy."""
    return {
        "k": privacy.max_rows_per_person,
        "g": privacy.max_groups_per_person,
        "threshold": privacy.min_noisy_persons > 0,
    }


class Prepared(Protocol):
    """A checked query."""

    @property
    def canonical(self) -> str:
        """The normalized text the cache is keyed on."""
        ...

    def preview(self, epsilon: Fraction, privacy: PrivacyPolicy) -> dict[str, Any]:
        """Cost and expected accuracy, without reading data."""
        ...

    def execute(
        self, cursor: Any, tables: dict[str, str], epsilon: Fraction, privacy: PrivacyPolicy
    ) -> Released:
        """Exact bounded aggregates, then the noisy release."""
        ...


@dataclass(frozen=True)
class SqlQuery:
    """A restricted-SQL query, as its checked plan."""

    plan: QueryPlan

    @property
    def canonical(self) -> str:
        """The normalized form the cache is keyed on."""
        return self.plan.canonical

    def preview(self, epsilon: Fraction, privacy: PrivacyPolicy) -> dict[str, Any]:
        """See :class:`Prepared`."""
        measures = measure(self.plan, **bounds(privacy))
        return preview(self.plan, measures, epsilon=epsilon, privacy=privacy)

    def execute(
        self, cursor: Any, tables: dict[str, str], epsilon: Fraction, privacy: PrivacyPolicy
    ) -> Released:
        """See :class:`Prepared`."""
        compiled = compile_plan(self.plan, tables, **bounds(privacy))
        exact = cursor.execute(compiled.tree).fetchall()
        return release(self.plan, compiled, exact, epsilon=epsilon, privacy=privacy)
