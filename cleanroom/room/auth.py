"""Who may call the room: users, their bearer tokens and their roles.

A user is a name, one role and (for roles that act for a company) the party it
acts for. Roles follow the people in the design: party data engineers
(``party_admin``) upload their party's data, partner analysts (``analyst``)
query, compliance (``reviewer``) owns policies and reads the trail, operators
(``room_admin``) run the room, and scheduled reports run as ``reporter``.

The room stores only SHA-256 of each token. Tokens are 32 random bytes, so
there is nothing to brute-force and a slow password hash would only slow down
every request; a fast hash still means a copy of the database cannot be used
to log in.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import sqlite3
from dataclasses import dataclass
from enum import StrEnum

from cleanroom.contract.spec import NAME as PARTY_NAME
from cleanroom.errors import T_, AuthError, ConflictError, ForbiddenError, NotFoundError, UserError
from cleanroom.room.audit import AuditLog
from cleanroom.room.store import MetaStore, now
from cleanroom.sql import quote_column
from cleanroom.wording import a

TOKEN_PREFIX = "cr_"  # noqa: S105 - a prefix that makes leaked tokens greppable, not a secret
TOKEN_BYTES = 32
# "cr_" + unpadded base64url of 32 bytes: 43 characters from the URL-safe alphabet.
TOKEN = re.compile(r"^cr_[A-Za-z0-9_-]{43}$")
USER_NAME = re.compile(r"^[a-z0-9_.@-]{1,64}$")


class Role(StrEnum):
    """What a user may do; each API route names the roles it admits."""

    party_admin = "party_admin"
    analyst = "analyst"
    reviewer = "reviewer"
    room_admin = "room_admin"
    reporter = "reporter"


# Roles that act for one company must say which; roles that act for the whole
# group must not, or a reviewer could be mistaken for a party's insider.
PARTY_REQUIRED = frozenset({Role.party_admin, Role.analyst})
PARTY_FORBIDDEN = frozenset({Role.room_admin, Role.reviewer})


@dataclass(frozen=True)
class User:
    """A user as stored; it never carries the token, so it can be logged and shown."""

    id: int
    name: str
    role: Role
    party: str | None
    created_at: str
    revoked_at: str | None


class Users:
    """The user table, with every change audited in the same transaction."""

    def __init__(self, store: MetaStore, audit: AuditLog) -> None:
        self._store = store
        self._audit = audit

    def add(
        self, name: str, role: Role | str, party: str | None = None, *, actor: str = "cli"
    ) -> tuple[User, str]:
        """Create a user and return its bearer token, the only time it exists in clear."""
        role = _role(role)
        if not isinstance(name, str) or not USER_NAME.fullmatch(name):
            raise UserError(
                T_(
                    "user names are 1-64 characters of lower-case letters, digits, '_', '.', "
                    "'-', '@'"
                )
            )
        if role in PARTY_REQUIRED and party is None:
            raise UserError(T_("a %(role)s acts for one party: give --party", role=role))
        if role in PARTY_FORBIDDEN and party is not None:
            raise UserError(
                T_("a %(role)s acts for the whole group and cannot belong to a party", role=role)
            )
        if party is not None and not PARTY_NAME.fullmatch(party):
            raise UserError(
                T_("party ids are lower-case letters, digits and '_', starting with a letter")
            )
        token = TOKEN_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(TOKEN_BYTES)).decode(
            "ascii"
        ).rstrip("=")
        created = now()
        with self._store.transaction() as db:
            if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise ConflictError(T_("user '%(name)s' already exists", name=name))
            cursor = db.execute(
                "INSERT INTO users (name, role, party, token_hash, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, role.value, party, _token_hash(token), created),
            )
            self._audit.append(
                db,
                actor=actor,
                action="user.add",
                target=name,
                details={"role": role.value, "party": party},
            )
            user_id = cursor.lastrowid
        assert user_id is not None
        return User(user_id, name, role, party, created, None), token

    def list(self) -> list[User]:
        """Every user, revoked ones included, so an operator sees who once had access."""
        rows = (
            self._store.connection()
            .execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY id")  # noqa: S608
            .fetchall()
        )
        return [_user(row) for row in rows]

    def get(self, name: str) -> User:
        """One user by name, revoked or not."""
        row = (
            self._store.connection()
            .execute(f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?", (name,))  # noqa: S608
            .fetchone()
        )
        if row is None:
            raise NotFoundError(T_("no user named '%(name)s'", name=name))
        return _user(row)

    def by_id(self, user_id: int) -> User | None:
        """One user by row id (what a web session stores), revoked or not."""
        row = (
            self._store.connection()
            .execute(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", (user_id,))  # noqa: S608
            .fetchone()
        )
        return None if row is None else _user(row)

    def language(self, user_id: int) -> str | None:
        """The language code a person chose for the web UI (None: the room's default)."""
        row = (
            self._store.connection()
            .execute("SELECT language FROM users WHERE id = ?", (user_id,))
            .fetchone()
        )
        return str(row["language"]) if row and row["language"] else None

    def set_language(self, user_id: int, language: str) -> None:
        """Remember a person's language (not audited: a preference, not an access change)."""
        with self._store.transaction() as db:
            db.execute("UPDATE users SET language = ? WHERE id = ?", (language, user_id))

    def revoke(self, name: str, *, actor: str = "cli") -> User:
        """End a user's access for good; the row stays so the trail's names still resolve."""
        with self._store.transaction() as db:
            row = db.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?",  # noqa: S608
                (name,),
            ).fetchone()
            if row is None:
                raise NotFoundError(T_("no user named '%(name)s'", name=name))
            if row["revoked_at"] is not None:
                raise ConflictError(
                    T_(
                        "user '%(name)s' was already revoked at %(row)s",
                        name=name,
                        row=row["revoked_at"],
                    )
                )
            revoked = now()
            db.execute("UPDATE users SET revoked_at = ? WHERE id = ?", (revoked, row["id"]))
            self._audit.append(
                db,
                actor=actor,
                action="user.revoke",
                target=name,
                details={"role": row["role"], "party": row["party"]},
            )
        return _user(row, revoked_at=revoked)

    def authenticate(self, token: str | None) -> User:
        """The live user a bearer token belongs to.

        Every failure past "no token" gets the same message, so a caller cannot
        tell a malformed token from a revoked one. Recording the attempt is the
        HTTP layer's job: it knows the client address and can rate-limit, and
        recording here would let anyone fill the trail with failed guesses.
        """
        if token is None or not token.strip():
            raise AuthError(T_("missing bearer token"))
        token = token.strip()
        if not TOKEN.fullmatch(token):
            raise AuthError(T_("unknown or revoked token"))
        row = (
            self._store.connection()
            .execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE token_hash = ?",  # noqa: S608
                (_token_hash(token),),
            )
            .fetchone()
        )
        if row is None or row["revoked_at"] is not None:
            raise AuthError(T_("unknown or revoked token"))
        return _user(row)


