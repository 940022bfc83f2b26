"""Reading policy files: every error names the file, the path inside it and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cleanroom.errors import SpecError
from cleanroom.room.policy.models import CollaborationPolicy
from cleanroom.spec import format_validation_error, read_yaml


def parse_policy(data: Any, source: str = "<policy>") -> CollaborationPolicy:
    """Validate an already-loaded mapping."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping with 'collaboration' and 'parties'")
    try:
        return CollaborationPolicy.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_validation_error(source, err)) from None


def _inline_key_files(data: dict[str, Any], base: Path, source: str) -> None:
    """``public_key_file: keys/okala.pub`` becomes the PEM itself, so a stored version is whole."""
    parties = data.get("parties")
    if not isinstance(parties, dict):
        return
    for party, spec in parties.items():
        if isinstance(spec, dict) and "public_key_file" in spec:
            if "public_key" in spec:
                raise SpecError(
                    f"{source}: parties.{party}: give public_key or public_key_file, not both"
                )
            path = base / str(spec.pop("public_key_file"))
            try:
                spec["public_key"] = path.read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError):
                raise SpecError(
                    f"{source}: parties.{party}.public_key_file: cannot read {path}"
                ) from None


def load_policy(path: str | Path) -> tuple[CollaborationPolicy, str]:
    """The validated policy and its canonical YAML text (keys inlined), for storing."""
    path = Path(path)
    data = read_yaml(path)
    if isinstance(data, dict):
        _inline_key_files(data, path.parent, str(path))
    policy = parse_policy(data, str(path))
    return policy, dump_policy(policy)


def dump_policy(policy: CollaborationPolicy) -> str:
    """Canonical YAML of a policy: what the room stores and hashes."""
    return yaml.safe_dump(policy.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
