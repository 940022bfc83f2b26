"""The API's response shapes: what every route returns, typed for clients and OpenAPI.

Routes build these from the domain's dictionaries and dataclasses, so the
OpenAPI document says exactly what a client gets: released numbers with their
95% bounds, budgets in epsilon, policy versions, report runs, audit entries.
Template results carry derived figures (pairwise rates, lift difference…)
besides the common envelope; those stay as extra fields of the result.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cleanroom.room.policy.models import CollaborationPolicy
from cleanroom.room.policy.reports import ReportSection

Json = dict[str, Any]


class Number(BaseModel):
    """One released number: the noisy value and its 95% error bound (AVG: an interval)."""

    model_config = ConfigDict(extra="allow")

    value: int | float | None = Field(description="the noisy value (raw); None when unusable")
    error95: float | None = Field(None, description="half-width of its 95% interval")
    low: float | None = Field(None, description="AVG: low end of the 95% interval")
    high: float | None = Field(None, description="AVG: high end of the 95% interval")
    mostly_noise: bool | None = Field(
        None, description="the 95% bound reaches the value (|value| <= error95): mostly noise"
    )
    step: float | None = Field(
        None, description="the rounding step its bound allows (2 significant digits of error95)"
    )
    display: str | None = Field(
        None, description="the number rounded to its step, as people read it (English digits)"
    )
    unit: Literal["share", "points", "mean"] | None = Field(
        None, description="share: a proportion (read as %); points: a difference of shares"
    )
    clamped: bool | None = Field(
        None, description="AVG/ratio: the estimate fell outside the allowed range and was cut"
    )
    range_only: bool | None = Field(
        None, description="AVG/ratio: the interval covers most of the range; read only the range"
    )
    includes_zero: bool | None = Field(
        None, description="a difference: its 95% interval includes 0 (no evidence of an effect)"
    )
    withheld: str | None = Field(None, description="the rule that withheld this number")
    restricted: str | None = Field(None, description="the rule that narrowed what it counts")


class RuleApplied(BaseModel):
    """A rule that withheld cells of an answer or narrowed what they count."""

    model_config = ConfigDict(extra="allow")

    rule: str = Field(description="a stable id: min_noisy_persons, join_required, …")
    cells: int = Field(description="how many cells (groups, combinations) it withheld")
    threshold: int | None = Field(None, description="min_noisy_persons: the policy's minimum")
    party: str | None = Field(None, description="join_required: whose persons are counted")
    message: str = Field(description="the same, in one English sentence")


Cell = Number | str | int | float | bool | None


class BoundsOut(BaseModel):
    """The per-person bounds a query applied, and whether a match chose them from the data."""

    rows: int = Field(description="rows per person counted at most")
    groups: int = Field(description="groups per person counted at most")
    adaptive: bool = Field(description="chosen at match time with a DP quantile")
    quantile: float | None = Field(None, description="the quantile of persons' counts aimed at")
    epsilon: str | None = Field(None, description="what choosing them cost, exact (a fraction)")
    charged_to: str | None = Field(None, description="the budget share that paid for it")
    pairs: int | None = Field(
        None, description="transition pairs per person (transitions' default), when chosen"
    )


class Bounded(BaseModel):
    """A noisy count and the half-width of its 95% interval."""

    value: int
    error95: float


class CutShare(BaseModel):
    """The cut over kept + cut, with the range both numbers' 95% bounds allow."""

    value: float | None
    low: float
    high: float


class CutDisclosure(BaseModel):
    """What the per-person bounds removed from this answer (noisy, paid from its epsilon).

    ``possible`` false: each person counts at most once per cell, nothing can
    be cut. Otherwise ``cut`` is each person's excess over ``bound`` counted up
    to ``cap`` (so a lower bound of what was removed), ``persons`` the persons
    over the bound, ``share`` the cut over kept + cut, and ``material`` whether
    the cut is beyond its own noise; when it is, the true total is higher than
    the answer.
    """

    model_config = ConfigDict(extra="allow")

    possible: bool
    material: bool = False
    unit: Literal["rows", "groups", "pairs", "amount"] | None = None
    bound: int | None = Field(None, description="the per-person bound that cut")
    cap: int | None = Field(None, description="each person's excess is counted up to this")
    kept: Bounded | None = None
    cut: Bounded | None = Field(None, description="at least this much was cut (95% bound)")
    persons: Bounded | None = Field(None, description="persons over the bound")
    share: CutShare | None = None


class CutPrice(BaseModel):
    """How a query would disclose its cut: the share of its epsilon and the expected bounds."""

    model_config = ConfigDict(extra="allow")

    possible: bool
    epsilon_share: str = Field(description="the share of the query's epsilon spent on the cut")
    unit: str | None = None
    bound: int | None = None
    cap: int | None = None
    epsilon: str | None = None
    cut_error95: float | None = None
    persons_error95: float | None = None


