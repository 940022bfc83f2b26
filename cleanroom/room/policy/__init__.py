"""Collaboration policy: who takes part, with which keys and datasets (policy as code)."""

from cleanroom.room.policy.load import load_policy, parse_policy
from cleanroom.room.policy.models import CollaborationPolicy, DatasetContract, PartyPolicy

__all__ = [
    "CollaborationPolicy",
    "DatasetContract",
    "PartyPolicy",
    "load_policy",
    "parse_policy",
]