def require(user: User, *roles: Role, party: str | None = None) -> None:
    """Refuse unless the user has one of ``roles`` and, for ``party``, may act for it.

    Users bound to a party act only for that party; group-wide users (room
    admins, reviewers, unbound reporters) pass the party check, so routes
    about one party's data must also name the roles they admit.
    """
    if not roles:
        raise ValueError("require() needs at least one role")
    if user.revoked_at is not None:
        raise AuthError(T_("unknown or revoked token"))
    if user.role not in roles:
        needed = " or ".join(str(r) for r in roles)
        raise ForbiddenError(
            T_(
                "this needs the role %(needed)s; '%(user)s' is %(a)s",
                needed=needed,
                user=user.name,
                a=a(user.role),
            )
        )
    if party is not None and user.party is not None and user.party != party:
        raise ForbiddenError(
            T_(
                "'%(user)s' acts for party '%(party)s' and may not act for '%(party2)s'",
                user=user.name,
                party=user.party,
                party2=party,
            )
        )


_USER_COLUMNS = ", ".join(
    map(quote_column, ("id", "name", "role", "party", "created_at", "revoked_at"))
)


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise UserError(
            T_("unknown role '%(role)s' (known roles: %(known)s)", role=role, known=known)
        ) from None


def _user(row: sqlite3.Row, *, revoked_at: str | None = None) -> User:
    return User(
        id=int(row["id"]),
        name=row["name"],
        role=Role(row["role"]),
        party=row["party"],
        created_at=row["created_at"],
        revoked_at=revoked_at if revoked_at is not None else row["revoked_at"],
    )
