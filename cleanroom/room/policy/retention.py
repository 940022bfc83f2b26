"""The retention part of a policy: how long party data and what was built from it live.

Brands' contracts and Iran's data-protection rules limit how long customer
data is kept. A dataset version lives ``dataset_days`` from its upload; a match
generation lives ``generation_days`` from the match that built it, and never
longer than any dataset version it was built from (its analysis tables hold
those rows). Past that the room deletes the data wherever it was written
(``cleanroom.room.expiry``) and refuses queries that would read it. Unset
means kept until replaced (the behaviour before retention existed); a shorter
retention is a tightening in a policy diff, a longer one a loosening.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

MAX_DAYS = 36_500  # a century: any longer is a typo, not a retention


class RetentionPolicy(BaseModel):
    """Days a dataset version and a match generation live (unset: until replaced)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset_days: int | None = Field(
        default=None,
        ge=1,
        le=MAX_DAYS,
        description="days a dataset version lives after its upload; then it is deleted",
    )
    generation_days: int | None = Field(
        default=None,
        ge=1,
        le=MAX_DAYS,
        description="days a match generation lives after its match; then it is deleted",
    )

    @property
    def active(self) -> bool:
        """Whether anything ever expires under this policy."""
        return self.dataset_days is not None or self.generation_days is not None

    def dataset_expiry(self, uploaded_at: datetime) -> datetime | None:
        """When a dataset version uploaded at ``uploaded_at`` expires (None: never)."""
        if self.dataset_days is None:
            return None
        return uploaded_at + timedelta(days=self.dataset_days)

    def generation_expiry(self, finished_at: datetime) -> datetime | None:
        """When a generation finished at ``finished_at`` expires by its own age (None: never)."""
        if self.generation_days is None:
            return None
        return finished_at + timedelta(days=self.generation_days)
