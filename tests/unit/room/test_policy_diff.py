"""The policy diff: every privacy rule, in both directions, and fail-closed on unknown fields."""

from __future__ import annotations

import copy
import types
from collections.abc import Callable, Iterator
from typing import Any, Union, get_args, get_origin

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import BaseModel

from cleanroom.errors import SpecError
from cleanroom.room.policy import parse_policy
from cleanroom.room.policy.diff import (
    Context,
    Difference,
    diff_policies,
    render_path,
    rule_for,
    summarize,
)
from cleanroom.room.policy.models import CollaborationPolicy


def pem() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


KEYS = {"okala": pem(), "tapsi": pem(), "other": pem()}


def base() -> dict[str, Any]:
    return {
        "collaboration": "test",
        "description": "two brands",
        "match_key_id": "0123456789abcdef0123456789abcdef",
        "privacy": {
            "mechanism": "laplace",
            "budget": {
                "epsilon": 10.0,
                "period": "month",
                "shares": {"okala": 2.0, "reporter": 1.0},
            },
            "max_epsilon_per_query": 1.0,
            "default_epsilon": 0.5,
            "max_rows_per_person": 10,
            "max_groups_per_person": 5,
            "min_noisy_persons": 10,
        },
        "templates": {"overlap": {"enabled": True, "epsilon": 0.5}},
        "governance": {"approvals_required": 2},
        "parties": {
            "okala": {
                "name": "Okala",
                "public_key": KEYS["okala"],
                "datasets": {
                    "orders": {
                        "identifiers": {"mobile": "phone"},
                        "columns": {
                            "ordered_at": "timestamp",
                            "city": {"type": "category", "domain": ["Tehran", "Qom"]},
                            "note": "category",
                            "amount": {"type": "number", "bounds": [0, 1000]},
                            "weight": "number",
                        },
                        "time": "ordered_at",
                    }
                },
                "analysts": {
                    "tables": ["okala.orders"],
                    "columns": {"okala.orders": ["city", "amount"]},
                    "free_sql": False,
                    "templates": ["overlap"],
                    "join_required": True,
                },
            },
            "tapsi": {
                "name": "Tapsi",
                "public_key": KEYS["tapsi"],
                "datasets": {"rides": {"identifiers": {"mobile": "phone"}}},
            },
        },
    }


def policy(doc: dict[str, Any]) -> CollaborationPolicy:
    return parse_policy(doc, "test")


def changed(mutate: Callable[[dict[str, Any]], object]) -> list[Any]:
    doc = base()
    mutate(doc)
    return diff_policies(policy(base()), policy(doc))


P = "parties.okala"
ORDERS = f"{P}.datasets.orders"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node = doc
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            del node[last]
        else:
            node[last] = value

    return mutate


DELETE = object()
REPORT = {
    "title": "Monthly overlap",
    "sections": [{"template": "overlap", "epsilon": 0.5}],
    "schedule": "0 6 1 * *",
    "recipients": ["okala"],
}
PRIV = "privacy"
BUDGET = "privacy/budget"
COLS = "parties/okala/datasets/orders/columns"
ACCESS = "parties/okala/analysts"

