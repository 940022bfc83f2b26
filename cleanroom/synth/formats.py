"""Messy renderings of identifiers: a dozen phone formats, three digit scripts, stray spaces.

That variety is what the party-side normalizer must survive. Building strings one
Python object at a time would cap the generator well below 1M cells per second, so a
phone or card cell is a byte template (constant bytes plus digit slots) filled in
with numpy for all cells of one shape at once; e-mails use Arrow's string kernels.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cleanroom.synth.sampling import Categorical

SLOT = "#"
"""In a pattern, ``#`` stands for the next digit of the identifier."""

SCRIPTS: tuple[str, ...] = ("ascii", "persian", "arabic")
# UTF-8 of U+06F0..U+06F9 is DB B0..B9, of U+0660..U+0669 is D9 A0..A9.
_LEAD_BYTE = {"persian": 0xDB, "arabic": 0xD9}
_ZERO = {"ascii": 0x30, "persian": 0xB0, "arabic": 0xA0}


@dataclass(frozen=True)
class Pattern:
    """One way of writing an identifier, with how often exporters use it."""

    text: str
    weight: float


# Every good pattern parses with phonenumbers (region IR) to the same +989XXXXXXXXX.
PHONE_PATTERNS: tuple[Pattern, ...] = (
    Pattern("0##########", 30), Pattern("0### ### ####", 10), Pattern("0###-###-####", 6),
    Pattern("(0###) ### ####", 4), Pattern("+98##########", 14),
    Pattern("+98 ### ### ####", 8), Pattern("+98-###-#######", 4),
    Pattern("0098##########", 5), Pattern("98##########", 8), Pattern("##########", 8),
    Pattern("+98 0### ### ####", 3),
)  # fmt: skip
# Broken on purpose: at most 8 digits or keypad letters in all, so that no normalizer,
# however lenient (letters as keypad digits included), can make a valid mobile of them.
BAD_PHONE_PATTERNS: tuple[Pattern, ...] = (
    Pattern("0### ###", 3), Pattern("0###ab##", 2), Pattern("+98 ### ##", 1),
    Pattern("n/a", 2), Pattern("-", 2), Pattern("?", 1), Pattern("0", 1),
)  # fmt: skip
CARD_PATTERNS: tuple[Pattern, ...] = (
    Pattern("################", 70), Pattern("#### #### #### ####", 20),
    Pattern("####-####-####-####", 10),
)  # fmt: skip
# At most 7 digits in all: unusable for a rule that wants 16 digits, and for a lenient
# one that takes any 8-19 (what ``cleanroom.party.normalize`` accepts).
BAD_CARD_PATTERNS: tuple[Pattern, ...] = (
    Pattern("#### ###", 3), Pattern("####-xx##", 2),
    Pattern("n/a", 2), Pattern("-", 2), Pattern("0", 1),
)  # fmt: skip
PHONE_SCRIPT_WEIGHTS: tuple[float, ...] = (0.80, 0.14, 0.06)
LEAD_SPACES: tuple[tuple[int, float], ...] = ((0, 0.92), (1, 0.06), (2, 0.02))
TRAIL_SPACES: tuple[tuple[int, float], ...] = ((0, 0.90), (1, 0.08), (3, 0.02))


@cache
def _compile(text: str, script: str) -> np.ndarray:
    """Pattern to a (bytes, 2) table of (slot or -1, byte base); byte = base + digit."""
    cells: list[tuple[int, int]] = []
    slot = 0
    for ch in text:
        if ch == SLOT or ch.isdigit():
            digit_slot, constant = (slot, 0) if ch == SLOT else (-1, int(ch))
            slot += ch == SLOT
            if script != "ascii":
                cells.append((-1, _LEAD_BYTE[script]))
            cells.append((digit_slot, _ZERO[script] + constant))
        else:
            cells.extend((-1, b) for b in ch.encode("utf-8"))
    return np.array(cells, dtype=np.int64).reshape(-1, 2)


def _weights(patterns: Sequence[Pattern]) -> np.ndarray:
    w = np.array([p.weight for p in patterns], dtype=np.float64)
    return np.asarray(w / w.sum())


