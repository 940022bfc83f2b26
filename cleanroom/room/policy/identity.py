"""The identity part of a policy: how many identifiers one person may gather.

A party holds the match key, so it can tokenize anyone's phone or e-mail and
tie them together in its rows; without a limit one upload could merge a
thousand of another party's customers into one person (SECURITY.md,
"Identity poisoning"). Identity resolution (``cleanroom.room.identity``)
follows no link of a token seen with more identifiers of one type than a
person may hold, and forms no person holding more than that; and it follows
no link of a party whose rows join more of another party's own persons than
``max_foreign_merges`` allows.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cleanroom.contract.spec import IdType
from cleanroom.room.identity_foreign import ForeignLimit


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


class ForeignMerges(BaseModel):
    """How many of one party's persons another party's rows may merge.

    A party's own persons are the components of its own rows' links. Another
    party's rows that join two of them merge them; one party may do so up to
    ``max(at_least, fraction × the other party's persons)`` times, beyond which
    none of its links that join that party's persons is followed. Honest data
    merges few (a customer whose phone and e-mail one brand saw apart and
    another together); a forger ties many (SECURITY.md, "Identity poisoning").
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fraction: float = Field(
        default=0.002,
        ge=0,
        le=1,
        description="share of another party's persons one party's rows may merge",
    )
    at_least: int = Field(
        default=5,
        ge=0,
        le=1_000_000,
        description="merges always allowed, however few persons the other party has",
    )

    def limit(self) -> ForeignLimit:
        """The limit as identity resolution takes it."""
        return ForeignLimit(fraction=float(self.fraction), at_least=int(self.at_least))


class IdentityPolicy(BaseModel):
    """Limits on what identity resolution may merge (safe defaults when unset)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_per_person: IdentifierLimits = Field(
        default_factory=IdentifierLimits,
        description="identifiers of each type one person may hold; more is not merged",
    )
    max_foreign_merges: ForeignMerges = Field(
        default_factory=ForeignMerges,
        description="how many of another party's persons one party's rows may merge",
    )
