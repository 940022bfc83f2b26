"""Policy versions: the two-person rule, activation at the bar, stale proposals, rollback, audit."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cleanroom.errors import ConflictError, ForbiddenError, NotFoundError, SpecError, UserError
from cleanroom.room import store as store_module
from cleanroom.room.audit import AuditLog
from cleanroom.room.auth import Role, User
from cleanroom.room.policy import parse_policy
from cleanroom.room.policy.lifecycle import PolicyVersions
from cleanroom.room.policy.load import dump_policy
from cleanroom.room.store import MetaStore, now
from tests.unit.room.conftest import AUDIT_KEY

KEY = (
    Ed25519PrivateKey.generate()
    .public_key()
    .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


def document(**privacy: Any) -> dict[str, Any]:
    return {
        "collaboration": "test",
        "match_key_id": "0123456789abcdef0123456789abcdef",
        "privacy": {
            "budget": {"epsilon": 10.0, "shares": {"okala": 2.0}},
            "max_epsilon_per_query": 1.0,
            **privacy,
        },
        "parties": {
            "okala": {
                "name": "Okala",
                "public_key": KEY,
                "datasets": {"orders": {"identifiers": {"mobile": "phone"}}},
            }
        },
    }


def text(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc)


def user(name: str, role: Role = Role.reviewer, party: str | None = None) -> User:
    return User(1, name, role, party, now(), None)


ANA, BOB, CAT, DAN = (user(n) for n in ("ana", "bob", "cat", "dan"))


def seed(store: MetaStore, doc: dict[str, Any]) -> None:
    """Version 1 as `room init` writes it."""
    body = dump_policy(parse_policy(doc))
    with store.transaction() as db:
        db.execute(
            "INSERT INTO policy_versions (version, sha256, body, status, author, comment,"
            " created_at, activated_at) VALUES (1, ?, ?, 'active', 'room-init', 'v1', ?, ?)",
            (hashlib.sha256(body.encode()).hexdigest(), body, now(), now()),
        )


@pytest.fixture
def versions(store: MetaStore, audit: AuditLog) -> PolicyVersions:
    seed(store, document())
    return PolicyVersions(store, audit)


def looser() -> str:
    doc = document()
    doc["privacy"]["budget"]["shares"]["okala"] = 3.0
    return text(doc)


def test_a_proposal_is_stored_with_its_base_bar_and_changes(versions: PolicyVersions) -> None:
    proposed, changes = versions.propose(ANA, looser(), "more for okala")
    assert (proposed.version, proposed.status, proposed.author) == (2, "proposed", "ana")
    assert (proposed.base_version, proposed.approvals_required) == (1, 2)
    assert proposed.comment == "more for okala"
    assert [(c.path, c.privacy) for c in changes] == [("privacy.budget.shares.okala", "loosens")]
    assert versions.active().version == 1


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("privacy: [unclosed", "proposal: line 1"),
        ("- just\n- a list\n", "proposal: expected a mapping"),
        (text({**document(), "privacy": {"budget": {"epsilon": -1}}}), "privacy.budget.epsilon"),
        (
            text(
                {
                    **document(),
                    "parties": {"okala": {**document()["parties"]["okala"], "tables": "*"}},
                }
            ),
            "proposal: parties.okala.tables",
        ),
    ],
)
def test_invalid_proposals_name_the_path(versions: PolicyVersions, bad: str, fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment.replace("[", r"\[")):
        versions.propose(ANA, bad)
    assert [v.version for v in versions.history()] == [1]


def test_key_files_must_be_inline(versions: PolicyVersions) -> None:
    doc = document()
    party = doc["parties"]["okala"]
    del party["public_key"]
    party["public_key_file"] = "keys/okala.pub"
    with pytest.raises(SpecError, match=r"parties\.okala\.public_key_file: the room cannot read"):
        versions.propose(ANA, text(doc))


def test_aliases_cannot_expand_without_bound(versions: PolicyVersions) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(7)
    )
    with pytest.raises(SpecError, match="expands to over"):
        versions.propose(ANA, bomb)


def test_only_reviewers_propose_and_decide(versions: PolicyVersions) -> None:
    analyst = user("eve", Role.analyst, "okala")
    with pytest.raises(ForbiddenError):
        versions.propose(analyst, looser())
    versions.propose(ANA, looser())
    for act in (versions.approve, versions.reject):
        with pytest.raises(ForbiddenError):
            act(user("root", Role.room_admin), 2, "ok")


def test_proposing_the_active_text_is_refused(versions: PolicyVersions) -> None:
    with pytest.raises(UserError, match="already active"):
        versions.propose(ANA, text(document()))


def test_the_author_can_never_approve(versions: PolicyVersions) -> None:
    versions.propose(ANA, looser())
    with pytest.raises(ForbiddenError, match="two-person rule"):
        versions.approve(ANA, 2)
    assert versions.get(2).approvals == []


def test_a_reviewer_approves_once(versions: PolicyVersions) -> None:
    versions.propose(ANA, looser())
    versions.approve(BOB, 2, "fine")
    with pytest.raises(ConflictError, match="counts once"):
        versions.approve(BOB, 2)
    assert versions.get(2).approvals == ["bob"]
    assert versions.get(2).status == "proposed"


def test_activation_at_the_required_count(
    versions: PolicyVersions, store: MetaStore, audit: AuditLog
) -> None:
    versions.propose(ANA, looser())
    assert versions.approve(BOB, 2).status == "proposed"
    activated = versions.approve(CAT, 2, "agreed")
    assert activated.status == "active" and activated.activated_at is not None
    assert activated.approvals == ["bob", "cat"]
    assert [v.status for v in versions.history()] == ["superseded", "active"]
    assert versions.active().policy().privacy.budget.shares["okala"] == 3.0  # type: ignore[union-attr]
    with pytest.raises(ConflictError, match="version 2 is active"):
        versions.approve(DAN, 2)
    actions = [(e.action, e.actor, e.target) for e in audit.entries(limit=100)]
    assert actions == [
        ("policy.proposed", "ana", "policy:2"),
        ("policy.approved", "bob", "policy:2"),
        ("policy.approved", "cat", "policy:2"),
        ("policy.activated", "cat", "policy:2"),
    ]
    proposed = audit.entries(action="policy.proposed")[0].details
    assert proposed["loosening"] == ["privacy.budget.shares.okala"]
    activated_entry = audit.entries(action="policy.activated")[0].details
    assert activated_entry["previous_version"] == 1
    assert activated_entry["approvals"] == ["bob", "cat"]
    assert audit.verify().ok


def test_the_policy_in_force_is_parsed_once_per_version(versions: PolicyVersions) -> None:
    """Every operation reads the active policy through in_force: the same version is the
    same parsed object (no YAML parse per request), and an activation is seen at once."""
    first = versions.in_force()
    assert first.version == 1 and first.policy.privacy is not None
    assert versions.in_force() is first
    versions.propose(ANA, looser())
    assert versions.in_force() is first  # a proposal changes nothing in force
    versions.approve(BOB, 2)
    versions.approve(CAT, 2)
    now_in_force = versions.in_force()
    assert now_in_force.version == 2 == versions.active().version
    assert now_in_force.policy.privacy.budget.shares["okala"] == 3.0  # type: ignore[union-attr]


def test_the_bar_is_the_active_versions_not_the_proposals(versions: PolicyVersions) -> None:
    doc = document()
    doc["governance"] = {"approvals_required": 1}
    proposed, changes = versions.propose(ANA, text(doc), "one approval is enough")
    assert proposed.approvals_required == 2  # it cannot lower its own bar
    assert ("governance.approvals_required", "loosens") in [(c.path, c.privacy) for c in changes]
    assert versions.approve(BOB, 2).status == "proposed"
    assert versions.approve(CAT, 2).status == "active"
    # Once active, its bar applies to the next proposal.
    doc["description"] = "next"
    nxt, _ = versions.propose(BOB, text(doc))
    assert nxt.approvals_required == 1
    assert versions.approve(ANA, nxt.version).status == "active"


def test_a_stale_proposal_is_refused_at_activation(
    versions: PolicyVersions, audit: AuditLog
) -> None:
    versions.propose(ANA, looser())
    other = document()
    other["description"] = "made against version 1 too"
    versions.propose(BOB, text(other))
    versions.approve(BOB, 2)
    versions.approve(CAT, 2)  # version 2 is active now
    with pytest.raises(ConflictError, match="stale: re-propose against version 2"):
        versions.approve(ANA, 3)
    assert versions.get(3).status == "stale"
    assert versions.get(3).approvals == []
    assert versions.active().version == 2
    stale = audit.entries(action="policy.stale")
    assert len(stale) == 1 and stale[0].outcome == "refused"
    assert stale[0].details == {"version": 3, "base_version": 1, "active_version": 2}
    assert audit.verify().ok


def test_a_rejected_proposal_cannot_be_approved(versions: PolicyVersions, audit: AuditLog) -> None:
    versions.propose(ANA, looser())
    with pytest.raises(UserError, match="needs a comment"):
        versions.reject(BOB, 2, "  ")
    rejected = versions.reject(BOB, 2, "shares need the parties' sign-off")
    assert rejected.status == "rejected"
    assert rejected.decisions[0].comment == "shares need the parties' sign-off"
    with pytest.raises(ConflictError, match="version 2 is rejected"):
        versions.approve(CAT, 2)
    with pytest.raises(ConflictError):
        versions.reject(CAT, 2, "too")
    entry = audit.entries(action="policy.rejected")[0]
    assert entry.actor == "bob" and entry.details["comment"].startswith("shares")
    assert versions.active().version == 1


def test_an_approver_may_still_reject_and_the_author_may_withdraw(
    versions: PolicyVersions, audit: AuditLog
) -> None:
    versions.propose(ANA, looser())
    versions.approve(BOB, 2)
    assert versions.reject(BOB, 2, "found a problem").decisions[0].decision == "reject"
    versions.propose(ANA, looser())
    versions.reject(ANA, 3, "withdrawn")
    details = [e.details for e in audit.entries(action="policy.rejected")]
    assert details[0]["had_approved"] is True
    assert details[1]["withdrawn_by_author"] is True


def test_rollback_is_a_new_proposal_with_the_old_text(versions: PolicyVersions) -> None:
    versions.propose(ANA, looser())
    versions.approve(BOB, 2)
    versions.approve(CAT, 2)
    with pytest.raises(UserError, match="active version"):
        versions.rollback(ANA, 2)
    proposed, changes = versions.rollback(ANA, 1, "okala's share was not agreed")
    assert (proposed.version, proposed.status, proposed.base_version) == (3, "proposed", 2)
    assert proposed.body == versions.get(1).body
    assert [(c.path, c.privacy) for c in changes] == [("privacy.budget.shares.okala", "tightens")]
    with pytest.raises(ForbiddenError):
        versions.approve(ANA, 3)  # a rollback is reviewed like any change
    versions.approve(BOB, 3)
    assert versions.approve(DAN, 3).status == "active"
    assert versions.active().sha256 == versions.get(1).sha256
    versions.propose(ANA, looser())
    with pytest.raises(UserError, match="never active"):
        versions.rollback(ANA, 4)  # a proposal: propose its text instead


def test_history_and_compare(versions: PolicyVersions) -> None:
    versions.propose(ANA, looser(), "why")
    versions.approve(BOB, 2, "ok")
    history = [v.summary() for v in versions.history()]
    assert [h["version"] for h in history] == [1, 2]
    assert history[1]["approvals"] == ["bob"] and history[1]["approvals_required"] == 2
    assert history[1]["decisions"][0]["comment"] == "ok"
    assert "yaml" not in history[1] and "body" not in history[1]
    assert [c.path for c in versions.compare(1, 2)] == ["privacy.budget.shares.okala"]
    assert versions.compare(2, 2) == []
    with pytest.raises(NotFoundError):
        versions.compare(1, 9)


def test_comments_are_bounded_and_never_carry_tokens(versions: PolicyVersions) -> None:
    with pytest.raises(UserError, match="at most"):
        versions.propose(ANA, looser(), "x" * 1001)
    with pytest.raises(UserError, match="bearer token"):
        versions.propose(ANA, looser(), "cr_" + "A" * 43)


def test_one_active_version_is_enforced_by_the_store(versions: PolicyVersions) -> None:
    import sqlite3

    versions.propose(ANA, looser())
    with pytest.raises(sqlite3.IntegrityError), versions._store.transaction() as db:
        db.execute("UPDATE policy_versions SET status = 'active' WHERE version = 2")


@pytest.fixture
def old_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A metadata store written before the policy lifecycle (schema 2)."""
    path = tmp_path / "old.db"
    with monkeypatch.context() as m:
        m.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:2])
        old = MetaStore(path)
        seed(old, document())
        old.close()
    yield path


def test_a_room_from_before_the_lifecycle_upgrades(old_store: Path) -> None:
    store = MetaStore(old_store)
    try:
        versions = PolicyVersions(store, AuditLog(store, AUDIT_KEY))
        active = versions.active()
        assert (active.version, active.base_version, active.approvals_required) == (1, None, None)
        proposed, _ = versions.propose(ANA, looser())
        assert proposed.approvals_required == 2 and proposed.base_version == 1
    finally:
        store.close()