class QueryResult(BaseModel):
    """A released answer: rows of dimensions and numbers, what it cost, what it ran under."""

    model_config = ConfigDict(extra="allow")

    query_id: str
    status: Literal["done", "running", "refused", "failed"] = "done"
    columns: list[str] = Field(default_factory=list)
    rows: list[dict[str, Cell]] = Field(default_factory=list)
    suppressed_groups: int = Field(0, description="groups withheld under the noisy minimum")
    rules: list[RuleApplied] = Field(
        default_factory=list, description="the rules that withheld or narrowed cells, and how"
    )
    epsilon: str | None = Field(None, description="epsilon spent, exact (a fraction)")
    epsilon_float: float | None = None
    delta: float | None = None
    mechanism: str | None = None
    cached: bool = False
    cached_from: str | None = Field(None, description="the query first answered, if cached")
    policy_version: int | None = None
    generation: int | None = None
    suppression_applied: bool = Field(
        False,
        description="customers who opted out (the parties' suppression lists) were left out "
        "of every table this answer read; how many is never said",
    )
    seconds: float | None = None
    template: str | None = None
    bounds: BoundsOut | None = Field(None, description="the per-person bounds applied")
    cut: CutDisclosure | None = Field(None, description="what the per-person bounds removed")


class ExpectedError(BaseModel):
    """How far one released number is expected to be from the truth, 95% of the time."""

    model_config = ConfigDict(extra="allow")

    error95: float | None = None
    sum_error95: float | None = None
    count_error95: float | None = None


class BudgetOutlook(BaseModel):
    """What a priced query means for the caller's budget this period."""

    left: float = Field(description="epsilon left to the caller's party this period")
    period_end: str
    queries_left: int = Field(description="about how many such queries the budget still pays")
    summary: str = Field(description="the same, in one sentence")


class QueryPrice(BaseModel):
    """A dry run: the cost and expected accuracy of a query, priced without reading data."""

    model_config = ConfigDict(extra="allow")

    dry_run: Literal[True]
    epsilon: str
    epsilon_float: float
    delta: float
    mechanism: str
    groups: int
    min_noisy_persons: int
    aggregates: dict[str, ExpectedError]
    threshold_error95: float | None = None
    budget: BudgetOutlook | None = None
    bounds: BoundsOut | None = Field(None, description="the per-person bounds it would apply")
    cut: CutPrice | None = None


class QuerySummary(BaseModel):
    """One past query of the caller's party, as listed in its history."""

    query_id: str
    kind: Literal["sql", "template"]
    template: str | None
    sql: str | None
    params: dict[str, str]
    status: str
    user: str
    epsilon: float
    cached: bool
    policy_version: int | None
    created_at: str
    finished_at: str | None


class PartyBudget(BaseModel):
    """One party's budget this period, in epsilon."""

    party: str
    period: str
    period_start: str
    period_end: str
    share: float
    spent: float
    left: float
    collaboration_cap: float
    collaboration_spent: float | None = Field(
        None, description="reviewers and room admins only: every party's spending together"
    )


class Budget(BaseModel):
    """Budgets the caller may see."""

    parties: list[PartyBudget]


class DatasetVersionOut(BaseModel):
    """One uploaded version of a dataset (metadata, never data).

    Rows, version, bundle and uploader go to the dataset's own party and to
    reviewers and room admins; others see that it exists and how fresh it is
    (``exact`` says so).
    """

    kind: Literal["dataset", "suppression"] | None = Field(
        None, description="'suppression': a list of opted-out customers (never its size)"
    )
    party: str
    dataset: str
    version: int | None = None
    bundle_id: str | None = None
    rows: int | None = None
    columns: dict[str, str]
    uploaded_by: str | None = None
    uploaded_at: str
    status: str
    out_of_domain: dict[str, int] | None = Field(
        None, description="per dimension, rows whose value is outside the policy's domain"
    )
    exact: str | None = Field(None, description="why the exact figures are not shown")


class DatasetOut(BaseModel):
    """A dataset: its contract status, freshness, and versions newest first (to whom may see)."""

    party: str
    dataset: str
    in_policy: bool
    status: str
    uploaded_at: str | None = None
    versions: list[DatasetVersionOut] | None = None
    exact: str | None = Field(None, description="why the versions are not shown")


class Withheld(BaseModel):
    """Links the identity limits withheld: counts only, never an identifier."""

    model_config = ConfigDict(extra="allow")

    links: int | None = None


class GenerationOut(BaseModel):
    """A published match: which dataset versions it was built from (never counts of persons)."""

    generation: int
    finished_at: str | None
    inputs: dict[str, int | None] = Field(description="other parties' version numbers withheld")
    suppression_applied: bool = Field(
        False, description="opted-out customers were left out of its tables (never how many)"
    )
    withheld: Withheld | None = None
    bounds: BoundsOut | None = Field(None, description="per-person bounds chosen from the data")


class ExpiryOut(BaseModel):
    """One retention pass: what expired now, and the tables it deleted (or will, once unread)."""

    datasets: list[str] = Field(description="dataset versions expired now ('party.dataset vN')")
    generations: list[int] = Field(description="match generations expired now")
    deleted: int = Field(description="tables deleted, or deleted as their last reader ends")


class Health(BaseModel):
    """Liveness."""

    status: str


