from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from cleanroom.errors import (
    AuthError,
    CleanroomError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UserError,
)
from cleanroom.room.audit import AuditLog
from cleanroom.room.auth import TOKEN, Role, User, Users, require
from cleanroom.room.store import MetaStore


@pytest.fixture
def users(store: MetaStore, audit: AuditLog) -> Users:
    return Users(store, audit)


def make_user(role: Role, party: str | None = None, *, name: str = "someone") -> User:
    return User(id=1, name=name, role=role, party=party, created_at="2025-01-01", revoked_at=None)


def audit_text(store: MetaStore) -> str:
    rows = store.connection().execute("SELECT * FROM audit").fetchall()
    heads = store.connection().execute("SELECT * FROM audit_head").fetchall()
    return "\n".join(repr(tuple(r)) for r in [*rows, *heads])


# -- adding and authenticating --------------------------------------------------------


def test_add_returns_a_token_that_authenticates(users: Users) -> None:
    user, token = users.add("ana@okala", Role.analyst, "okala")
    assert TOKEN.match(token)
    assert token.startswith("cr_")
    assert user.name == "ana@okala"
    assert user.role is Role.analyst
    assert user.party == "okala"
    assert user.revoked_at is None
    assert users.authenticate(token) == user
    assert users.authenticate(f"  {token}\n") == user


def test_tokens_are_distinct(users: Users) -> None:
    tokens = {users.add(f"u{i}", Role.reviewer)[1] for i in range(20)}
    assert len(tokens) == 20


def test_the_store_holds_only_the_sha256_of_the_token(
    store: MetaStore, users: Users, tmp_path: Path
) -> None:
    _, token = users.add("ana", Role.analyst, "okala")
    rows = store.connection().execute("SELECT * FROM users").fetchall()
    assert len(rows) == 1
    assert rows[0]["token_hash"] == hashlib.sha256(token.encode()).digest()
    for value in tuple(rows[0]):
        assert token not in str(value)
    store.connection().execute("PRAGMA wal_checkpoint(FULL)")
    for path in tmp_path.iterdir():
        assert token.encode() not in path.read_bytes(), path.name


def test_add_is_audited_without_the_token(store: MetaStore, users: Users, audit: AuditLog) -> None:
    _, token = users.add("ana", Role.analyst, "okala", actor="root")
    (entry,) = audit.entries()
    assert (entry.actor, entry.action, entry.target) == ("root", "user.add", "ana")
    assert entry.details == {"role": "analyst", "party": "okala"}
    assert token not in audit_text(store)
    assert audit.verify().ok


def test_a_revoked_token_is_refused(users: Users, audit: AuditLog) -> None:
    _, token = users.add("ana", Role.analyst, "okala")
    revoked = users.revoke("ana", actor="root")
    assert revoked.revoked_at is not None
    with pytest.raises(AuthError, match="unknown or revoked token"):
        users.authenticate(token)
    assert users.get("ana").revoked_at == revoked.revoked_at
    entry = audit.entries(action="user.revoke")[0]
    assert (entry.actor, entry.target) == ("root", "ana")
    assert audit.verify().ok


def test_revoking_twice_or_unknown(users: Users) -> None:
    users.add("ana", Role.analyst, "okala")
    users.revoke("ana")
    with pytest.raises(ConflictError):
        users.revoke("ana")
    with pytest.raises(NotFoundError):
        users.revoke("nobody")


@pytest.mark.parametrize("token", [None, "", "   "])
def test_a_missing_token_is_refused(users: Users, token: str | None) -> None:
    with pytest.raises(AuthError, match="missing bearer token"):
        users.authenticate(token)


@pytest.mark.parametrize(
    "token",
    [
        "cr_" + "A" * 43,  # well formed, never issued
        "abc",
        "cr_",
        "cr_short",
        "cr_" + "A" * 44,
        "xx_" + "A" * 43,
        "cr_" + "+" * 43,
        "cr_" + "A" * 42 + "=",
        "cr_" + "۰" * 43,
        "Bearer cr_" + "A" * 43,
    ],
)
def test_unknown_or_malformed_tokens_are_refused(users: Users, token: str) -> None:
    users.add("ana", Role.analyst, "okala")
    with pytest.raises(AuthError, match="unknown or revoked token") as err:
        users.authenticate(token)
    assert err.value.status == 401


def test_a_slightly_wrong_token_is_refused(users: Users) -> None:
    _, token = users.add("ana", Role.analyst, "okala")
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(AuthError):
        users.authenticate(flipped)
    with pytest.raises(AuthError):
        users.authenticate(token + "x")


def test_list_includes_revoked_users(users: Users) -> None:
    users.add("ana", Role.analyst, "okala")
    users.add("rev", Role.reviewer)
    users.revoke("ana")
    listed = users.list()
    assert [u.name for u in listed] == ["ana", "rev"]
    assert listed[0].revoked_at is not None
    assert listed[1].revoked_at is None


# -- validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "party", "ok"),
    [
        (Role.party_admin, "ofogh", True),
        (Role.party_admin, None, False),
        (Role.analyst, "okala", True),
        (Role.analyst, None, False),
        (Role.reviewer, None, True),
        (Role.reviewer, "ofogh", False),
        (Role.room_admin, None, True),
        (Role.room_admin, "ofogh", False),
        (Role.reporter, None, True),
        (Role.reporter, "tapsi", True),
    ],
)
def test_party_rules_per_role(
    users: Users, audit: AuditLog, role: Role, party: str | None, ok: bool
) -> None:
    if ok:
        user, _ = users.add("someone", role, party)
        assert (user.role, user.party) == (role, party)
    else:
        with pytest.raises(UserError):
            users.add("someone", role, party)
        assert users.list() == []
        assert audit.entries() == []


