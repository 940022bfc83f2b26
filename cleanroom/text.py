"""Text rules both sides of the trust boundary share: one spelling per category value.

A party normalizes its category columns with :func:`normalize_category`
before sealing; the room applies the very same function to policy domains,
SQL query literals and template parameters. So ``'شيراز'`` (Arabic yeh) and
``'شیراز'`` (Persian yeh) name one city everywhere, and a value is compared
with the data in the form the data was stored in. The rules, in order
(README, "Category values"; each is property-tested):

1. **Presentation forms** (U+FB50–U+FDFF, U+FE70–U+FEFF: what PDF exports and
   old software leave behind) become their base letters (NFKC, these blocks
   only; NFKC everywhere would also rewrite ligatures and fullwidth Latin).
2. **NFC**, so a letter typed as base + combining mark equals its precomposed
   form (``ي`` + hamza above is ``ئ``).
3. **Letters**: Arabic yeh ``ي`` and alef maksura ``ى`` → Persian yeh ``ی``;
   Arabic kaf ``ك`` → Persian kaf ``ک``; teh marbuta ``ة``, heh with yeh
   above ``ۀ``, ae ``ە``, heh goal ``ہ`` and heh doachashmee ``ھ`` → heh
   ``ه`` (in Persian these are spelling variants of one letter). ``ی`` +
   hamza above becomes ``ئ``, as ``ي`` + hamza above does by NFC.
   Alef forms (``آ أ إ``) and ``ئ ؤ`` are letters of their own and are kept.
4. **Digits**: Persian and Arabic-Indic digits → ASCII (as for identifiers).
5. **Marks**: tatweel ``ـ`` and the Arabic vowel marks (harakat U+064B–U+065F,
   superscript alef U+0670) are removed; Persian text omits them, and a
   data-entry tool that adds them does not make another city.
6. **Spaces**: ZWNJ (U+200C, the Persian half-space), every Unicode space and
   white-space control count as a space; runs of spaces become one ASCII
   space; leading and trailing spaces go. ``خرم‌آباد`` (half-space) and
   ``خرم آباد`` are one value.
7. **Invisible characters**: other format characters (zero-width joiner and
   space, bidi marks and controls, the byte-order mark, the soft hyphen) and
   other control characters are removed.

Latin case is kept: codes such as ``A`` and ``a`` may be different on
purpose. A value that had visible content and would come out empty (only
tatweel or vowel marks) is refused with :class:`EmptiedValue`, never
turned silently into "no value"; a blank value (only spaces and invisible
characters) normalizes to ``""``, which callers treat as missing.
"""

from __future__ import annotations

import re
import unicodedata

import pyarrow as pa
import pyarrow.compute as pc

PERSIAN_DIGITS = "۰۱۲۳۴۵۶۷۸۹"
ARABIC_DIGITS = "٠١٢٣٤٥٦٧٨٩"
DIGIT_FOLD = str.maketrans(PERSIAN_DIGITS + ARABIC_DIGITS, "0123456789" * 2)

ZWNJ = "\u200c"
_LETTERS = str.maketrans(
    {
        "\u064a": "\u06cc",  # ي Arabic yeh -> ی
        "\u0649": "\u06cc",  # ى alef maksura -> ی
        "\u0643": "\u06a9",  # ك Arabic kaf -> ک
        "\u0629": "\u0647",  # ة teh marbuta -> ه
        "\u06c0": "\u0647",  # ۀ heh with yeh above -> ه
        "\u06d5": "\u0647",  # ە ae -> ه
        "\u06c1": "\u0647",  # ہ heh goal -> ه
        "\u06be": "\u0647",  # ھ heh doachashmee -> ه
    }
)
_MARKS = re.compile("[\u0640\u064b-\u065f\u0670]")
_PRESENTATION = re.compile("[\ufb50-\ufdff\ufe70-\ufeff]")
_SPACES = re.compile(r"\s+")
MAX_CATEGORY_CHARS = 500


class EmptiedValue(ValueError):
    """A value with visible content that normalization would have turned into nothing."""


def fold_digits(text: str) -> str:
    """Persian and Arabic-Indic digits to ASCII."""
    return text.translate(DIGIT_FOLD)


def _is_space(ch: str) -> bool:
    return ch == ZWNJ or ch.isspace() or unicodedata.category(ch) == "Zs"


def _invisible(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cf") and not _is_space(ch)


def normalize_category(value: str) -> str:
    """``value`` in its one normalized spelling (the module's rules); ``""`` if blank.

    Raises :class:`EmptiedValue` when a value with visible content would
    come out empty.
    """
    if value.isascii() and value.isprintable() and value == value.strip() and "  " not in value:
        return value  # the common case, and already normal
    text = _PRESENTATION.sub(lambda m: unicodedata.normalize("NFKC", m.group()), value)
    text = unicodedata.normalize("NFC", text).translate(_LETTERS)
    # ی + hamza above is ئ (as ي + hamza above is by NFC); after ه it is the ezafe of ۀ.
    text = text.replace("\u06cc\u0654", "\u0626").replace("\u0647\u0654", "\u0647")
    text = _MARKS.sub("", fold_digits(text))
    text = "".join(" " if _is_space(ch) else ch for ch in text if not _invisible(ch))
    text = unicodedata.normalize("NFC", _SPACES.sub(" ", text).strip())
    if not text and any(not (_is_space(ch) or _invisible(ch)) for ch in value):
        raise EmptiedValue(f"{quoted(value)} has only marks (tatweel, vowel signs) and no letters")
    return text


def normalize_categories(values: pa.Array) -> tuple[pa.Array, pa.BooleanArray]:
    """A column through :func:`normalize_category`: (normalized, rows whose value was emptied).

    Category columns have few distinct values, so each distinct value is
    normalized once in Python and the column is rebuilt from the result.
    Blank values become null; emptied values become null and are flagged.
    """
    values = values.cast(pa.string())
    distinct = pc.unique(values).drop_null()
    out: list[str | None] = []
    emptied: list[bool] = []
    for item in distinct.to_pylist():
        try:
            norm = normalize_category(item)
        except EmptiedValue:
            out.append(None)
            emptied.append(True)
            continue
        out.append(norm or None)
        emptied.append(False)
    index = pc.index_in(values, value_set=distinct)
    normalized = pc.take(pa.array(out, pa.string()), index)
    flagged = pc.fill_null(pc.take(pa.array(emptied, pa.bool_()), index), False)
    return normalized, flagged


# --- quoting user values in messages -------------------------------------------------------

FSI, PDI = "\u2068", "\u2069"  # first-strong isolate ... pop directional isolate
_JOINERS = "\u200c\u200d"  # ZWNJ and ZWJ are part of Persian spelling, shown as they are


def isolate(text: str) -> str:
    """``text`` bidi-isolated, so Persian inside an English sentence (or back) renders right."""
    return FSI + text + PDI


def visible(text: str) -> str:
    """``text`` with control and format characters (but ZWNJ/ZWJ) shown as ``<U+XXXX>``."""
    return "".join(
        f"<U+{ord(ch):04X}>"
        if unicodedata.category(ch) in ("Cc", "Cf") and ch not in _JOINERS
        else ch
        for ch in text
    )


def quoted(value: str) -> str:
    """A user value as a message quotes it: whole, invisible characters shown, isolated."""
    return "'" + isolate(visible(value)) + "'"
