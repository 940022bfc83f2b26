"""Small helpers for messages people read: "an analyst", not "a analyst".

Kept in one place so the message catalogs (Persian and English) can take
them over with the rest of the user-facing text.
"""

from __future__ import annotations


def a(word: object) -> str:
    """``word`` with its English indefinite article, by its first letter."""
    text = str(word)
    return f"{'an' if text[:1].lower() in 'aeiou' and text else 'a'} {text}"
