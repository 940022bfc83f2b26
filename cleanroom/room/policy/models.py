"""The policy's data model (pydantic): validated once at the edge, immutable after.

A dataset contract has the shape of a party's dataset spec (DESIGN.md §6), so a
party can check its spec against the policy before sealing anything.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from cleanroom.contract.keys import public_key_id
from cleanroom.contract.spec import NAME, ColumnType, DatasetSpec, IdType
from cleanroom.room.identity_foreign import MAX_PARTIES
from cleanroom.room.policy.identity import IdentityPolicy
from cleanroom.room.policy.privacy import PartyAccess, PrivacyPolicy, TemplatePolicy
from cleanroom.room.policy.reports import ReportPolicy, check_reports
from cleanroom.room.policy.retention import RetentionPolicy
from cleanroom.text import EmptiedValue, normalize_category, quoted

HEX32 = re.compile(r"^[0-9a-f]{32}$")


Scalar = str | int | float | bool


class ColumnPolicy(BaseModel):
    """A column's type and the role that says how queries may use it.

    A *dimension* (a category, boolean or integer with a declared ``domain``)
    may be grouped by and filtered on; its domain is the key set every grouped
    query releases, so no undeclared value can ever appear in a result. A
    *metric* (a number or integer with ``bounds``) may be aggregated; each value
    is clamped to its bounds. A timestamp or date is *time* (filters only). A
    column with neither domain nor bounds is *stored only*: no query touches it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ColumnType
    domain: list[Scalar] | None = Field(None, min_length=1, max_length=10_000)
    bounds: tuple[float, float] | None = None

    @model_validator(mode="before")
    @classmethod
    def _normal_domain(cls, data: Any) -> Any:
        """A category domain in the spelling the data has (cleanroom.text, as parties do).

        So a policy may write ``شيراز`` or ``شیراز``: both are the one stored
        value; two entries that are one value after normalization are refused.
        """
        if not isinstance(data, dict) or data.get("type") != ColumnType.category.value:
            return data
        domain = data.get("domain")
        if not isinstance(domain, list):
            return data
        seen: dict[str, str] = {}
        out: list[Any] = []
        for value in domain:
            if not isinstance(value, str):
                out.append(value)
                continue
            try:
                norm = normalize_category(value)
            except EmptiedValue as err:
                raise ValueError(f"domain value {err}") from None
            if not norm:
                raise ValueError("domain values must not be blank")
            if norm in seen:
                raise ValueError(
                    f"domain values repeat: {quoted(seen[norm])} and {quoted(value)} are one "
                    f"value ({quoted(norm)}) after normalization"
                )
            seen[norm] = value
            out.append(norm)
        return {**data, "domain": out}

    @model_validator(mode="after")
    def _role_fits_type(self) -> ColumnPolicy:
        if self.domain is not None and self.bounds is not None:
            raise ValueError("a column is a dimension (domain) or a metric (bounds), not both")
        if self.domain is not None:
            if self.type not in (ColumnType.category, ColumnType.boolean, ColumnType.integer):
                raise ValueError(f"a {self.type} column cannot have a domain")
            if len(set(map(str, self.domain))) != len(self.domain):
                raise ValueError("domain values repeat")
            expected = {
                ColumnType.category: (str,),
                ColumnType.boolean: (bool,),
                ColumnType.integer: (int,),
            }[self.type]
            wrong = [v for v in self.domain if not isinstance(v, expected)]
            if wrong or (
                self.type is ColumnType.integer and any(isinstance(v, bool) for v in self.domain)
            ):
                raise ValueError(f"domain values must all be of the column's type ({self.type})")
        if self.bounds is not None:
            if self.type not in (ColumnType.number, ColumnType.integer):
                raise ValueError(f"a {self.type} column cannot have bounds")
            if not self.bounds[0] < self.bounds[1]:
                raise ValueError("bounds must be [lower, upper] with lower < upper")
        return self

    @property
    def role(self) -> str:
        """dimension, metric, time or stored."""
        if self.domain is not None:
            return "dimension"
        if self.bounds is not None:
            return "metric"
        if self.type in (ColumnType.timestamp, ColumnType.date):
            return "time"
        return "stored"


class DatasetContract(BaseModel):
    """What a party has agreed to send for one dataset, and how each column may be used."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identifiers: dict[str, IdType] = Field(min_length=1)
    columns: dict[str, ColumnPolicy] = Field(default_factory=dict)
    time: str | None = None
    activity: bool = Field(
        True,
        description="whether its events count as activity at the brand in journey templates"
        " (a campaign assignment table is not)",
    )

    @field_validator("columns", mode="before")
    @classmethod
    def _plain_types(cls, value: object) -> object:
        """``city: category`` is shorthand for ``city: {type: category}``."""
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _no_person_column(self) -> DatasetContract:
        if "person" in self.identifiers or "person" in self.columns:
            raise ValueError("'person' is the room's own column; rename the party's column")
        return self

    def as_spec(self, dataset: str) -> DatasetSpec:
        """The same contract in the party-side spec's shape (validates it as one, too)."""
        return DatasetSpec(
            dataset=dataset,
            identifiers=self.identifiers,
            columns={name: column.type for name, column in self.columns.items()},
            time=self.time,
        )


