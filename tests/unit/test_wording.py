"""Messages read well: the article follows the word."""

import pytest

from cleanroom.room.auth import Role
from cleanroom.wording import a


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        (Role.analyst, "an analyst"),
        (Role.reviewer, "a reviewer"),
        (Role.room_admin, "a room_admin"),
        ("metric", "a metric"),
        ("", "a "),
    ],
)
def test_the_article_follows_the_word(word: object, expected: str) -> None:
    assert a(word) == expected