@pytest.mark.parametrize(
    "name", ["", "Ana", "ana smith", "a" * 65, "ana/1", "ana;drop", "آنا", "ana\n"]
)
def test_bad_names_are_refused(users: Users, name: str) -> None:
    with pytest.raises(UserError):
        users.add(name, Role.reviewer)


@pytest.mark.parametrize("name", ["a", "ana.smith@okala-ir", "svc_report-1", "a" * 64])
def test_good_names_are_accepted(users: Users, name: str) -> None:
    assert users.add(name, Role.reviewer)[0].name == name


@pytest.mark.parametrize("party", ["", "Okala", "1okala", "ok ala", "okala;"])
def test_bad_parties_are_refused(users: Users, party: str) -> None:
    with pytest.raises(UserError):
        users.add("ana", Role.analyst, party)


def test_roles_may_be_given_as_text(users: Users) -> None:
    assert users.add("ana", "analyst", "okala")[0].role is Role.analyst
    with pytest.raises(UserError, match="unknown role"):
        users.add("bob", "superuser")


def test_a_duplicate_name_conflicts(users: Users, audit: AuditLog) -> None:
    users.add("ana", Role.analyst, "okala")
    with pytest.raises(ConflictError) as err:
        users.add("ana", Role.reviewer)
    assert err.value.status == 409
    assert len(users.list()) == 1
    assert len(audit.entries()) == 1


# -- require ----------------------------------------------------------------------


@pytest.mark.parametrize(("have", "need"), list(itertools.product(Role, Role)))
def test_require_admits_exactly_the_named_role(have: Role, need: Role) -> None:
    user = make_user(have, "okala" if have in (Role.party_admin, Role.analyst) else None)
    if have == need:
        require(user, need)
    else:
        with pytest.raises(ForbiddenError, match=f"needs the role {need}") as err:
            require(user, need)
        assert err.value.status == 403


@pytest.mark.parametrize("have", list(Role))
def test_require_admits_any_of_several_roles(have: Role) -> None:
    user = make_user(have)
    allowed = (Role.reviewer, Role.room_admin)
    if have in allowed:
        require(user, *allowed)
    else:
        with pytest.raises(ForbiddenError, match="reviewer or room_admin"):
            require(user, *allowed)


def test_require_needs_a_role() -> None:
    with pytest.raises(ValueError):
        require(make_user(Role.room_admin))


@pytest.mark.parametrize(
    ("role", "own_party", "asked", "ok"),
    [
        (Role.analyst, "okala", "okala", True),
        (Role.analyst, "okala", "ofogh", False),
        (Role.party_admin, "ofogh", "ofogh", True),
        (Role.party_admin, "ofogh", "okala", False),
        (Role.reporter, "okala", "ofogh", False),
        (Role.reporter, None, "ofogh", True),
        (Role.reviewer, None, "ofogh", True),
        (Role.room_admin, None, "tapsi", True),
    ],
)
def test_require_binds_party_users_to_their_party(
    role: Role, own_party: str | None, asked: str, ok: bool
) -> None:
    user = make_user(role, own_party)
    if ok:
        require(user, role, party=asked)
    else:
        with pytest.raises(ForbiddenError, match=f"party '{own_party}'"):
            require(user, role, party=asked)


def test_an_okala_analyst_is_refused_for_ofogh(users: Users) -> None:
    _, token = users.add("ana", Role.analyst, "okala")
    user = users.authenticate(token)
    require(user, Role.analyst, party="okala")
    with pytest.raises(ForbiddenError):
        require(user, Role.analyst, party="ofogh")


def test_require_refuses_a_revoked_user(users: Users) -> None:
    users.add("ana", Role.analyst, "okala")
    revoked = users.revoke("ana")
    with pytest.raises(AuthError):
        require(revoked, Role.analyst)


# -- the token never leaks ------------------------------------------------------------


def test_the_token_never_leaks(store: MetaStore, users: Users) -> None:
    user, token = users.add("ana", Role.analyst, "okala")
    assert token not in repr(user)
    assert token not in str(user)
    messages: list[str] = []
    attempts: list[Callable[[], object]] = [
        lambda: users.add("ana", Role.analyst, "okala"),
        lambda: users.authenticate(token + "x"),
        lambda: users.authenticate("Bearer " + token),
        lambda: require(user, Role.reviewer),
        lambda: require(user, Role.analyst, party="ofogh"),
        lambda: (users.revoke("ana"), users.authenticate(token)),
        lambda: users.revoke("ana"),
        lambda: users.add(token, Role.reviewer),
        lambda: users.add("bob", Role.analyst, token),
    ]
    for attempt in attempts:
        with pytest.raises(CleanroomError) as err:
            attempt()
        messages.append(str(err.value))
        messages.append(repr(err.value))
    for message in messages:
        assert token not in message
        assert token[3:] not in message
    assert token not in audit_text(store)


# -- the users table's other readers ---------------------------------------------------


def test_a_user_is_found_by_row_id_and_keeps_a_language(users: Users) -> None:
    ana, _ = users.add("ana", Role.analyst, party="acme")
    found = users.by_id(ana.id)
    assert found is not None and (found.name, found.party) == ("ana", "acme")
    assert users.by_id(ana.id + 1000) is None
    assert users.language(ana.id) is None  # the room's default until chosen
    users.set_language(ana.id, "fa")
    assert users.language(ana.id) == "fa"
    users.revoke("ana")
    revoked = users.by_id(ana.id)
    assert revoked is not None and revoked.revoked_at is not None
