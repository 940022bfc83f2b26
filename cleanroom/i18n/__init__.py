"""The interface's languages: gettext catalogs (Babel), compiled from their .po at import.

The catalogs live in ``locale/<lang>/LC_MESSAGES/messages.po`` beside this file
and are the only place a user-facing web or report string is translated
(``make messages`` extracts and updates them; see the README). The .po is
compiled in memory with Babel when this module is first imported, so a fresh
checkout, a wheel and ``make test`` all read exactly what is committed and a
stale compiled .mo cannot exist.

Strings are marked ``_``/``N_`` (interface text) or ``T_`` (a message the room
writes, with its values: :class:`cleanroom.errors.Text`); :func:`localize`
shows such a message in a reader's language, :func:`recognize` reads a stored
English one back into its msgid and values.

English is the source language: its catalog is empty and every msgid is shown
as written. Persian is Persian-first: right-to-left, Persian digits, Solar
Hijri dates (see :mod:`cleanroom.i18n.formats`).
"""

from __future__ import annotations

import io
import re
from functools import cache
from pathlib import Path
from typing import Literal, get_args

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from markupsafe import Markup, escape

from cleanroom.errors import CleanroomError, Text
from cleanroom.text import FSI, PDI, PERSIAN_DIGITS

Language = Literal["fa", "en"]
LANGUAGES: tuple[Language, ...] = get_args(Language)
DEFAULT_LANGUAGE: Language = "en"  # a room sets `language: fa` (the group's rooms do)
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
RTL = frozenset({"fa"})
_TO_PERSIAN = str.maketrans("0123456789", PERSIAN_DIGITS)


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


def show_value(value: object, language: Language) -> str:
    """A value inside a translated message: own digits, bidi-isolated in a right-to-left one.

    An isolated value (a :func:`cleanroom.text.quoted` one) is kept as it is;
    any other text is isolated so a column name, a file path or a Persian value
    renders in its own direction inside the sentence.
    """
    if value is None:
        return "-"
    if language == "en":
        return str(value)
    if isinstance(value, bool):
        return gettext(language, "yes" if value else "no")
    text = str(value)
    if isinstance(value, int | float):
        return text.translate(_TO_PERSIAN) if language == "fa" else text
    if language in RTL and text and FSI not in text and any(ch.isalpha() for ch in text):
        return FSI + text + PDI  # a number (digits, separators, signs) needs no isolation
    return text.translate(_TO_PERSIAN) if language == "fa" and text.isascii() else text


def localize(message: object, language: Language) -> str:
    """An error, a :class:`~cleanroom.errors.Text` or a stored message in ``language``.

    Errors raised with a Text are translated from it. A stored message (a run's
    failure, a policy change's reason, an audit problem: kept as the English
    text, which the audit trail and scripts read) is translated when it is the
    English rendering of a catalog message (:func:`recognize`); anything else
    is shown as it is — :func:`is_translated` tells the page which.
    """
    text = message.text if isinstance(message, CleanroomError) else message
    if text is None:  # an error raised with a plain message: it may still be a catalog's
        text = str(message)
    if isinstance(text, str):
        text = recognize(text) or text
    if isinstance(text, Text):
        return text.render(translations(language).gettext, lambda v: show_value(v, language))
    return str(message)


def is_translated(message: object) -> bool:
    """Whether :func:`localize` renders ``message`` in the reader's language."""
    text = message.text if isinstance(message, CleanroomError) else message
    if text is None:
        text = str(message)
    return isinstance(text, Text) or (isinstance(text, str) and recognize(text) is not None)


def message_language(message: object, language: Language) -> Language:
    """The ``lang`` of a shown message: the reader's if translated, else English."""
    return language if is_translated(message) else "en"


_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")


@cache
def _patterns() -> tuple[dict[str, str], tuple[tuple[re.Pattern[str], str], ...]]:
    """Every catalog msgid: the plain ones by text, the others as patterns (longest first)."""
    with po_path("fa").open("rb") as po:
        catalog = read_po(po, locale="fa", domain=DOMAIN)
    plain: dict[str, str] = {}
    patterns: list[tuple[int, re.Pattern[str], str]] = []
    for entry in catalog:
        msgid = entry.id
        if not isinstance(msgid, str) or not msgid:
            continue
        if "%(" not in msgid:
            plain[msgid.replace("%%", "%")] = msgid
            continue
        parts, at, names = [], 0, set()
        for found in _PLACEHOLDER.finditer(msgid):
            parts.append(re.escape(msgid[at : found.start()]))
            name = found.group(1)
            if name is None:
                parts.append("%")
            elif name in names:
                parts.append(f"(?P={name})")
            else:
                names.add(name)
                parts.append(f"(?P<{name}>.+?)")
            at = found.end()
        parts.append(re.escape(msgid[at:]))
        literal = len(_PLACEHOLDER.sub("", msgid))
        patterns.append((literal, re.compile("".join(parts), re.DOTALL), msgid))
    patterns.sort(key=lambda p: -p[0])  # the most specific sentence wins
    return plain, tuple((pattern, msgid) for _, pattern, msgid in patterns)


def recognize(text: str) -> Text | None:
    """The catalog message ``text`` is the English rendering of, with its values (or None).

    Values that are themselves catalog messages (a reason inside a file's
    error) are recognized too, so they are translated with the sentence.
    """
    plain, patterns = _patterns()
    if text in plain:
        return Text(plain[text])
    for pattern, msgid in patterns:
        found = pattern.fullmatch(text)
        if found is not None:
            values: dict[str, object] = {}
            for name, value in found.groupdict().items():
                inner = recognize(value) if len(value) > 12 else None
                values[name] = inner if inner is not None else _stored_value(value)
            return Text(msgid, values)
    return None


def _stored_value(value: str) -> object:
    """A value read back from an English message: a whole number as a number."""
    return int(value) if value.isascii() and value.isdigit() and len(value) < 16 else value


def from_accept_language(header: str | None) -> Language | None:
    """The supported language an ``Accept-Language`` header prefers most, if any.

    ``fa-IR, en;q=0.5`` gives ``fa``; weights ``q=0`` refuse a language;
    ``*`` and unsupported languages are passed over (the caller's default applies).
    """
    ranked: list[tuple[float, int, Language]] = []
    for order, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        primary = tag.strip().lower().split("-")[0]
        for language in LANGUAGES:
            if primary == language and weight > 0:
                ranked.append((-weight, order, language))
    return min(ranked)[2] if ranked else None


def localize_html(message: object, language: Language) -> Markup:
    """:func:`localize` for a page: escaped, each value in its own ``<bdi class="data">``.

    The element isolates the value's direction as the Unicode isolates do in
    plain text, and marks it as data (a column, a file, a quoted value) rather
    than interface text, so a check of the page's language reads past it.
    """
    text = message.text if isinstance(message, CleanroomError) else message
    if text is None:
        text = str(message)
    if isinstance(text, str):
        text = recognize(text) or text
    if isinstance(text, Text):
        return Markup(_html(text, language))  # noqa: S704 - every piece escaped in _html
    return escape(str(message))


def _html(text: Text, language: Language) -> str:
    template = str(escape(translations(language).gettext(text.msgid)))
    values: dict[str, str] = {}
    for name, value in text.values.items():
        if isinstance(value, Text):
            values[name] = _html(value, language)
            continue
        shown = show_value(value, language).removeprefix(FSI).removesuffix(PDI)
        if any(ch.isalpha() for ch in shown):
            values[name] = f'<bdi class="data">{escape(shown)}</bdi>'
        else:
            values[name] = str(escape(shown))
    return template % values
