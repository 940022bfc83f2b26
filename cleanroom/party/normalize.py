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
a vectorized Polars expression (Rust, every core) that recognises Iranian mobile numbers in every
common spelling, with validity taken from ``phonenumbers``' own IR mobile
pattern. Whatever the fast path does not accept falls back to the reference, so
the result is always the reference's (the property tests prove the fast path
never disagrees with it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import phonenumbers
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from cleanroom.contract.spec import IdType
from cleanroom.text import ARABIC_DIGITS, DIGIT_FOLD, PERSIAN_DIGITS

INVISIBLE = "\u00a0\u200b\u200c\u200d\u200e\u200f\ufeff"
INVISIBLE_RE = "[" + "".join(f"\\x{{{ord(c):04x}}}" for c in INVISIBLE) + "]"


def _ir_mobile_pattern() -> str:
    """Take the pattern from phonenumbers, so fast path and reference agree on validity.

    The fast rule reads the national number as the last ten characters, so it
    also checks that an Iranian mobile number still has exactly ten digits.
    """
    meta = phonenumbers.PhoneMetadata.metadata_for_region("IR")
    mobile = meta.mobile if meta else None
    if mobile is None or not mobile.national_number_pattern:
        raise RuntimeError("phonenumbers ships no IR mobile pattern")
    if tuple(mobile.possible_length) != (_NSN_DIGITS,):
        raise RuntimeError("phonenumbers' IR mobile numbers are no longer ten digits long")
    return str(mobile.national_number_pattern)


_NSN_DIGITS = 10
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
# Polars string expressions (Rust, on every core); each mirrors a reference rule above.
# A rule is a few steps, each materialized as a column before the next reads it, so
# no step runs twice (an expression that reads a value twice would compute it twice).

_FOLD = dict.fromkeys(INVISIBLE, "") | dict(
    zip(PERSIAN_DIGITS + ARABIC_DIGITS, "0123456789" * 2, strict=True)
)
# The fast phone rule removes these separators (RE2's \s and - . ( ) /) in the same pass.
_PHONE_DROP = _FOLD | dict.fromkeys("\t\n\f\r -.()/", "")
# card_reference removes Python's \s (every str.isspace() character) and dashes.
_CARD_DROP = _FOLD | dict.fromkeys([chr(i) for i in range(0x3100) if chr(i).isspace()], "")
_CARD_DROP["-"] = ""


def _replace(raw: pl.Expr, table: dict[str, str]) -> pl.Expr:
    """Single characters replaced in one pass (Aho-Corasick), like ``str.translate``."""
    return raw.str.replace_many(list(table), list(table.values()))


def fold_expr(raw: pl.Expr) -> pl.Expr:
    """:func:`fold` as an expression."""
    return _replace(raw, _FOLD)


def blank_expr(raw: pl.Expr) -> pl.Expr:
    """True where a cell is missing or only white space and invisible marks."""
    return raw.is_null() | (raw.str.strip_chars(_WS).str.len_bytes() == 0)


Step = Callable[[pl.Expr], pl.Expr]

_STEPS: dict[IdType, list[Step]] = {
    # Only accepts Iranian mobiles; anything it leaves NULL goes to phone_reference.
    IdType.phone: [
        lambda raw: _replace(raw, _PHONE_DROP),
        # One regex without captures (the cheapest kind) decides; the national number is
        # then the last ten characters, since the mobile pattern is ten digits long.
        lambda compact: pl.when(
            compact.str.contains(rf"^(?:\+98|0098|98)?0?(?:{_IR_MOBILE})$")
        ).then(pl.lit("+98") + compact.str.slice(-_NSN_DIGITS)),
    ],
    IdType.email: [
        lambda raw: fold_expr(raw).str.strip_chars(_WS),
        # ASCII alone has one byte per character (cheaper than a regex over the text).
        lambda text: pl.when(text.str.len_bytes() == text.str.len_chars()).then(
            text.str.to_lowercase()
        ),
        lambda lower: pl.when(lower.str.contains(_EMAIL)).then(lower),
    ],
    IdType.card: [
        lambda raw: _replace(raw, _CARD_DROP),
        lambda digits: pl.when(digits.str.contains(r"^[0-9]{8,19}$")).then(digits),
    ],
}


def with_normalized(frame: pl.LazyFrame, identifiers: dict[str, IdType]) -> pl.LazyFrame:
    """Add ``<name>__value`` (the fast path's result or NULL) and ``<name>__blank`` columns.

    For phones NULL may also mean "not recognised here" (see :func:`finish`).
    """
    frame = frame.with_columns(
        blank_expr(pl.col(name)).alias(f"{name}__blank") for name in identifiers
    )
    current = {name: name for name in identifiers}
    for i in range(max(len(steps) for steps in _STEPS.values())):
        stage = {}
        for name, id_type in identifiers.items():
            steps = _STEPS[id_type]
            if i < len(steps):
                out = f"{name}__value" if i == len(steps) - 1 else f"{name}__step{i}"
                stage[out] = steps[i](pl.col(current[name]))
                current[name] = out
        frame = frame.with_columns(**stage)
    return frame


@dataclass(frozen=True)
class Normalized:
    """A column of normalized identifiers (NULL where unusable) and why rows were unusable."""

    values: pa.StringArray
    empty: int
    invalid: int
    fallback: int  # rows the fast path left to the reference parser (a speed figure)


def finish(raw: pa.Array, fast: pa.Array, blank: pa.Array, id_type: IdType) -> Normalized:
    """Counts, and the reference parser for the phones the fast path did not accept."""
    fallback = 0
    values = fast
    if id_type is IdType.phone:
        values, fallback = _phone_fallback(raw, fast, blank)
    empty = pc.sum(blank).as_py() or 0
    return Normalized(values, empty, values.null_count - empty, fallback)


def normalize(raw: pa.Array, id_type: IdType) -> Normalized:
    """Normalize one column of raw identifiers with the rules above."""
    raw = raw.cast(pa.string())
    frame = pl.LazyFrame({"raw": pl.from_arrow(raw)})
    out = with_normalized(frame, {"raw": id_type}).collect()
    fast = out.get_column("raw__value").to_arrow().cast(pa.string())
    return finish(raw, fast, out.get_column("raw__blank").to_arrow(), id_type)


def _phone_fallback(raw: pa.Array, fast: pa.Array, blank: pa.Array) -> tuple[pa.StringArray, int]:
    """Send what the fast path did not accept through the reference parser.

    Each distinct cell is parsed once (junk such as ``n/a`` repeats), and a cell
    with a Latin letter or ``?`` is refused without parsing: folding keeps those
    characters and :data:`_PHONE_CHARS` does not allow them, so the reference
    refuses it too.
    """
    todo = pc.and_(pc.is_null(fast), pc.invert(blank))
    idx = pc.indices_nonzero(todo)
    if len(idx) == 0:
        return fast, 0
    cells = pc.take(raw, idx)
    hopeless = pc.match_substring_regex(cells, "[A-Za-z?]")
    distinct = pc.unique(pc.filter(cells, pc.invert(hopeless)))
    parsed = pa.array([phone_reference(v) for v in distinct.to_pylist()], pa.string())
    slow = pc.take(parsed, pc.index_in(cells, value_set=distinct))  # not in the set: NULL
    return pc.replace_with_mask(fast, todo, slow), len(idx)
