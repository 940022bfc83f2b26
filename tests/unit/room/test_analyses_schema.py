"""The declared template parameters are the ones the templates read, with the same ranges.

The web console builds its forms from :mod:`cleanroom.room.analyses.schema`; these
tests make sure a form can offer nothing a template refuses and miss nothing it takes.
"""

from __future__ import annotations

import datetime as dt
import importlib
from pathlib import Path

import pytest

from cleanroom.contract.keys import generate_party_keys
from cleanroom.errors import InternalError
from cleanroom.room.analyses import TEMPLATES, prepare_template
from cleanroom.room.analyses.params import Params
from cleanroom.room.analyses.schema import SCHEMAS, Param
from cleanroom.room.policy import CollaborationPolicy, load_policy
from cleanroom.room.query.check import QueryRejected

EXAMPLE = Path(__file__).resolve().parents[3] / "policies" / "group-journeys.example.yaml"
# What a form must fill in for each template's required parameters (party okala).
REQUIRED = {
    "funnel": {"steps": "okala,ofogh"},
    "time_to_cross": {"from": "okala", "to": "ofogh"},
    "lift": {"outcome": "okala"},
    "app_to_store": {"from": "okala", "to": "ofogh"},
}


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> CollaborationPolicy:
    root = tmp_path_factory.mktemp("schema")
    copy = root / EXAMPLE.name
    copy.write_text(EXAMPLE.read_text())
    for party in ("ofogh", "okala", "filimo", "tapsi", "ozone"):
        generate_party_keys(party, root / "keys")
    return load_policy(copy)[0]


def test_every_template_has_a_schema() -> None:
    assert set(SCHEMAS) == set(TEMPLATES)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_declared_defaults_pass_the_template(name: str, policy: CollaborationPolicy) -> None:
    params = {p.name: p.default for p in SCHEMAS[name] if p.default is not None}
    prepare_template(name, {**params, **REQUIRED.get(name, {})}, policy=policy, party="okala")
    assert {p.name for p in SCHEMAS[name] if p.required} == set(REQUIRED.get(name, {}))


@pytest.mark.parametrize(
    ("name", "param"),
    [(n, p) for n, ps in sorted(SCHEMAS.items()) for p in ps if p.kind == "integer"],
)
def test_the_declared_ranges_are_the_enforced_ones(
    name: str, param: Param, policy: CollaborationPolicy
) -> None:
    assert param.low is not None and param.high is not None
    for outside in (param.low - 1, param.high + 1):
        raw = {**REQUIRED.get(name, {}), param.name: str(outside)}
        with pytest.raises(QueryRejected, match=f"between {param.low} and {param.high}"):
            prepare_template(name, raw, policy=policy, party="okala")


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_declared_parameter_is_documented(name: str) -> None:
    doc = importlib.import_module(f"cleanroom.room.analyses.{name}").__doc__ or ""
    doc += TEMPLATES[name].__doc__ or ""
    for param in SCHEMAS[name]:
        assert f"``{param.name}``" in doc, param.name


def test_an_unknown_parameter_is_refused_naming_the_known_ones(
    policy: CollaborationPolicy,
) -> None:
    with pytest.raises(
        QueryRejected, match=r"no parameter\(s\) '\u2068colour\u2069' \(it takes brands, "
    ):
        prepare_template("segments", {"colour": "red"}, policy=policy, party="okala")


def test_a_getter_the_schema_does_not_declare_is_our_bug() -> None:
    p = Params("segments", {})
    with pytest.raises(InternalError, match="not declared"):
        p.integer("undeclared_days", 1, 1, 2)
    with pytest.raises(InternalError, match="another range"):
        p.integer("recent_days", 30, 1, 366)
    with pytest.raises(InternalError, match="not declared as date"):
        p.date("recent_days", dt.date(2026, 1, 1))
