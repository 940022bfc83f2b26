"""Shared by the synth tests: sizes, and a reference normalization that is slow, obviously
right and independent of the generator."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import phonenumbers

PERSONS = 3_000
CHUNK = 1_000  # several chunks, so chunk boundaries are exercised
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@cache
def phone(raw: str) -> str | None:
    """E.164 via phonenumbers (default region IR), or None when not a valid number."""
    try:
        number = phonenumbers.parse(raw, "IR")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email(raw: str) -> str | None:
    """Trimmed, lower-cased; None unless it looks like local@domain.tld."""
    value = raw.strip().lower()
    return value if EMAIL.match(value) else None


def card(raw: str) -> str | None:
    """Digits only; None unless there are exactly 16."""
    digits = re.sub(r"[^0-9]", "", raw)
    return digits if len(digits) == 16 else None


NORMALIZE = {"phone": phone, "email": email, "card": card}


def files_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }
