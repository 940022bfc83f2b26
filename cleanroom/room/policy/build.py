"""Writing a policy from the parties' specs: how a demo or a new collaboration starts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from cleanroom.contract.spec import DatasetSpec


def policy_document(
    collaboration: str,
    match_key_id: str,
    parties: Mapping[str, tuple[str, Path, list[DatasetSpec]]],
    *,
    roles: Mapping[str, Mapping[str, dict[str, Any]]] | None = None,
    privacy: dict[str, Any] | None = None,
    templates: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``parties``: id -> (display name, public key file, dataset specs).

    ``roles`` adds a domain or bounds per column (``"party/dataset"`` -> column
    -> ``{"domain": [...]}`` or ``{"bounds": [lo, hi]}``); ``privacy`` and
    ``templates`` are the policy's sections as they would be written in YAML.
    """

    def columns(party: str, spec: DatasetSpec) -> dict[str, Any]:
        extra = (roles or {}).get(f"{party}/{spec.dataset}", {})
        return {
            name: {"type": kind.value, **extra[name]} if name in extra else kind.value
            for name, kind in spec.columns.items()
        }

    doc: dict[str, Any] = {
        "collaboration": collaboration,
        "match_key_id": match_key_id,
        "parties": {
            party: {
                "name": name,
                "public_key": key_file.read_text(encoding="ascii"),
                "datasets": {
                    spec.dataset: {
                        "identifiers": {k: v.value for k, v in spec.identifiers.items()},
                        "columns": columns(party, spec),
                        **({"time": spec.time} if spec.time else {}),
                    }
                    for spec in specs
                },
            }
            for party, (name, key_file, specs) in parties.items()
        },
    }
    if privacy is not None:
        doc["privacy"] = privacy
    if templates is not None:
        doc["templates"] = templates
    return doc


def write_policy(path: Path, document: dict[str, Any]) -> Path:
    """YAML, in the key order people read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path