# (mutation, the changed path, its kind, its direction)
RULES: list[tuple[str, Callable[[dict[str, Any]], object], str, str, str]] = [
    ("epsilon up", _set(f"{BUDGET}/epsilon", 12.0), "privacy.budget.epsilon", "changed", "loosens"),
    (
        "epsilon down",
        _set(f"{BUDGET}/epsilon", 8.0),
        "privacy.budget.epsilon",
        "changed",
        "tightens",
    ),
    (
        "share up",
        _set(f"{BUDGET}/shares/okala", 3.0),
        "privacy.budget.shares.okala",
        "changed",
        "loosens",
    ),
    (
        "share down",
        _set(f"{BUDGET}/shares/okala", 1.0),
        "privacy.budget.shares.okala",
        "changed",
        "tightens",
    ),
    (
        "share added",
        _set(f"{BUDGET}/shares/tapsi", 1.0),
        "privacy.budget.shares.tapsi",
        "added",
        "loosens",
    ),
    (
        "share removed",
        _set(f"{BUDGET}/shares/reporter", DELETE),
        "privacy.budget.shares.reporter",
        "removed",
        "tightens",
    ),
    (
        "period shorter",
        _set(f"{BUDGET}/period", "week"),
        "privacy.budget.period",
        "changed",
        "loosens",
    ),
    (
        "period longer",
        _set(f"{BUDGET}/period", "year"),
        "privacy.budget.period",
        "changed",
        "tightens",
    ),
    (
        "cap per query up",
        _set(f"{PRIV}/max_epsilon_per_query", 2.0),
        "privacy.max_epsilon_per_query",
        "changed",
        "loosens",
    ),
    (
        "cap per query down",
        _set(f"{PRIV}/max_epsilon_per_query", 0.5),
        "privacy.max_epsilon_per_query",
        "changed",
        "tightens",
    ),
    (
        "default epsilon up",
        _set(f"{PRIV}/default_epsilon", 0.8),
        "privacy.default_epsilon",
        "changed",
        "loosens",
    ),
    (
        "default epsilon down",
        _set(f"{PRIV}/default_epsilon", 0.1),
        "privacy.default_epsilon",
        "changed",
        "tightens",
    ),
    (
        "rows up",
        _set(f"{PRIV}/max_rows_per_person", 20),
        "privacy.max_rows_per_person",
        "changed",
        "loosens",
    ),
    (
        "rows down",
        _set(f"{PRIV}/max_rows_per_person", 5),
        "privacy.max_rows_per_person",
        "changed",
        "tightens",
    ),
    (
        "groups up",
        _set(f"{PRIV}/max_groups_per_person", 8),
        "privacy.max_groups_per_person",
        "changed",
        "loosens",
    ),
    (
        "groups down",
        _set(f"{PRIV}/max_groups_per_person", 1),
        "privacy.max_groups_per_person",
        "changed",
        "tightens",
    ),
    (
        "min group down",
        _set(f"{PRIV}/min_noisy_persons", 2),
        "privacy.min_noisy_persons",
        "changed",
        "loosens",
    ),
    (
        "min group up",
        _set(f"{PRIV}/min_noisy_persons", 50),
        "privacy.min_noisy_persons",
        "changed",
        "tightens",
    ),
    ("privacy removed", _set(PRIV, DELETE), "privacy", "removed", "tightens"),
    (
        "bounds wider",
        _set(f"{COLS}/amount/bounds", [0, 5000]),
        f"{ORDERS}.columns.amount.bounds",
        "changed",
        "loosens",
    ),
    (
        "bounds lower end wider",
        _set(f"{COLS}/amount/bounds", [-10, 500]),
        f"{ORDERS}.columns.amount.bounds",
        "changed",
        "loosens",
    ),
    (
        "bounds narrower",
        _set(f"{COLS}/amount/bounds", [10, 500]),
        f"{ORDERS}.columns.amount.bounds",
        "changed",
        "tightens",
    ),
    (
        "bounds added",
        _set(f"{COLS}/weight", {"type": "number", "bounds": [0, 9]}),
        f"{ORDERS}.columns.weight.bounds",
        "added",
        "loosens",
    ),
    (
        "bounds removed",
        _set(f"{COLS}/amount", "number"),
        f"{ORDERS}.columns.amount.bounds",
        "removed",
        "tightens",
    ),
    (
        "domain value added",
        _set(f"{COLS}/city/domain", ["Tehran", "Qom", "Rasht"]),
        f"{ORDERS}.columns.city.domain",
        "added",
        "loosens",
    ),
    (
        "domain value removed",
        _set(f"{COLS}/city/domain", ["Tehran"]),
        f"{ORDERS}.columns.city.domain",
        "removed",
        "tightens",
    ),
    (
        "domain added",
        _set(f"{COLS}/note", {"type": "category", "domain": ["a"]}),
        f"{ORDERS}.columns.note.domain",
        "added",
        "loosens",
    ),
    (
        "domain removed",
        _set(f"{COLS}/city", "category"),
        f"{ORDERS}.columns.city.domain",
        "removed",
        "tightens",
    ),
    (
        "column added",
        _set(f"{COLS}/channel", "category"),
        f"{ORDERS}.columns.channel",
        "added",
        "loosens",
    ),
    (
        "column removed",
        _set(f"{COLS}/note", DELETE),
        f"{ORDERS}.columns.note",
        "removed",
        "tightens",
    ),
    (
        "column type",
        _set(f"{COLS}/note", "integer"),
        f"{ORDERS}.columns.note.type",
        "changed",
        "loosens",
    ),
    (
        "identifier added",
        _set("parties/okala/datasets/orders/identifiers/mail", "email"),
        f"{ORDERS}.identifiers.mail",
        "added",
        "loosens",
    ),
    (
        "identifier retyped",
        _set("parties/okala/datasets/orders/identifiers/mobile", "card"),
        f"{ORDERS}.identifiers.mobile",
        "changed",
        "loosens",
    ),
    (
        "time removed",
        _set("parties/okala/datasets/orders/time", DELETE),
        f"{ORDERS}.time",
        "removed",
        "tightens",
    ),
    (
        "dataset added",
        _set("parties/tapsi/datasets/foods", {"identifiers": {"m": "phone"}}),
        "parties.tapsi.datasets.foods",
        "added",
        "loosens",
    ),
    (
        "party added",
        _set(
            "parties/snapp",
            {
                "name": "S",
                "public_key": KEYS["other"],
                "datasets": {"x": {"identifiers": {"m": "phone"}}},
            },
        ),
        "parties.snapp",
        "added",
        "loosens",
    ),
    ("party removed", _set("parties/tapsi", DELETE), "parties.tapsi", "removed", "tightens"),
    (
        "public key",
        _set("parties/tapsi/public_key", KEYS["other"]),
        "parties.tapsi.public_key",
        "changed",
        "loosens",
    ),
    ("match key", _set("match_key_id", "f" * 32), "match_key_id", "changed", "loosens"),
    ("tables opened", _set(f"{ACCESS}/tables", "*"), f"{P}.analysts.tables", "changed", "loosens"),
    (
        "tables closed",
        _set("parties/tapsi/analysts", {"tables": ["tapsi.rides"]}),
        "parties.tapsi.analysts.tables",
        "changed",
        "tightens",
    ),
    (
        "table added",
        _set(f"{ACCESS}/tables", ["okala.orders", "tapsi.rides"]),
        f"{P}.analysts.tables",
        "added",
        "loosens",
    ),
    ("table removed", _set(f"{ACCESS}/tables", []), f"{P}.analysts.tables", "removed", "tightens"),
    (
        "allowed column added",
        _set(f"{ACCESS}/columns", {"okala.orders": ["city", "amount", "note"]}),
        f'{P}.analysts.columns["okala.orders"]',
        "added",
        "loosens",
    ),
    (
        "allowed column removed",
        _set(f"{ACCESS}/columns", {"okala.orders": ["city"]}),
        f'{P}.analysts.columns["okala.orders"]',
        "removed",
        "tightens",
    ),
    (
        "allow-list dropped",
        _set(f"{ACCESS}/columns", {}),
        f'{P}.analysts.columns["okala.orders"]',
        "removed",
        "loosens",
    ),
    (
        "allow-list added",
        _set("parties/tapsi/analysts", {"columns": {"tapsi.rides": []}}),
        'parties.tapsi.analysts.columns["tapsi.rides"]',
        "added",
        "tightens",
    ),
    (
        "free sql on",
        _set(f"{ACCESS}/free_sql", True),
        f"{P}.analysts.free_sql",
        "changed",
        "loosens",
    ),
    (
        "free sql off",
        _set("parties/tapsi/analysts", {"free_sql": False}),
        "parties.tapsi.analysts.free_sql",
        "changed",
        "tightens",
    ),
    (
        "join optional",
        _set(f"{ACCESS}/join_required", False),
        f"{P}.analysts.join_required",
        "changed",
        "loosens",
    ),
    (
        "party templates opened",
        _set(f"{ACCESS}/templates", "*"),
        f"{P}.analysts.templates",
        "changed",
        "loosens",
    ),
    (
        "party template removed",
        _set(f"{ACCESS}/templates", []),
        f"{P}.analysts.templates",
        "removed",
        "tightens",
    ),
    (
        "template added",
        _set("templates/funnel", {"enabled": True}),
        "templates.funnel",
        "added",
        "loosens",
    ),
    (
        "template added disabled",
        _set("templates/funnel", {"enabled": False}),
        "templates.funnel",
        "added",
        "tightens",
    ),
    (
        "template removed",
        _set("templates/overlap", DELETE),
        "templates.overlap",
        "removed",
        "tightens",
    ),
    (
        "template disabled",
        _set("templates/overlap/enabled", False),
        "templates.overlap.enabled",
        "changed",
        "tightens",
    ),
    (
        "template epsilon up",
        _set("templates/overlap/epsilon", 0.9),
        "templates.overlap.epsilon",
        "changed",
        "loosens",
    ),
    (
        "template epsilon down",
        _set("templates/overlap/epsilon", 0.1),
        "templates.overlap.epsilon",
        "changed",
        "tightens",
    ),
    (
        "approvals lowered",
        _set("governance/approvals_required", 1),
        "governance.approvals_required",
        "changed",
        "loosens",
    ),
    (
        "approvals raised",
        _set("governance/approvals_required", 3),
        "governance.approvals_required",
        "changed",
        "tightens",
    ),
    (
        "activity off",
        _set("parties/okala/datasets/orders/activity", False),
        f"{ORDERS}.activity",
        "changed",
        "tightens",
    ),
    ("report added", _set("reports/monthly", REPORT), "reports.monthly", "added", "loosens"),
    (
        "report added disabled",
        _set("reports/monthly", {**REPORT, "enabled": False}),
        "reports.monthly",
        "added",
        "neutral",
    ),
    ("name", _set("parties/okala/name", "Okala Inc."), f"{P}.name", "changed", "neutral"),
    ("description", _set("description", "the two brands"), "description", "changed", "neutral"),
    ("collaboration", _set("collaboration", "renamed"), "collaboration", "changed", "neutral"),
]


