"""Reading policy files: every error names the file, the path inside it and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cleanroom.contract.documents import format_validation_error, read_yaml
from cleanroom.errors import T_, SpecError
from cleanroom.room.policy.models import CollaborationPolicy

# A proposal arrives as text over HTTP. The cap on characters bounds parsing; the
# cap on values bounds what YAML aliases can expand to (a few kilobytes of
# nested anchors can otherwise stand for billions of values to validate).
MAX_POLICY_CHARS = 2_000_000
REPORTER = "reporter"  # the party a report's sections run as (budget share and access)
MAX_POLICY_VALUES = 1_000_000


def parse_policy(data: Any, source: str = "<policy>") -> CollaborationPolicy:
    """Validate an already-loaded mapping."""
    if not isinstance(data, dict):
        raise SpecError(
            T_("%(source)s: expected a mapping with 'collaboration' and 'parties'", source=source)
        )
    try:
        return CollaborationPolicy.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_validation_error(source, err)) from None


def inline_key_files(data: dict[str, Any], base: Path, source: str) -> None:
    """``public_key_file: keys/okala.pub`` becomes the PEM itself, so a stored version is whole."""
    parties = data.get("parties")
    if not isinstance(parties, dict):
        return
    for party, spec in parties.items():
        if isinstance(spec, dict) and "public_key_file" in spec:
            if "public_key" in spec:
                raise SpecError(
                    T_(
                        "%(source)s: parties.%(party)s: give public_key or public_key_file, not "
                        "both",
                        source=source,
                        party=party,
                    )
                )
            path = base / str(spec.pop("public_key_file"))
            try:
                spec["public_key"] = path.read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError):
                raise SpecError(
                    T_(
                        "%(source)s: parties.%(party)s.public_key_file: cannot read %(path)s",
                        source=source,
                        party=party,
                        path=path,
                    )
                ) from None


def load_policy(path: str | Path) -> tuple[CollaborationPolicy, str]:
    """The validated policy and its canonical YAML text (keys inlined), for storing."""
    path = Path(path)
    data = read_yaml(path)
    if isinstance(data, dict):
        inline_key_files(data, path.parent, str(path))
    policy = parse_policy(data, str(path))
    check_report_sections(policy, str(path))
    return policy, dump_policy(policy)


def parse_policy_text(text: str, source: str = "<policy>") -> tuple[CollaborationPolicy, str]:
    """A whole policy sent as YAML text (a proposal): the policy and its canonical YAML.

    The room cannot read the sender's files, so keys must be inline;
    ``cleanroom policy propose`` inlines ``public_key_file`` before sending.
    """
    if len(text) > MAX_POLICY_CHARS:
        raise SpecError(
            T_(
                "%(source)s: over %(max_policy_chars)s characters",
                source=source,
                max_policy_chars=format(MAX_POLICY_CHARS, ","),
            )
        )
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None)
        raise SpecError(
            T_(
                "%(source)s: %(where)snot valid YAML%(value)s",
                source=source,
                where=where,
                value=f" ({problem})" if problem else "",
            )
        ) from None
    _check_size(data, source)
    if isinstance(data, dict) and isinstance(data.get("parties"), dict):
        for party, spec in data["parties"].items():
            if isinstance(spec, dict) and "public_key_file" in spec:
                raise SpecError(
                    T_(
                        "%(source)s: parties.%(party)s.public_key_file: the room cannot read "
                        "your files; give the key itself as public_key (`cleanroom policy "
                        "propose` inlines key files)",
                        source=source,
                        party=party,
                    )
                )
    policy = parse_policy(data, source)
    check_report_sections(policy, source)
    return policy, dump_policy(policy)


def check_report_sections(policy: CollaborationPolicy, source: str) -> None:
    """Refuse a policy holding a report section its template would refuse at every run.

    Each section's template and parameters are checked exactly as a run
    checks them (as the reporters' query, under this policy), when the
    policy is proposed or loaded — so reviewers never approve a report that
    can only be refused later. Stored versions are not re-checked when read.
    """
    # Templates read the policy model, so they are imported here, not at the top.
    from cleanroom.room.analyses import prepare_template
    from cleanroom.room.query.check import QueryRejected

    for name, report in policy.reports.items():
        for i, section in enumerate(report.sections):
            try:
                prepare_template(
                    section.template, dict(section.params), policy=policy, party=REPORTER
                )
            except QueryRejected as err:
                raise SpecError(
                    T_(
                        "%(source)s: reports.%(name)s.sections.%(i)s: %(rule)s: %(err)s",
                        source=source,
                        name=name,
                        i=i,
                        rule=err.rule,
                        err=err,
                    )
                ) from None


def _check_size(data: Any, source: str) -> None:
    """Refuse documents whose aliases expand past :data:`MAX_POLICY_VALUES` values."""
    seen = 0
    stack = [data]
    while stack:
        value = stack.pop()
        seen += 1
        if seen > MAX_POLICY_VALUES:
            raise SpecError(
                T_(
                    "%(source)s: expands to over %(max_policy_values)s values",
                    source=source,
                    max_policy_values=format(MAX_POLICY_VALUES, ","),
                )
            )
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def dump_policy(policy: CollaborationPolicy) -> str:
    """Canonical YAML of a policy: what the room stores and hashes."""
    return yaml.safe_dump(policy.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
