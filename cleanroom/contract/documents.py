"""The documents both sides read and write: canonical JSON bytes and YAML files.

One owner for each, so a hash the party signs is the hash the room checks, and a YAML
error reads the same whether a spec, a policy or the room's settings file is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cleanroom.errors import T_, SpecError


def canonical_json(doc: dict[str, Any]) -> bytes:
    """One byte string per document, so hashes and signatures are reproducible."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def format_validation_error(source: str, err: ValidationError) -> str:
    """One line per problem: ``file: path.inside: message``."""
    lines = []
    for problem in err.errors():
        loc = ".".join(str(p) for p in problem["loc"]) or "(top level)"
        lines.append(f"{source}: {loc}: {problem['msg']}")
    return "; ".join(lines)


def read_yaml(path: Path) -> Any:
    """A YAML file's content; errors name the file (and the line of a syntax error)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(T_("%(path)s: no such file", path=path)) from None
    except (UnicodeDecodeError, OSError) as err:
        raise SpecError(
            T_("%(path)s: cannot read (%(name)s)", path=path, name=err.__class__.__name__)
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise SpecError(T_("%(path)s: %(where)snot valid YAML", path=path, where=where)) from None