class Readiness(BaseModel):
    """Readiness and what was checked; whether recorded actions are accepted."""

    status: str
    checks: dict[str, bool]
    recording: bool


class Me(BaseModel):
    """The calling user (never the token)."""

    name: str
    role: str
    party: str | None


class DecisionOut(BaseModel):
    """A reviewer's decision on a policy version."""

    reviewer: str
    decision: str
    comment: str | None
    at: str


class PolicyVersionOut(BaseModel):
    """A policy version without its text."""

    version: int
    status: str
    author: str
    comment: str | None
    created_at: str
    activated_at: str | None
    base_version: int | None
    sha256: str
    approvals_required: int | None = Field(description="the bar set when it was proposed")
    approvals: list[str] = Field(description="the reviewers who approved it, in order")
    decisions: list[DecisionOut]


class PolicyChangeOut(BaseModel):
    """One change between versions, classified for privacy, and why."""

    path: str
    kind: str
    old: Any = Field(description="the value before (any policy value)")
    new: Any = Field(description="the value after (any policy value)")
    privacy: str = Field(description="loosens, tightens or neutral")
    reason: str


class PolicyProposed(PolicyVersionOut):
    """A proposed version and its changes from the active one."""

    changes: list[PolicyChangeOut]
    summary: dict[str, int]


class PolicyShown(PolicyVersionOut):
    """A version with its YAML."""

    yaml: str


class PolicyActive(PolicyShown):
    """The policy in force, parsed."""

    policy: CollaborationPolicy


class PolicyDiff(BaseModel):
    """Changes from one version to another, classified."""

    model_config = ConfigDict(populate_by_name=True)

    from_: int = Field(alias="from", serialization_alias="from")
    to: int
    changes: list[PolicyChangeOut]
    summary: dict[str, int]


class ReportRunOut(BaseModel):
    """One report run as recorded: done, refused (with the reason) or failed."""

    run_id: str
    report: str
    slot: str
    trigger: str
    actor: str
    status: str
    policy_version: int
    generation: int | None
    epsilon: str
    epsilon_float: float
    charge_id: int | None
    refunded: bool
    inputs: Json
    files: list[str]
    error: str | None
    started_at: str
    finished_at: str | None


class ReportOut(BaseModel):
    """A report definition of the active policy and its latest run."""

    name: str
    title: str
    schedule: str | None
    enabled: bool
    recipients: list[str]
    epsilon: str
    epsilon_float: float
    sections: list[ReportSection]
    policy_version: int
    last_run: ReportRunOut | None = None


class AuditEntryOut(BaseModel):
    """One audited event and its place in the hash chain."""

    seq: int
    at: str
    actor: str
    action: str
    target: str | None
    outcome: str
    details: Json
    prev_hash: str
    hash: str


class ReanchoredOut(BaseModel):
    """Who resumed recording after a break, and why."""

    seq: int
    at: str
    by: list[str]
    reason: str
    acknowledged: list[str]


class VerificationOut(BaseModel):
    """The chain's verdict, one sentence per problem; whether the room records now."""

    ok: bool
    entries: int
    problems: list[str] = Field(description="every break ever found, re-anchored ones included")
    open_problems: list[str] = Field(default_factory=list)
    broken_at: int | None = None
    reanchors: list[ReanchoredOut] = Field(default_factory=list)
    recording: bool = True


class ErrorDetails(BaseModel):
    """Structured facts about a refusal; which fields are set depends on ``code``."""

    model_config = ConfigDict(extra="allow")

    rule: str | None = Field(None, description="query_rejected: the rule broken (a stable id)")
    clause: str | None = Field(None, description="query_rejected: the piece of the query at fault")
    party: str | None = None
    asked_epsilon: float | None = Field(None, description="budget_exhausted: epsilon asked")
    budget_left: float | None = Field(None, description="budget_exhausted: epsilon left")
    limit: str | None = Field(None, description="budget_exhausted: which limit refused")
    resets_at: str | None = Field(None, description="budget_exhausted: when the budget resets")
    retry_after: int | None = Field(None, description="seconds to wait before asking again")
    file: str | None = None
    row: int | None = None
    field: str | None = None
    generation: int | None = Field(None, description="data_expired: the expired generation")
    expired_at: str | None = Field(None, description="data_expired: when it expired (UTC)")


class ErrorInfo(BaseModel):
    """Every error, API-wide: a stable code, a sentence, the request id and the details."""

    code: str
    message: str
    request_id: str
    details: ErrorDetails


class ErrorBody(BaseModel):
    """The body of every 4xx/5xx answer."""

    error: ErrorInfo


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "bad input; a refused query names its rule in details.rule"),
        (401, "no valid token"),
        (403, "the role may not do this"),
        (404, "not found, or not visible to the caller"),
        (409, "conflicts with the current state"),
        (410, "data_expired: the data was deleted under the policy's retention"),
        (413, "over the size limit"),
        (422, "the request does not validate"),
        (429, "budget exhausted: details.resets_at, and a Retry-After header"),
        (500, "internal error; see the service log"),
        (503, "unavailable now; retry after details.retry_after seconds"),
    )
}
