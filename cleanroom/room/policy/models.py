"""The policy's data model (pydantic): validated once at the edge, immutable after.

A dataset contract has the shape of a party's dataset spec (DESIGN.md §6), so a
party can check its spec against the policy before sealing anything.
"""

from __future__ import annotations

import re

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cleanroom.keys import public_key_id
from cleanroom.spec import NAME, ColumnType, DatasetSpec, IdType

HEX32 = re.compile(r"^[0-9a-f]{32}$")


class DatasetContract(BaseModel):
    """What a party has agreed to send for one dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identifiers: dict[str, IdType] = Field(min_length=1)
    columns: dict[str, ColumnType] = Field(default_factory=dict)
    time: str | None = None

    def as_spec(self, dataset: str) -> DatasetSpec:
        """The same contract in the party-side spec's shape (validates it as one, too)."""
        return DatasetSpec(
            dataset=dataset, identifiers=self.identifiers, columns=self.columns, time=self.time
        )


class PartyPolicy(BaseModel):
    """A party: its display name, its signing key, its datasets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    public_key: str = Field(description="Ed25519 public key, PEM (or public_key_file when loading)")
    datasets: dict[str, DatasetContract] = Field(min_length=1)

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


class CollaborationPolicy(BaseModel):
    """One collaboration: its parties and the group match key they tokenize with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    collaboration: str = Field(min_length=1, max_length=100)
    description: str = ""
    match_key_id: str = Field(description="key id printed by `cleanroom keys match-key`")
    parties: dict[str, PartyPolicy] = Field(min_length=1)

    @field_validator("match_key_id")
    @classmethod
    def _hex_id(cls, value: str) -> str:
        if not HEX32.match(value):
            raise ValueError("must be the 32-hex-digit id printed by `cleanroom keys match-key`")
        return value

    @model_validator(mode="after")
    def _names(self) -> CollaborationPolicy:
        for party, spec in self.parties.items():
            if not NAME.match(party):
                raise ValueError(f"party id '{party}' must be lower-case letters, digits and '_'")
            for dataset, contract in spec.datasets.items():
                if not NAME.match(dataset):
                    raise ValueError(f"dataset name '{party}.{dataset}' is not a valid name")
                contract.as_spec(dataset)
        return self

    def contract(self, party: str, dataset: str) -> DatasetContract | None:
        """The contract for one dataset, if the policy has it."""
        spec = self.parties.get(party)
        return spec.datasets.get(dataset) if spec else None