@pytest.mark.parametrize(
    ("mutate", "path", "kind", "privacy"),
    [pytest.param(*rest, id=name) for name, *rest in RULES],
)
def test_each_rule(
    mutate: Callable[[dict[str, Any]], object], path: str, kind: str, privacy: str
) -> None:
    changes = changed(mutate)
    assert [(c.path, c.kind, c.privacy) for c in changes] == [(path, kind, privacy)], changes
    assert changes[0].reason  # every change says why, in words


def with_report(**changes: Any) -> dict[str, Any]:
    doc = base()
    doc["reports"] = {"monthly": {**copy.deepcopy(REPORT), **changes}}
    return doc


@pytest.mark.parametrize(
    ("after", "path", "kind", "privacy"),
    [
        ({"recipients": ["okala", "tapsi"]}, "reports.monthly.recipients", "added", "loosens"),
        ({"recipients": ["reviewers"]}, "reports.monthly.recipients", "added", "loosens"),
        ({"schedule": "0 6 * * *"}, "reports.monthly.schedule", "changed", "loosens"),
        ({"schedule": None}, "reports.monthly.schedule", "removed", "tightens"),
        ({"enabled": False}, "reports.monthly.enabled", "changed", "tightens"),
        ({"title": "Overlap"}, "reports.monthly.title", "changed", "neutral"),
        (
            {"sections": [*REPORT["sections"], {"template": "overlap", "epsilon": 0.2}]},
            "reports.monthly.sections",
            "added",
            "loosens",
        ),
    ],
)
def test_report_rules(after: dict[str, Any], path: str, kind: str, privacy: str) -> None:
    changes = diff_policies(policy(with_report()), policy(with_report(**after)))
    assert (path, kind, privacy) in [(c.path, c.kind, c.privacy) for c in changes], changes
    if privacy != "loosens":
        assert all(c.privacy != "loosens" for c in changes)


