"""Web UI sessions: a random id in a cookie, its SHA-256 in the metadata store.

A person signs in once with the bearer token the API uses; the browser then
holds only a session id, so the token never sits in a cookie or in browser
storage. Sessions live in the metadata store (``web_sessions``) rather than
in a signed cookie or in process memory, because:

- signing out, and revoking the user (``cleanroom users revoke``, from any
  process), end the session at once: every request re-reads the user;
- they survive a restart of the service and are shared by every process
  serving the room;
- only the id's SHA-256 is stored (as for user tokens), so a copy of
  ``meta.sqlite`` signs no one in.

A session ends after :data:`IDLE` without a request, and after
:data:`LIFETIME` whatever happens, so a forgotten browser tab does not stay
signed in for days.

CSRF: every form carries ``HMAC-SHA256(session id, "csrf")``. Only the holder
of the cookie's secret value can compute it, it is never stored, and every
POST is refused unless it matches (compared in constant time). The cookie is
also ``SameSite=Strict``, a second, independent layer.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cleanroom import clock
from cleanroom.room.audit import AuditLog
from cleanroom.room.auth import User, Users
from cleanroom.room.store import MetaStore

IDLE = timedelta(minutes=30)
LIFETIME = timedelta(hours=12)
# A request refreshes ``seen_at`` at most this often: one write a minute, not one per page.
TOUCH_EVERY = timedelta(minutes=1)
ID_BYTES = 32


@dataclass(frozen=True)
class Session:
    """A live session: who is signed in and the token their forms must carry."""

    user: User
    csrf: str
    expires_at: str


def _stamp(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


def _hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("ascii", "replace")).digest()


def csrf_token(session_id: str) -> str:
    """The CSRF token of a session: derived from its secret id, never stored."""
    return hmac.new(session_id.encode("ascii", "replace"), b"csrf", hashlib.sha256).hexdigest()


def csrf_matches(expected: str, sent: str | None) -> bool:
    """Whether a form's token is the expected one (constant time)."""
    return sent is not None and hmac.compare_digest(expected.encode(), sent.encode())


class Sessions:
    """The ``web_sessions`` table; sign-in and sign-out are audited in the same transaction."""

    def __init__(self, store: MetaStore, audit: AuditLog, users: Users) -> None:
        self._store = store
        self._audit = audit
        self._users = users

    def start(self, user: User, *, client: str | None) -> tuple[str, Session]:
        """A new session for ``user``: its secret id (for the cookie) and the session."""
        session_id = secrets.token_urlsafe(ID_BYTES)
        at = clock.now()
        expires = _stamp(at + LIFETIME)
        with self._store.transaction() as db:
            db.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (_stamp(at),))
            db.execute(
                "INSERT INTO web_sessions (id_hash, user_id, created_at, seen_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (_hash(session_id), user.id, _stamp(at), _stamp(at), expires),
            )
            self._audit.append(
                db,
                actor=user.name,
                action="web.signin",
                target=user.name,
                details={"role": str(user.role), "party": user.party, "client": client},
            )
        return session_id, Session(user, csrf_token(session_id), expires)

    def get(self, session_id: str | None) -> Session | None:
        """The live session behind a cookie value, or None (unknown, expired, idle, revoked)."""
        if not session_id or len(session_id) > 100:
            return None
        at = clock.now()
        db = self._store.connection()
        row = db.execute(
            "SELECT user_id, seen_at, expires_at FROM web_sessions "
            "WHERE id_hash = ? AND expires_at > ?",
            (_hash(session_id), _stamp(at)),
        ).fetchone()
        if row is None or row["seen_at"] <= _stamp(at - IDLE):
            return None
        user = self._users.by_id(int(row["user_id"]))  # users are never deleted, only revoked
        if user is None or user.revoked_at is not None:
            return None
        if row["seen_at"] <= _stamp(at - TOUCH_EVERY):
            with self._store.transaction() as tx:
                tx.execute(
                    "UPDATE web_sessions SET seen_at = ? WHERE id_hash = ?",
                    (_stamp(at), _hash(session_id)),
                )
        return Session(user, csrf_token(session_id), row["expires_at"])

    def end(self, session_id: str, user: User) -> None:
        """Sign out: the session is deleted, so its cookie is worthless from now on."""
        with self._store.transaction() as db:
            db.execute("DELETE FROM web_sessions WHERE id_hash = ?", (_hash(session_id),))
            self._audit.append(db, actor=user.name, action="web.signout", target=user.name)
