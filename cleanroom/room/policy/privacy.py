"""The privacy part of a policy: mechanism, budget, per-person bounds, who may ask what.

Epsilons are read from the YAML's decimals into exact values
(:class:`~cleanroom.room.epsilon.Epsilon`: ``0.1`` is ``1/10``) and stay exact
through the engine, the ledger (``cleanroom.room.budget``) and the API, so a
budget never drifts by float rounding.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cleanroom.room.epsilon import Epsilon

# The smallest epsilon one query (or report section) may spend: below it the
# noise swamps any count (scale 10^6 at sensitivity 1), and fractions such as
# 1e-30 or 5e-324 have denominators the ledger cannot store. Policies, the API
# and the engine all refuse less (``cleanroom.room.dp.MIN_EPSILON``).
MIN_QUERY_EPSILON = 1e-6

# Gregorian periods are UTC; ``jalali_month`` is a Solar Hijri month, from 00:00 of
# its first day in the room's time zone (cleanroom.room.budget.period_bounds).
Period = Literal["day", "week", "month", "quarter", "year", "jalali_month"]


class BudgetPolicy(BaseModel):
    """A collaboration-wide epsilon cap per period, with each party's share inside it.

    The cap is what bounds a person's total privacy loss, whoever asks; the
    shares make sure no party can spend another's.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epsilon: Epsilon = Field(gt=0, le=100, description="collaboration-wide epsilon per period")
    period: Period = "month"
    shares: dict[str, Epsilon] = Field(
        description="party (or 'reporter') -> its epsilon per period"
    )

    @model_validator(mode="after")
    def _shares_fit(self) -> BudgetPolicy:
        if any(v < 0 for v in self.shares.values()):
            raise ValueError("budget shares must not be negative")
        if sum(self.shares.values(), Epsilon(0)) > self.epsilon:
            raise ValueError(
                f"budget shares add up to {float(sum(self.shares.values(), Epsilon(0))):g}, "
                f"over the cap {float(self.epsilon):g}"
            )
        return self


class PrivacyPolicy(BaseModel):
    """How every release is made private."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mechanism: Literal["laplace", "gaussian"] = "laplace"
    delta: float | None = Field(None, gt=0, le=1e-5, description="per query, Gaussian only")
    budget: BudgetPolicy
    max_epsilon_per_query: Epsilon = Field(gt=0, le=10)
    default_epsilon: Epsilon = Field(
        Epsilon("0.5"), ge=MIN_QUERY_EPSILON, description="a query's epsilon when it names none"
    )
    max_rows_per_person: int = Field(10, ge=1, le=10_000)
    max_groups_per_person: int = Field(5, ge=1, le=1_000)
    min_noisy_persons: int = Field(
        10, ge=0, description="groups below this noisy count are dropped"
    )

    @model_validator(mode="after")
    def _consistent(self) -> PrivacyPolicy:
        if self.mechanism == "gaussian" and self.delta is None:
            raise ValueError("the gaussian mechanism needs a delta")
        if self.mechanism == "laplace" and self.delta is not None:
            raise ValueError("delta applies to the gaussian mechanism only")
        if self.default_epsilon > self.max_epsilon_per_query:
            raise ValueError("default_epsilon is over max_epsilon_per_query")
        if self.max_groups_per_person > self.max_rows_per_person:
            raise ValueError("max_groups_per_person cannot exceed max_rows_per_person")
        return self


class PartyAccess(BaseModel):
    """What one party's analysts may query (AWS-style analysis rules, per party)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tables: list[str] | Literal["*"] = "*"
    columns: dict[str, list[str]] = Field(
        default_factory=dict, description="table -> columns allowed; a table not named: all"
    )
    free_sql: bool = True
    templates: list[str] | Literal["*"] = "*"
    join_required: bool = True

    def may_read(self, table: str) -> bool:
        """Whether ``party.dataset`` is open to these analysts."""
        return self.tables == "*" or table in self.tables

    def may_use(self, table: str, column: str) -> bool:
        """Whether one column of an open table is."""
        allowed = self.columns.get(table)
        return allowed is None or column in allowed

    def may_run(self, template: str) -> bool:
        """Whether a named template is."""
        return self.templates == "*" or template in self.templates


class TemplatePolicy(BaseModel):
    """A template the collaboration approved, with its default epsilon."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    epsilon: Epsilon | None = Field(None, ge=MIN_QUERY_EPSILON)
