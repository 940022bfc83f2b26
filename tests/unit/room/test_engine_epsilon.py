"""Which epsilon a query spends when it names none: the template's approved one, else the
policy's default; never over the per-query cap."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from cleanroom.room.policy import load_policy
from cleanroom.room.policy.privacy import TemplatePolicy
from cleanroom.room.query.check import QueryRejected
from cleanroom.room.query.engine import QueryRequest, _epsilon

POLICY = load_policy(Path(__file__).parents[2] / "fixtures" / "queries" / "policy.yaml")[0]


def test_a_template_spends_its_approved_epsilon_unless_the_request_names_one() -> None:
    assert POLICY.privacy is not None
    policy = POLICY.model_copy(update={"templates": {"overlap": TemplatePolicy(epsilon=0.3)}})
    default = Fraction(str(POLICY.privacy.default_epsilon))
    assert _epsilon(QueryRequest(template="overlap"), policy) == Fraction(3, 10)
    assert _epsilon(QueryRequest(template="funnel"), policy) == default
    assert _epsilon(QueryRequest(sql="SELECT 1"), policy) == default
    asked = QueryRequest(template="overlap", epsilon=Fraction(1, 10))
    assert _epsilon(asked, policy) == Fraction(1, 10)
    with pytest.raises(QueryRejected) as over:
        _epsilon(QueryRequest(sql="x", epsilon=Fraction(1000)), policy)
    assert over.value.rule == "epsilon_over_cap"