def test_a_removed_recipient_tightens() -> None:
    before = with_report(recipients=["okala", "tapsi"])
    changes = diff_policies(policy(before), policy(with_report()))
    assert [(c.path, c.kind, c.new, c.old, c.privacy) for c in changes] == [
        ("reports.monthly.recipients", "removed", None, "tapsi", "tightens")
    ]


def test_identical_policies_have_no_changes() -> None:
    assert diff_policies(policy(base()), policy(base())) == []


def test_reordered_domain_and_lists_are_no_change() -> None:
    changes = changed(
        lambda d: d["parties"]["okala"]["datasets"]["orders"]["columns"].update(
            city={"type": "category", "domain": ["Qom", "Tehran"]}
        )
    )
    assert changes == []


def test_mechanism_change_loosens_both_ways() -> None:
    def gaussian(doc: dict[str, Any]) -> None:
        doc["privacy"].update(mechanism="gaussian", delta=1e-6)

    to_gaussian = changed(gaussian)
    assert {(c.path, c.privacy) for c in to_gaussian} == {
        ("privacy.mechanism", "loosens"),
        ("privacy.delta", "loosens"),
    }
    assert "(ε, δ)" in next(c.reason for c in to_gaussian if c.path == "privacy.mechanism")
    doc = base()
    gaussian(doc)
    back = diff_policies(policy(doc), policy(base()))
    assert {(c.path, c.privacy) for c in back} == {
        ("privacy.mechanism", "loosens"),
        ("privacy.delta", "tightens"),
    }


