"""Report definitions: standing releases that the policy's reviewers approve.

A report is a fixed list of template queries, run on a schedule and sent to
named recipients. It lives in the policy (not in a side file) because every
part of it is privacy-relevant: which numbers leave the room, how often, at
what epsilon, and who reads them. Approving the policy approves the reports.

The checks that need the rest of the policy (recipients are parties, epsilons
fit the per-query cap and the reporters' budget share) are in
:func:`check_reports`, called by the collaboration model's validator.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from fractions import Fraction

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cleanroom.room.epsilon import Epsilon
from cleanroom.room.policy.privacy import MIN_QUERY_EPSILON, PrivacyPolicy, TemplatePolicy

# Report names appear in URLs and directory names: keep them to a safe alphabet.
REPORT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
TEMPLATE_NAME = r"^[a-z][a-z0-9_]{0,62}$"
REVIEWERS = "reviewers"  # a recipient that is not a party: the compliance reviewers


def exact(value: float | Fraction) -> Epsilon:
    """A policy epsilon as the decimal its author wrote (what the ledger charges)."""
    return Epsilon.parse(value)


class ReportSection(BaseModel):
    """One template query of a report, with its parameters and its own epsilon."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    template: str = Field(pattern=TEMPLATE_NAME, description="an approved template, e.g. overlap")
    params: dict[str, str] = Field(default_factory=dict, max_length=20)
    epsilon: Epsilon = Field(
        ge=MIN_QUERY_EPSILON, le=10, description="this section's share of the run's epsilon"
    )


class ReportPolicy(BaseModel):
    """A report: what it computes, when it runs (cron, room time zone), who may read it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1, max_length=200)
    sections: list[ReportSection] = Field(min_length=1, max_length=20)
    schedule: str | None = Field(
        None,
        description="five-field cron expression in the room's time zone (setting 'timezone', "
        "default Asia/Tehran; minute hour day month weekday); "
        "without it the report runs only when a reporter or room admin asks",
    )
    recipients: list[str] = Field(
        min_length=1, description="party ids whose analysts may read the runs, or 'reviewers'"
    )
    enabled: bool = True

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = " ".join(value.split())
        # croniter also accepts a sixth (seconds) field; a report never needs one, and
        # a typo that shifts every field by one would otherwise still "validate".
        if len(value.split(" ")) != 5 or not croniter.is_valid(value):
            raise ValueError(
                f"'{value[:60]}' is not a five-field cron expression "
                "(minute hour day-of-month month day-of-week, e.g. '0 6 * * mon')"
            )
        return value

    @field_validator("recipients")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("recipients repeat")
        return value

    @property
    def epsilon(self) -> Fraction:
        """What one run costs: the sum of its sections' epsilons, exactly."""
        return sum((exact(s.epsilon) for s in self.sections), Fraction(0))


def check_reports(
    reports: Mapping[str, ReportPolicy],
    *,
    parties: Set[str],
    privacy: PrivacyPolicy | None,
    templates: Mapping[str, TemplatePolicy],
) -> None:
    """Refuse reports that could never run as approved (a ``ValueError`` naming the field)."""
    if reports and privacy is None:
        raise ValueError("reports: a policy without a privacy section answers no query")
    for name, report in reports.items():
        where = f"reports.{name}"
        if not REPORT_NAME.match(name):
            raise ValueError(
                f"{where}: report names are lower-case letters, digits, '_' and '-', "
                "starting with a letter"
            )
        unknown = set(report.recipients) - set(parties) - {REVIEWERS}
        if unknown:
            raise ValueError(
                f"{where}.recipients: {sorted(unknown)} are neither parties nor '{REVIEWERS}'"
            )
        assert privacy is not None
        cap = exact(privacy.max_epsilon_per_query)
        for i, section in enumerate(report.sections):
            approved = templates.get(section.template)
            if approved is not None and not approved.enabled:
                raise ValueError(
                    f"{where}.sections.{i}: the policy disables the template '{section.template}'"
                )
            if exact(section.epsilon) > cap:
                raise ValueError(
                    f"{where}.sections.{i}.epsilon: {section.epsilon} is over "
                    f"max_epsilon_per_query ({privacy.max_epsilon_per_query})"
                )
        share = exact(privacy.budget.shares.get("reporter", 0.0))
        if report.epsilon > share:
            raise ValueError(
                f"{where}: one run costs epsilon {float(report.epsilon):g}, more than the "
                f"reporter's whole budget share ({float(share):g} per {privacy.budget.period}); "
                "it could never run"
            )
