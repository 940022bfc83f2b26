"""Report definitions in the policy: validated against the parties, the caps and the budget."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from cleanroom.contract.keys import generate_party_keys
from cleanroom.errors import SpecError
from cleanroom.room.analyses import prepare_template
from cleanroom.room.policy import load_policy
from cleanroom.room.policy.load import parse_policy_text

MATCH_ID = "0123456789abcdef0123456789abcdef"
EXAMPLE = Path(__file__).resolve().parents[3] / "policies" / "group-journeys.example.yaml"


@pytest.fixture
def doc(tmp_path: Path) -> dict[str, Any]:
    for party in ("okala", "ofogh"):
        generate_party_keys(party, tmp_path)
    contract = {"identifiers": {"mobile": "phone"}, "columns": {"at": "timestamp"}, "time": "at"}
    return {
        "collaboration": "test",
        "match_key_id": MATCH_ID,
        "privacy": {
            "budget": {"epsilon": 4, "shares": {"okala": 1, "ofogh": 1, "reporter": 1}},
            "max_epsilon_per_query": 0.5,
        },
        "parties": {
            p: {"name": p, "public_key_file": f"{p}.pub", "datasets": {"events": contract}}
            for p in ("okala", "ofogh")
        },
        "templates": {"overlap": {}},
        "reports": {
            "overlap-weekly": {
                "title": "Weekly overlap",
                "schedule": "0 6 * * mon",
                "recipients": ["okala", "reviewers"],
                "sections": [
                    {"template": "overlap", "epsilon": 0.1},
                    {"template": "overlap", "params": {"parties": "okala,ofogh"}, "epsilon": 0.2},
                ],
            }
        },
    }


def load(tmp_path: Path, doc: dict[str, Any]) -> Any:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_policy(path)[0]


def test_a_report_is_part_of_the_policy(tmp_path: Path, doc: dict[str, Any]) -> None:
    report = load(tmp_path, doc).reports["overlap-weekly"]
    assert report.epsilon == Fraction(3, 10)  # exact: 0.1 + 0.2, not 0.30000000000000004
    assert report.schedule == "0 6 * * mon" and report.enabled


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"schedule": "every monday"}, "not a five-field cron"),
        ({"schedule": "0 0 6 * * mon"}, "not a five-field cron"),
        ({"schedule": "61 * * * *"}, "not a five-field cron"),
        ({"recipients": ["snapp"]}, "neither parties nor 'reviewers'"),
        ({"recipients": ["okala", "okala"]}, "recipients repeat"),
        ({"recipients": []}, "recipients"),
        ({"sections": [{"template": "overlap", "epsilon": 0.6}]}, "over max_epsilon_per_query"),
        (
            {"sections": [{"template": "overlap", "epsilon": 0.5}] * 3},
            "more than the reporter's whole budget share",
        ),
        ({"sections": [{"template": "Bad Name", "epsilon": 0.1}]}, "template"),
        ({"sections": []}, "sections"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_reports_are_refused_naming_the_field(
    tmp_path: Path, doc: dict[str, Any], change: dict[str, Any], fragment: str
) -> None:
    doc["reports"]["overlap-weekly"].update(change)
    with pytest.raises(SpecError, match=fragment) as err:
        load(tmp_path, doc)
    assert "reports" in str(err.value)


def test_report_names_are_url_and_path_safe(tmp_path: Path, doc: dict[str, Any]) -> None:
    doc["reports"]["../etc"] = doc["reports"].pop("overlap-weekly")
    with pytest.raises(SpecError, match="report names"):
        load(tmp_path, doc)


def test_a_disabled_template_cannot_be_reported(tmp_path: Path, doc: dict[str, Any]) -> None:
    doc["templates"] = {"overlap": {"enabled": False}}
    with pytest.raises(SpecError, match="disables the template 'overlap'"):
        load(tmp_path, doc)


def test_reports_need_a_privacy_section(tmp_path: Path, doc: dict[str, Any]) -> None:
    del doc["privacy"]
    with pytest.raises(SpecError, match="without a privacy section"):
        load(tmp_path, doc)


def test_every_section_of_the_example_reports_passes_the_template_checks(tmp_path: Path) -> None:
    copy = tmp_path / EXAMPLE.name
    copy.write_text(EXAMPLE.read_text())
    for party in ("ofogh", "okala", "filimo", "tapsi", "ozone"):
        generate_party_keys(party, tmp_path / "keys")
    policy, _ = load_policy(copy)
    assert {"overlap-weekly", "journeys-monthly"} <= set(policy.reports)
    templates = set()
    for report in policy.reports.values():
        for section in report.sections:
            prepare_template(section.template, section.params, policy=policy, party="reporter")
            templates.add(section.template)
    assert {"overlap", "transitions", "funnel", "retention"} <= templates


def _with_city(doc: dict[str, Any], steps: str) -> dict[str, Any]:
    events = doc["parties"]["okala"]["datasets"]["events"]
    events["columns"] = {**events["columns"], "city": {"type": "category", "domain": ["شیراز"]}}
    doc["templates"]["funnel"] = {}
    doc["reports"]["overlap-weekly"]["sections"] = [
        {"template": "funnel", "params": {"steps": steps}, "epsilon": 0.1}
    ]
    return doc


def test_a_report_section_may_name_a_persian_value_in_either_letter_form(
    tmp_path: Path, doc: dict[str, Any]
) -> None:
    report = load(tmp_path, _with_city(doc, "okala.events:city=شيراز,ofogh")).reports
    assert report["overlap-weekly"].sections[0].params["steps"] == "okala.events:city=شيراز,ofogh"


@pytest.mark.parametrize(
    ("steps", "fragment"),
    [
        ("okala.events:city=اصفهان,ofogh", "has no declared value '\u2068اصفهان\u2069'"),
        ("okala,snapp", "names no brand with activity open to you: '\u2068snapp\u2069'"),
    ],
)
def test_a_report_section_its_template_would_refuse_is_refused_at_proposal(
    tmp_path: Path, doc: dict[str, Any], steps: str, fragment: str
) -> None:
    doc = _with_city(doc, steps)
    with pytest.raises(
        SpecError, match=r"reports\.overlap-weekly\.sections\.0: bad_parameter"
    ) as err:
        load(tmp_path, doc)
    assert fragment in str(err.value)
    # the same when the policy arrives as a proposal's text
    inline = {
        **doc,
        "parties": {
            p: {
                **{k: v for k, v in spec.items() if k != "public_key_file"},
                "public_key": (tmp_path / f"{p}.pub").read_text(),
            }
            for p, spec in doc["parties"].items()
        },
    }
    with pytest.raises(SpecError, match=r"sections\.0: bad_parameter"):
        parse_policy_text(yaml.safe_dump(inline, allow_unicode=True), "proposal")