def test_delta_up_loosens_down_tightens() -> None:
    doc = base()
    doc["privacy"].update(mechanism="gaussian", delta=1e-7)
    higher = copy.deepcopy(doc)
    higher["privacy"]["delta"] = 1e-6
    up = diff_policies(policy(doc), policy(higher))
    assert [(c.path, c.privacy) for c in up] == [("privacy.delta", "loosens")]
    down = diff_policies(policy(higher), policy(doc))
    assert [(c.path, c.privacy) for c in down] == [("privacy.delta", "tightens")]


def test_privacy_section_added_loosens() -> None:
    doc = base()
    del doc["privacy"]
    changes = diff_policies(policy(doc), policy(base()))
    assert [(c.path, c.kind, c.privacy) for c in changes] == [("privacy", "added", "loosens")]


def test_removing_a_disabled_template_loosens() -> None:
    doc = base()
    doc["templates"]["overlap"]["enabled"] = False
    changes = diff_policies(policy(doc), policy({**base(), "templates": {}}))
    assert [(c.path, c.privacy) for c in changes] == [("templates.overlap", "loosens")]


def test_template_epsilon_made_implicit_at_the_same_value_is_neutral() -> None:
    changes = changed(_set("templates/overlap/epsilon", DELETE))  # default_epsilon is 0.5 too
    assert [(c.path, c.kind, c.privacy) for c in changes] == [
        ("templates.overlap.epsilon", "removed", "neutral")
    ]


def test_changes_are_plain_json_and_summarized() -> None:
    changes = changed(
        lambda d: (d["privacy"]["budget"].update(epsilon=12.0), d.update(description="x"))
    )
    assert summarize(changes) == {"loosens": 1, "tightens": 0, "neutral": 1}
    dumped = {c.path: c.as_dict() for c in changes}
    assert dumped["privacy.budget.epsilon"]["old"] == 10.0
    assert dumped["privacy.budget.epsilon"]["new"] == 12.0
    party = changed(_set("parties/tapsi", DELETE))[0].as_dict()
    assert party["old"]["name"] == "Tapsi" and party["new"] is None


