"""The identity part of a policy: how many identifiers one person may gather.

A party holds the match key, so it can tokenize anyone's phone or e-mail and
tie them together in its rows; without a limit one upload could merge a
thousand of another party's customers into one person (SECURITY.md,
"Identity poisoning"). Identity resolution (``cleanroom.room.identity``)
follows no link of a token seen with more identifiers of one type than a
person may hold, and forms no person holding more than that.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cleanroom.spec import IdType


class IdentifierLimits(BaseModel):
    """The most identifiers of each type one person may hold, across all parties.

    Defaults allow a few phones, e-mails and cards per person: tight enough
    that one forged identifier can join at most that many others, loose
    enough that an honest customer with a second SIM or card still links.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    phone: int = Field(default=3, ge=1, le=1_000, description="phones one person may hold")
    email: int = Field(
        default=3, ge=1, le=1_000, description="e-mail addresses one person may hold"
    )
    card: int = Field(default=4, ge=1, le=1_000, description="cards one person may hold")

    def by_type(self) -> dict[str, int]:
        """Identifier type → limit, for identity resolution."""
        return {kind.value: int(getattr(self, kind.value)) for kind in IdType}


class IdentityPolicy(BaseModel):
    """Limits on what identity resolution may merge (safe defaults when unset)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_per_person: IdentifierLimits = Field(
        default_factory=IdentifierLimits,
        description="identifiers of each type one person may hold; more is not merged",
    )
