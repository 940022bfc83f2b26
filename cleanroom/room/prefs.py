"""Each person's language, a column on ``users`` (NULL: the room's default), kept by auth.Users."""

from __future__ import annotations

from cleanroom.i18n import Language, language_of
from cleanroom.room.state import Room


def chosen_language(room: Room, user_id: int) -> Language | None:
    """The language a person chose, or None (they read the room's default)."""
    chosen = room.users.language(user_id)
    return language_of(chosen) if chosen else None


def choose_language(room: Room, user_id: int, language: Language) -> None:
    """Remember a person's language."""
    room.users.set_language(user_id, language)
