"""Writing a policy from the parties' specs: how a demo or a new collaboration starts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from cleanroom.spec import DatasetSpec


def policy_document(
    collaboration: str,
    match_key_id: str,
    parties: Mapping[str, tuple[str, Path, list[DatasetSpec]]],
) -> dict[str, Any]:
    """``parties``: id -> (display name, public key file, dataset specs)."""
    return {
        "collaboration": collaboration,
        "match_key_id": match_key_id,
        "parties": {
            party: {
                "name": name,
                "public_key": key_file.read_text(encoding="ascii"),
                "datasets": {
                    spec.dataset: spec.model_dump(mode="json", exclude={"dataset"})
                    for spec in specs
                },
            }
            for party, (name, key_file, specs) in parties.items()
        },
    }


def write_policy(path: Path, document: dict[str, Any]) -> Path:
    """YAML, in the key order people read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path