def offsets(lengths: np.ndarray) -> np.ndarray:
    """Arrow offsets (n + 1, int64) from row byte lengths."""
    out = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def to_array(offs: np.ndarray, data: np.ndarray, valid: np.ndarray | None) -> pa.StringArray:
    """Wrap numpy buffers as an Arrow string array; ``valid`` False rows become nulls."""
    n = offs.size - 1
    if offs[-1] >= 2**31:
        raise ValueError("a chunk's identifier column exceeds 2 GiB: lower chunk_persons")
    bitmap = None
    nulls = 0
    if valid is not None and not valid.all():
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
        nulls = int(n - np.count_nonzero(valid))
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offs.astype(np.int32, copy=False)), pa.py_buffer(data), bitmap, nulls
    )


_LEAD = Categorical([p for _, p in LEAD_SPACES])
_TRAIL = Categorical([p for _, p in TRAIL_SPACES])


def spaces(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Leading and trailing space counts per cell (stray spaces from hand entry)."""
    lead = np.array([k for k, _ in LEAD_SPACES])[_LEAD.sample(rng, n)]
    trail = np.array([k for k, _ in TRAIL_SPACES])[_TRAIL.sample(rng, n)]
    return lead, trail


@dataclass(frozen=True)
class _Layout:
    """One cell shape: spaces, constant bytes and digit slots, in a fixed width."""

    row: np.ndarray
    columns: np.ndarray
    slots: np.ndarray


@dataclass(frozen=True)
class Renderer:
    """Good and broken patterns of one identifier kind, compiled for each digit script."""

    good: tuple[Pattern, ...]
    bad: tuple[Pattern, ...]
    script_weights: tuple[float, ...] = (1.0, 0.0, 0.0)

    @cached_property
    def _shapes(self) -> list[tuple[int, int, int, int]]:
        """Every (pattern, script, leading, trailing) combination, good patterns first."""
        return list(
            itertools.product(
                range(len(self.good) + len(self.bad)),
                range(len(SCRIPTS)),
                range(len(LEAD_SPACES)),
                range(len(TRAIL_SPACES)),
            )
        )

    @cached_property
    def _layouts(self) -> list[_Layout]:
        patterns = (*self.good, *self.bad)
        out = []
        for pattern, script, lead, trail in self._shapes:
            table = _compile(patterns[pattern].text, SCRIPTS[script])
            skip, tail = LEAD_SPACES[lead][0], TRAIL_SPACES[trail][0]
            row = np.full(skip + len(table) + tail, 0x20, dtype=np.uint8)
            row[skip : skip + len(table)] = table[:, 1]
            used = np.flatnonzero(table[:, 0] >= 0)
            out.append(_Layout(row, skip + used, table[used, 0]))
        return out

    @cached_property
    def _odds(self) -> tuple[Categorical, Categorical]:
        """How likely each shape is, for good and for broken cells."""
        script = np.asarray(self.script_weights)
        lead = np.array([p for _, p in LEAD_SPACES])
        trail = np.array([p for _, p in TRAIL_SPACES])
        rest = np.multiply.outer(np.multiply.outer(script, lead), trail).ravel()
        good = np.concatenate([_weights(self.good), np.zeros(len(self.bad))])
        bad = np.concatenate([np.zeros(len(self.good)), _weights(self.bad)])
        return Categorical(np.multiply.outer(good, rest).ravel()), Categorical(
            np.multiply.outer(bad, rest).ravel()
        )

    def render(
        self,
        rng: np.random.Generator,
        digits: np.ndarray,
        who: np.ndarray,
        present: np.ndarray,
        broken: np.ndarray,
    ) -> pa.StringArray:
        """One cell per row for person ``who`` (a row of ``digits``): null where absent.

        Cells sharing a shape (pattern, script, leading and trailing spaces) have one
        length and one byte layout: each shape is built as a fixed-width matrix and
        wrapped as a string array without copying, and one ``take`` puts rows in order.
        """
        n = who.size
        good, bad = self._odds
        u = rng.random(n)
        shape = good.pick(u)
        shape[broken] = bad.pick(u[broken])
        rows = np.flatnonzero(present)
        keys = shape[rows].astype(np.uint16)  # a stable sort of 16-bit keys is a radix sort
        rows = rows[np.argsort(keys, kind="stable")]
        owner = who[rows]
        bounds = offsets(np.bincount(keys, minlength=len(self._shapes)))
        parts = []
        for g in np.flatnonzero(np.diff(bounds)):
            layout = self._layouts[g]
            members = owner[bounds[g] : bounds[g + 1]]
            cells = np.empty((members.size, layout.row.size), dtype=np.uint8)
            cells[:] = layout.row
            if layout.slots.size:
                picked = digits[members][:, layout.slots]
                cells[:, layout.columns] = picked + layout.row[layout.columns]
            width = layout.row.size
            parts.append(to_array(np.arange(members.size + 1) * width, cells.reshape(-1), None))
        if not parts:
            return pa.nulls(n, pa.string())
        position = np.zeros(n, dtype=np.int64)
        position[rows] = np.arange(rows.size)
        return pa.concat_arrays(parts).take(pa.array(position, mask=~present))


PHONES = Renderer(PHONE_PATTERNS, BAD_PHONE_PATTERNS, PHONE_SCRIPT_WEIGHTS)
CARDS = Renderer(CARD_PATTERNS, BAD_CARD_PATTERNS)


EMAIL_CASES: tuple[Pattern, ...] = (
    Pattern("lower", 70), Pattern("capitalize", 12), Pattern("title", 8), Pattern("upper", 10),
)  # fmt: skip
_RECASE = (pc.ascii_lower, pc.ascii_capitalize, pc.ascii_title, pc.ascii_upper)
BAD_EMAILS: tuple[Pattern, ...] = (
    Pattern("no_at", 5), Pattern("no_domain", 2), Pattern("n/a", 1), Pattern("-", 1),
    Pattern("none", 1),
)  # fmt: skip
"""Broken e-mails: none has an ``@`` with text on both sides."""


def _break_email(code: int, values: pa.Array) -> pa.Array:
    """Addresses made unusable the ``BAD_EMAILS[code]`` way."""
    if BAD_EMAILS[code].text == "no_at":
        return pc.replace_substring(values, "@", "")
    if BAD_EMAILS[code].text == "no_domain":
        return pc.replace_substring_regex(values, "@.*$", "@")
    return pa.array([BAD_EMAILS[code].text] * len(values), pa.string())


def email_cases(canonical: pa.StringArray) -> pa.StringArray:
    """Every person's address in each case of ``EMAIL_CASES``, case-major.

    Recasing per person (not per row) and picking a row's variant with one ``take``
    is several times cheaper than recasing rows.
    """
    return pa.concat_arrays([fn(canonical) for fn in _RECASE])


def render_emails(
    rng: np.random.Generator,
    cases: pa.StringArray,
    who: np.ndarray,
    present: np.ndarray,
    broken: np.ndarray,
) -> pa.StringArray:
    """One cell per row: the address of person ``who``, in a random case, maybe spaced.

    ``cases`` comes from ``email_cases``. Broken and space-padded cells (~20%) are
    rewritten apart and put back with one ``replace_with_mask`` over the column.
    """
    n = who.size
    persons = len(cases) // len(EMAIL_CASES)
    case = Categorical(_weights(EMAIL_CASES)).sample(rng, n)
    kind = Categorical(_weights(BAD_EMAILS)).sample(rng, n)
    lead, trail = spaces(rng, n)
    out = cases.take(pa.array(case * persons + who, mask=~present))
    touched = present & (broken | (lead > 0) | (trail > 0))
    rows = np.flatnonzero(touched)
    if rows.size == 0:
        return out
    sub = out.take(pa.array(rows))
    bad = broken[rows]
    for code in range(len(BAD_EMAILS)):
        mask = bad & (kind[rows] == code)
        if mask.any():
            broken_cells = _break_email(code, sub.filter(pa.array(mask)))
            sub = pc.replace_with_mask(sub, pa.array(mask), broken_cells)
    blanks = pa.array([" " * k for k in range(4)])
    sub = pc.binary_join_element_wise(blanks.take(lead[rows]), sub, blanks.take(trail[rows]), "")
    return pc.replace_with_mask(out, pa.array(touched), sub)
