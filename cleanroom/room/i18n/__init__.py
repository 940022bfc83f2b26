"""The interface's languages: gettext catalogs (Babel), compiled from their .po at import.

The catalogs live in ``locale/<lang>/LC_MESSAGES/messages.po`` beside this file
and are the only place a user-facing web or report string is translated
(``make messages`` extracts and updates them; see the README). The .po is
compiled in memory with Babel when this module is first imported, so a fresh
checkout, a wheel and ``make test`` all read exactly what is committed and a
stale compiled .mo cannot exist.

English is the source language: its catalog is empty and every msgid is shown
as written. Persian is Persian-first: right-to-left, Persian digits, Solar
Hijri dates (see :mod:`cleanroom.room.i18n.formats`).
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path
from typing import Literal, get_args

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

Language = Literal["fa", "en"]
LANGUAGES: tuple[Language, ...] = get_args(Language)
DEFAULT_LANGUAGE: Language = "en"  # a room sets `language: fa` (the group's rooms do)
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
RTL = frozenset({"fa"})


def po_path(language: Language) -> Path:
    """The committed catalog of a language."""
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def language_of(value: str | None, default: Language = DEFAULT_LANGUAGE) -> Language:
    """A supported language from a stored or sent value (anything else: the default)."""
    for language in LANGUAGES:
        if value == language:
            return language
    return default


@cache
def translations(language: Language) -> Translations:
    """The compiled catalog of a language (read and compiled once per process)."""
    with po_path(language).open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def gettext(language: Language, message: str) -> str:
    """One message in a language."""
    return translations(language).gettext(message)


def N_(message: str) -> str:
    """Mark a string for extraction where it is defined; it is translated where it is shown."""
    return message


def direction(language: Language) -> Literal["rtl", "ltr"]:
    """The text direction of a language."""
    return "rtl" if language in RTL else "ltr"
