from pathlib import Path

import pytest
import yaml

from cleanroom.contract.keys import generate_party_keys
from cleanroom.errors import SpecError
from cleanroom.room.identity_foreign import MAX_PARTIES
from cleanroom.room.policy import load_policy

MATCH_ID = "0123456789abcdef0123456789abcdef"


def write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc) if not isinstance(doc, str) else doc)
    return path


@pytest.fixture
def good(tmp_path: Path) -> dict:
    generate_party_keys("okala", tmp_path)
    return {
        "collaboration": "test",
        "match_key_id": MATCH_ID,
        "parties": {
            "okala": {
                "name": "Okala",
                "public_key_file": "okala.pub",
                "datasets": {
                    "orders": {
                        "identifiers": {"mobile": "phone"},
                        "columns": {"ordered_at": "timestamp", "city": "category"},
                        "time": "ordered_at",
                    }
                },
            }
        },
    }


def test_key_files_are_inlined(tmp_path: Path, good: dict) -> None:
    policy, body = load_policy(write(tmp_path, good))
    assert policy.parties["okala"].public_key.startswith("-----BEGIN PUBLIC KEY-----")
    assert "public_key_file" not in body and "BEGIN PUBLIC KEY" in body
    assert policy.contract("okala", "orders") is not None
    assert policy.contract("okala", "returns") is None


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.update(match_key_id="xyz"), "match_key_id"),
        (lambda d: d["parties"]["okala"].update(public_key="x"), "not both"),
        (
            lambda d: (
                d["parties"]["okala"].pop("public_key_file")
                and d["parties"]["okala"].update(public_key="not a key")
            ),
            "parties.okala.public_key",
        ),
        (lambda d: d["parties"]["okala"].update(public_key_file="missing.pub"), "cannot read"),
        (
            lambda d: d["parties"]["okala"]["datasets"]["orders"]["identifiers"].update(
                mobile="fax"
            ),
            "parties.okala.datasets.orders.identifiers.mobile",
        ),
        (lambda d: d["parties"]["okala"]["datasets"]["orders"].update(time="city"), "time column"),
        (lambda d: d.update(unexpected=True), "unexpected"),
        (
            lambda d: d["parties"].update({"Bad Party": d["parties"]["okala"]}),
            "party id 'Bad Party'",
        ),
    ],
)
def test_errors_name_file_path_and_problem(
    tmp_path: Path, good: dict, mutate, fragment: str
) -> None:
    mutate(good)
    path = write(tmp_path, good)
    with pytest.raises(SpecError) as err:
        load_policy(path)
    assert str(path) in str(err.value) and fragment in str(err.value)


def test_room_key_is_not_a_party_key(tmp_path: Path, good: dict) -> None:
    from cleanroom.contract.keys import generate_room_keys

    generate_room_keys(tmp_path / "room")
    good["parties"]["okala"]["public_key_file"] = "room/room.pub"
    with pytest.raises(SpecError, match="Ed25519"):
        load_policy(write(tmp_path, good))


def test_not_yaml(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not valid YAML"):
        load_policy(write(tmp_path, "parties: [unclosed"))


def test_the_example_policy_in_the_repository_validates(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[3] / "policies" / "group-journeys.example.yaml"
    copy = tmp_path / example.name
    copy.write_text(example.read_text())
    for party in ("ofogh", "okala", "filimo", "tapsi", "ozone"):
        generate_party_keys(party, tmp_path / "keys")
    policy, _ = load_policy(copy)
    assert set(policy.parties) == {"ofogh", "okala", "filimo", "tapsi", "ozone"}
    assert policy.privacy is not None and policy.privacy.mechanism == "laplace"
    roles = {
        c.role
        for p in policy.parties.values()
        for d in p.datasets.values()
        for c in d.columns.values()
    }
    assert {"dimension", "metric", "time"} <= roles


@pytest.mark.parametrize(
    ("column", "fragment"),
    [
        ({"type": "integer", "domain": ["a", "b"]}, "of the column's type"),
        ({"type": "category", "domain": ["a", 3]}, "of the column's type"),
        ({"type": "category", "domain": ["a", "a"]}, "repeat"),
        ({"type": "number", "domain": [1]}, "cannot have a domain"),
        ({"type": "category", "bounds": [0, 1]}, "cannot have bounds"),
        ({"type": "number", "bounds": [5, 1]}, "lower < upper"),
    ],
)
def test_column_roles_are_checked(tmp_path: Path, good: dict, column: dict, fragment: str) -> None:
    good["parties"]["okala"]["datasets"]["orders"]["columns"]["x"] = column
    with pytest.raises(SpecError, match=fragment):
        load_policy(write(tmp_path, good))


def test_person_is_reserved(tmp_path: Path, good: dict) -> None:
    good["parties"]["okala"]["datasets"]["orders"]["columns"]["person"] = "category"
    with pytest.raises(SpecError, match="room's own column"):
        load_policy(write(tmp_path, good))


@pytest.mark.parametrize("epsilon", [1e-30, 5e-324, 1e-7])
def test_a_policy_epsilon_under_the_query_floor_is_refused(
    tmp_path: Path, good: dict, epsilon: float
) -> None:
    """The audit's 1e-30 and 5e-324 cannot come in through a policy's defaults either."""
    good["privacy"] = {
        "budget": {"epsilon": 1.0, "period": "month", "shares": {"okala": 1.0}},
        "max_epsilon_per_query": 1.0,
        "default_epsilon": epsilon,
    }
    with pytest.raises(SpecError) as refused:
        load_policy(write(tmp_path, good))
    assert "default_epsilon" in str(refused.value)
    good["privacy"]["default_epsilon"] = 0.5
    load_policy(write(tmp_path, good))  # the same policy with a usable default loads


def test_more_parties_than_the_foreign_bound_tells_apart_are_refused(
    tmp_path: Path, good: dict
) -> None:
    """Identity resolution gives each party one bit; the policy says so before any match."""
    party = good["parties"]["okala"]
    good["parties"] = {f"brand{i}": dict(party) for i in range(MAX_PARTIES)}
    load_policy(write(tmp_path, good))  # exactly the limit loads
    good["parties"]["brand_extra"] = dict(party)
    with pytest.raises(SpecError) as refused:
        load_policy(write(tmp_path, good))
    assert f"at most {MAX_PARTIES} parties" in str(refused.value)