class PartyPolicy(BaseModel):
    """A party: its display name, its signing key, its datasets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    names: dict[Literal["fa", "en"], str] = Field(
        default_factory=dict,
        description="The brand's display name per interface language (e.g. fa: اکالا); "
        "pages and reports in a language without one show `name`.",
    )
    public_key: str = Field(description="Ed25519 public key, PEM (or public_key_file when loading)")
    datasets: dict[str, DatasetContract] = Field(min_length=1)
    analysts: PartyAccess = Field(default_factory=PartyAccess)

    @field_validator("public_key")
    @classmethod
    def _is_ed25519(cls, value: str) -> str:
        try:
            key = load_pem_public_key(value.encode())
        except ValueError:
            raise ValueError("not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("must be an Ed25519 public key (made by `cleanroom keys party`)")
        return value

    @property
    def verify_key(self) -> Ed25519PublicKey:
        """The key the room checks this party's bundle signatures against."""
        key = load_pem_public_key(self.public_key.encode())
        assert isinstance(key, Ed25519PublicKey)
        return key

    @property
    def key_id(self) -> str:
        """Fingerprint of the registered key."""
        return public_key_id(self.verify_key)


class GovernancePolicy(BaseModel):
    """How a new policy version becomes active (``cleanroom.room.policy.lifecycle``).

    A policy decides what every party's data may be used for, so no one person
    changes it: a version needs this many approvals from reviewers other than
    its author. The bar that applies is the one of the version active when the
    proposal was made, so a proposal cannot lower its own bar.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    approvals_required: int = Field(
        default=2,
        ge=1,
        le=20,
        description="distinct reviewers, never the author, to activate a version",
    )


class MatchKeyRotation(BaseModel):
    """A change of the group match key in progress (SECURITY.md, "Match-key rotation").

    From ``cutover`` on, the room accepts bundles under ``to_key_id`` beside
    the policy's ``match_key_id``; a match never mixes the two, and once no
    party's live data is left under the old key, the room retires it (its
    bundles are refused from then on, its stored versions made unusable).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    to_key_id: str = Field(description="id of the new match key (`cleanroom keys match-key`)")
    cutover: AwareDatetime = Field(description="from when bundles under the new key are accepted")

    @field_validator("to_key_id")
    @classmethod
    def _hex_id(cls, value: str) -> str:
        if not HEX32.match(value):
            raise ValueError("must be the 32-hex-digit id printed by `cleanroom keys match-key`")
        return value


class CollaborationPolicy(BaseModel):
    """One collaboration: its parties and the group match key they tokenize with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    collaboration: str = Field(min_length=1, max_length=100)
    description: str = ""
    match_key_id: str = Field(description="key id printed by `cleanroom keys match-key`")
    match_key_rotation: MatchKeyRotation | None = Field(
        None, description="a new match key the parties move to (SECURITY.md)"
    )
    parties: dict[str, PartyPolicy] = Field(min_length=1)
    privacy: PrivacyPolicy | None = Field(
        None, description="without it the room answers no query at all (fail closed)"
    )
    templates: dict[str, TemplatePolicy] = Field(default_factory=dict)
    governance: GovernancePolicy = Field(default_factory=GovernancePolicy)
    identity: IdentityPolicy = Field(
        default_factory=IdentityPolicy,
        description="limits on what one person may gather (identity poisoning)",
    )
    reports: dict[str, ReportPolicy] = Field(
        default_factory=dict, description="scheduled reports (cleanroom.room.reports)"
    )
    retention: RetentionPolicy = Field(
        default_factory=RetentionPolicy,
        description="how long dataset versions and match generations live (unset: kept)",
    )

    @field_validator("match_key_id")
    @classmethod
    def _hex_id(cls, value: str) -> str:
        if not HEX32.match(value):
            raise ValueError("must be the 32-hex-digit id printed by `cleanroom keys match-key`")
        return value

    @model_validator(mode="after")
    def _names(self) -> CollaborationPolicy:
        rotation = self.match_key_rotation
        if rotation is not None and rotation.to_key_id == self.match_key_id:
            raise ValueError("match_key_rotation.to_key_id is the key already in use")
        if len(self.parties) > MAX_PARTIES:
            raise ValueError(
                f"a collaboration has at most {MAX_PARTIES} parties (the foreign-merge bound "
                f"tells parties apart by one bit each), not {len(self.parties)}"
            )
        for party, spec in self.parties.items():
            if not NAME.match(party):
                raise ValueError(f"party id '{party}' must be lower-case letters, digits and '_'")
            for dataset, contract in spec.datasets.items():
                if not NAME.match(dataset):
                    raise ValueError(f"dataset name '{party}.{dataset}' is not a valid name")
                contract.as_spec(dataset)
            for table in spec.analysts.tables if spec.analysts.tables != "*" else []:
                if "." not in table or self.contract(*table.split(".", 1)) is None:
                    raise ValueError(f"parties.{party}.analysts.tables: unknown table '{table}'")
        if self.privacy is not None:
            unknown = set(self.privacy.budget.shares) - set(self.parties) - {"reporter"}
            if unknown:
                raise ValueError(f"privacy.budget.shares: unknown parties {sorted(unknown)}")
        check_reports(
            self.reports, parties=set(self.parties), privacy=self.privacy, templates=self.templates
        )
        return self

    def contract(self, party: str, dataset: str) -> DatasetContract | None:
        """The contract for one dataset, if the policy has it."""
        spec = self.parties.get(party)
        return spec.datasets.get(dataset) if spec else None