def test_unknown_paths_fail_closed() -> None:
    rule = rule_for(("privacy", "new_knob"))
    difference = Difference(("privacy", "new_knob"), "added", None, 3)
    privacy, reason = rule(difference, Context(policy(base()), policy(base())))
    assert privacy == "loosens" and "no rule" in reason


def test_render_path_quotes_keys_with_dots() -> None:
    assert render_path(("parties", "okala", "analysts", "columns", "okala.orders")) == (
        'parties.okala.analysts.columns["okala.orders"]'
    )


def _field_paths(model: type[BaseModel], prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """Every path of the model that a change can land on, with '*' for mapping keys."""
    for name, field in model.model_fields.items():
        yield from _type_paths(field.annotation, (*prefix, name))


def _type_paths(annotation: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield from _field_paths(annotation, path)  # always present: only its fields change
    elif origin is dict:
        entry = (*path, "*")
        yield entry  # a key added or removed
        value = get_args(annotation)[1]
        if isinstance(value, type) and issubclass(value, BaseModel):
            yield from _field_paths(value, entry)
    elif origin in (Union, types.UnionType) and type(None) in get_args(annotation):
        yield path  # an optional section or value set or unset
        for arg in get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                yield from _field_paths(arg, path)
    else:
        yield path


def test_every_field_of_the_policy_model_has_a_rule() -> None:
    unknown = rule_for(("no", "such", "field"))
    missing = [".".join(p) for p in _field_paths(CollaborationPolicy, ()) if rule_for(p) is unknown]
    assert missing == [], f"add a rule in cleanroom/room/policy/diff.py for {missing}"


@pytest.mark.parametrize("kind", ["phone", "email", "card"])
def test_raising_an_identifier_limit_loosens_lowering_tightens(kind: str) -> None:
    default = policy(base()).identity.max_per_person.by_type()[kind]
    higher = base()
    higher["identity"] = {"max_per_person": {kind: default + 5}}
    up = diff_policies(policy(base()), policy(higher))
    assert [(c.path, c.privacy) for c in up] == [(f"identity.max_per_person.{kind}", "loosens")]
    assert "merge more" in up[0].reason
    down = diff_policies(policy(higher), policy(base()))
    assert [(c.path, c.privacy) for c in down] == [(f"identity.max_per_person.{kind}", "tightens")]


@pytest.mark.parametrize(("field", "more"), [("fraction", 0.05), ("at_least", 100)])
def test_raising_the_foreign_merge_limit_loosens_lowering_tightens(field: str, more: float) -> None:
    higher = base()
    higher["identity"] = {"max_foreign_merges": {field: more}}
    up = diff_policies(policy(base()), policy(higher))
    assert [(c.path, c.privacy) for c in up] == [
        (f"identity.max_foreign_merges.{field}", "loosens")
    ]
    assert "another party's persons" in up[0].reason
    down = diff_policies(policy(higher), policy(base()))
    assert [(c.path, c.privacy) for c in down] == [
        (f"identity.max_foreign_merges.{field}", "tightens")
    ]


def test_foreign_merge_limits_are_validated() -> None:
    for bad in ({"fraction": 1.5}, {"fraction": -0.1}, {"at_least": -1}, {"other": 1}):
        doc = base()
        doc["identity"] = {"max_foreign_merges": bad}
        with pytest.raises(SpecError):
            policy(doc)


def test_identifier_limits_are_validated() -> None:
    for bad in (0, -1, 1_001, "many"):
        doc = base()
        doc["identity"] = {"max_per_person": {"phone": bad}}
        with pytest.raises(SpecError, match="phone"):
            policy(doc)
