"""Identifier normalization: one spelling per identifier, so equal people get equal tokens.

Rules (each is unit-tested; DESIGN.md §4):

* **Digits.** Persian (U+06F0–U+06F9) and Arabic-Indic (U+0660–U+0669) digits
  fold to ASCII before anything else.
* **Invisible marks.** No-break space, zero-width (U+200B–U+200D), bidi marks
  (U+200E/U+200F) and the byte-order mark are removed; Persian text editors
  scatter them around numbers.
* **Phone.** The result is E.164 (``+989123456789``) for the default region IR.
  A cell may hold digits, spaces and ``+ - . ( ) /``; anything else (letters,
  "ext.") makes it invalid, because ``phonenumbers`` would otherwise read vanity
  letters as digits and invent a number. The number must be *valid* by
  ``phonenumbers``' metadata (any country, any line type).
* **E-mail.** Surrounding white space removed, ASCII lower-cased; must look like
  ``local@domain.tld`` with ASCII characters only. Provider-specific folding
  (Gmail dots, ``+tags``) is deliberately not done: it is not true of every
  provider and would merge different people.
* **Card.** Digits only after removing spaces and dashes, 8–19 of them.

``phonenumbers`` is the reference but parses ~80k numbers/s, so the hot path is
a set-based DuckDB expression that recognises Iranian mobile numbers in every
common spelling, with validity taken from ``phonenumbers``' own IR mobile
pattern. Whatever the fast path does not accept falls back to the reference, so
the result is always the reference's (the property tests prove the fast path
never disagrees with it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from cleanroom.spec import IdType
from cleanroom.text import ARABIC_DIGITS, DIGIT_FOLD, PERSIAN_DIGITS

INVISIBLE = "\u00a0\u200b\u200c\u200d\u200e\u200f\ufeff"
INVISIBLE_RE = "[" + "".join(f"\\x{{{ord(c):04x}}}" for c in INVISIBLE) + "]"


def _ir_mobile_pattern() -> str:
    """Take the pattern from phonenumbers, so fast path and reference agree on validity."""
    meta = phonenumbers.PhoneMetadata.metadata_for_region("IR")
    pattern = meta.mobile.national_number_pattern if meta and meta.mobile else None
    if not pattern:
        raise RuntimeError("phonenumbers ships no IR mobile pattern")
    return str(pattern)


_IR_MOBILE = _ir_mobile_pattern()
_PHONE_CHARS = re.compile(r"^[0-9+\-.()/\s]*$")
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_EMAIL = rf"^[a-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+$"
_EMAIL_RE = re.compile(_EMAIL)
_CARD_RE = re.compile(r"^[0-9]{8,19}$")
_WS = " \t\n\r\f\v" + INVISIBLE


def fold(raw: str) -> str:
    """Digits to ASCII, invisible marks removed."""
    return raw.translate(DIGIT_FOLD).translate({ord(c): None for c in INVISIBLE})


def phone_reference(raw: str | None) -> str | None:
    """The reference rule, via ``phonenumbers``: E.164 or None if not a valid number."""
    if raw is None:
        return None
    text = fold(raw).strip()
    if not text or not _PHONE_CHARS.match(text):
        return None
    try:
        number = phonenumbers.parse(text, "IR")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email_reference(raw: str | None) -> str | None:
    """Trimmed, ASCII lower-cased e-mail, or None if it does not look like one."""
    if raw is None:
        return None
    text = fold(raw).strip(_WS)
    if not text.isascii():
        return None
    text = text.lower()
    return text if _EMAIL_RE.match(text) else None


def card_reference(raw: str | None) -> str | None:
    """Digits of a card number, or None."""
    if raw is None:
        return None
    text = re.sub(r"[\s\-]", "", fold(raw))
    return text if _CARD_RE.match(text) else None


REFERENCE = {
    IdType.phone: phone_reference,
    IdType.email: email_reference,
    IdType.card: card_reference,
}

# --- the vectorized path -------------------------------------------------------------

# translate() is slow (~1.5M/s), so only the rare non-ASCII cells pay for it.
_FOLDED = (
    "CASE WHEN regexp_matches(raw, '[^\\x01-\\x7f]') THEN regexp_replace(translate(raw, "
    f"'{PERSIAN_DIGITS}{ARABIC_DIGITS}', '{'0123456789' * 2}'), '{INVISIBLE_RE}', '', 'g') "
    "ELSE raw END"
)
_SQL = {
    # Only accepts; anything it leaves NULL goes to phone_reference.
    IdType.phone: (
        "WITH c AS (SELECT regexp_extract(regexp_replace("
        f"{_FOLDED}, '[\\s\\-.()/]', '', 'g'), '^(?:\\+98|0098|98)?0?(9[0-9]{{9}})$', 1) AS nsn "
        "FROM t) "
        f"SELECT CASE WHEN regexp_full_match(nsn, '{_IR_MOBILE}') THEN '+98' || nsn END AS v FROM c"
    ),
    IdType.email: (
        f"WITH c AS (SELECT regexp_replace({_FOLDED}, '^\\s+|\\s+$', '', 'g') AS s FROM t) "
        f"SELECT CASE WHEN regexp_full_match(lower(s), '{_EMAIL.replace(chr(39), chr(39) * 2)}') "
        "AND s NOT SIMILAR TO '.*[^\\x00-\\x7f].*' THEN lower(s) END AS v FROM c"
    ),
    IdType.card: (
        f"WITH c AS (SELECT regexp_replace({_FOLDED}, '[\\s\\-]', '', 'g') AS s FROM t) "
        "SELECT CASE WHEN regexp_full_match(s, '[0-9]{8,19}') THEN s END AS v FROM c"
    ),
}


@dataclass(frozen=True)
class Normalized:
    """A column of normalized identifiers (NULL where unusable) and why rows were unusable."""

    values: pa.StringArray
    empty: int
    invalid: int
    fallback: int  # rows the fast path left to the reference parser (a speed figure)


def normalize(con: duckdb.DuckDBPyConnection, raw: pa.Array, id_type: IdType) -> Normalized:
    """Normalize one column of raw identifiers with the rules above."""
    raw = raw.cast(pa.string())
    t = pa.table({"raw": raw})  # noqa: F841 - read by DuckDB's replacement scan
    result = con.sql(_SQL[id_type]).to_arrow_table()
    values = result.column("v").combine_chunks()
    blank = pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim(raw, characters=_WS)), 0), True)
    fallback = 0
    if id_type is IdType.phone:
        values, fallback = _phone_fallback(raw, values, blank)
    empty = pc.sum(blank).as_py() or 0
    return Normalized(values, empty, values.null_count - empty, fallback)


def _phone_fallback(
    raw: pa.Array, fast: pa.Array, blank: pa.BooleanArray
) -> tuple[pa.StringArray, int]:
    """Send what the fast path did not accept through the reference parser."""
    todo = pc.and_(pc.is_null(fast), pc.invert(blank))
    idx = pc.indices_nonzero(todo)
    if len(idx) == 0:
        return fast, 0
    slow = pa.array([phone_reference(v) for v in pc.take(raw, idx).to_pylist()], pa.string())
    return pc.replace_with_mask(fast, todo, slow), len(idx)
