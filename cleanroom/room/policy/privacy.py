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


class AdaptiveBounds(BaseModel):
    """Per-person bounds chosen from the data at match time (``cleanroom.room.bounds``).

    Fixed bounds cut every person above them (a whale's thousands of rows count
    as ten) and the answers come out biased low; bounds far above the data add
    noise for nothing. With this section a match measures, with a DP quantile,
    the ``quantile`` of persons' row counts (groups, transition pairs) over a
    grid of candidates fixed before any data is read, up to the hard maxima
    here, and every query on that generation uses the bounds it chose. The
    quantile's ``epsilon`` is charged to the share named by ``charged_to``
    before any count is read: choosing bounds from the data is itself a
    release about persons.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epsilon: float = Field(
        gt=0, le=10, description="charged at every match, split over the bounds it chooses"
    )
    charged_to: str = Field(description="the budget share (a party, or 'reporter') that pays")
    quantile: float = Field(0.95, ge=0.5, le=0.99999, description="of persons' counts to cover")
    max_rows_per_person: int = Field(ge=1, le=10_000, description="hard maximum: the grid's top")
    max_groups_per_person: int = Field(ge=1, le=1_000, description="hard maximum: the grid's top")
    max_transitions: int = Field(10, ge=1, le=10, description="hard maximum: the grid's top")

    @model_validator(mode="after")
    def _consistent(self) -> AdaptiveBounds:
        if self.max_groups_per_person > self.max_rows_per_person:
            raise ValueError("adaptive max_groups_per_person cannot exceed max_rows_per_person")
        if self.epsilon < MIN_QUERY_EPSILON:
            raise ValueError(f"adaptive bounds need epsilon >= {MIN_QUERY_EPSILON:g}")
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
    adaptive_bounds: AdaptiveBounds | None = Field(
        None, description="choose the per-person bounds from the data at match time"
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
        adaptive = self.adaptive_bounds
        if adaptive is not None and adaptive.charged_to not in self.budget.shares:
            raise ValueError(
                f"adaptive_bounds.charged_to: '{adaptive.charged_to}' has no budget share"
            )
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
