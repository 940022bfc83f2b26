"""Each person's language, a column on ``users`` (NULL: the room's default)."""

from __future__ import annotations

from cleanroom.i18n import Language, language_of
from cleanroom.room.state import Room


def chosen_language(room: Room, user_id: int) -> Language | None:
    """The language a person chose, or None (they read the room's default)."""
    row = (
        room.store.connection()
        .execute("SELECT language FROM users WHERE id = ?", (user_id,))
        .fetchone()
    )
    return language_of(row["language"]) if row and row["language"] else None


def choose_language(room: Room, user_id: int, language: Language) -> None:
    """Remember a person's language."""
    with room.store.transaction() as db:
        db.execute("UPDATE users SET language = ? WHERE id = ?", (language, user_id))
