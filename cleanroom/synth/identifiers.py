"""Each person's canonical phone, e-mail and loyalty card, derived from the person index alone.

Deriving identifiers from the index (not from the random stream) makes them unique
by construction, identical whatever the chunk size, and re-derivable by a test that
knows a row's person: tests compare what a normalizer makes of a messy cell with
the canonical value without the truth files ever holding one.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Mobile prefixes in service in Iran (MCI 91x/990/991, Irancell 930/933/935-939/901-905).
PREFIXES: tuple[int, ...] = (
    910, 911, 912, 913, 914, 915, 916, 917, 918, 919,
    930, 933, 935, 936, 937, 938, 939,
    901, 902, 903, 904, 905, 990, 991,
)  # fmt: skip
PHONE_SPACE = len(PREFIXES) * 10**7
"""Distinct mobiles the generator can hand out: 240M, far more than 20M persons."""
# An affine map x -> a*x + b (mod m) is a bijection when gcd(a, m) = 1; m = 2^10*3*5^7.
_PHONE_MUL, _PHONE_ADD = 2_654_435_761, 104_729_113
_CARD_SPACE, _CARD_MUL, _CARD_ADD = 10**11, 98_765_432_111, 31_415_926_535
_CARD_ISSUER = (7, 2, 8, 1)  # made up: must not look like a bank card
_MAIL_SPACE, _MAIL_MUL, _MAIL_ADD = 10**8, 2_246_822_519, 3_266_489_917

MAX_PERSONS = 20_000_000

FIRST_NAMES: tuple[str, ...] = (
    "ali", "mohammad", "reza", "hossein", "mehdi", "amir", "hamid", "saeed", "majid", "javad",
    "omid", "behnam", "farhad", "kian", "arash", "babak", "pouya", "navid", "sina", "parsa",
    "fatemeh", "zahra", "maryam", "sara", "narges", "leila", "mina", "niloufar", "shirin",
    "parisa", "elham", "nazanin", "yasaman", "negar", "mahsa", "azadeh", "hoda", "setareh",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "ahmadi", "mohammadi", "hosseini", "rezaei", "moradi", "karimi", "jafari", "rahimi",
    "hashemi", "mousavi", "sadeghi", "ghasemi", "kazemi", "ebrahimi", "nazari", "heidari",
    "akbari", "safari", "rostami", "asadi", "bagheri", "tehrani", "shirazi", "esfahani",
    "najafi", "zamani", "farahani", "amini", "kamali", "soltani",
)  # fmt: skip
SEPARATORS: tuple[str, ...] = (".", "_", "")
DOMAINS: tuple[str, ...] = (
    "gmail.com", "yahoo.com", "chmail.ir", "outlook.com", "hotmail.com", "ymail.com",
)  # fmt: skip
_DOMAIN_CUMULATIVE = np.array([55, 70, 82, 92, 97, 100], dtype=np.uint64)


def _check(index: np.ndarray) -> np.ndarray:
    index = np.asarray(index, dtype=np.int64)
    if index.size and (index.min() < 0 or index.max() >= MAX_PERSONS):
        raise ValueError(f"person index out of range 0..{MAX_PERSONS - 1}")
    return index


def _mix(index: np.ndarray) -> np.ndarray:
    """splitmix64: name choices that look random but need no random stream."""
    z = index.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """Decimal digits, most significant first, as a (n, width) uint8 matrix."""
    out = np.empty((values.size, width), dtype=np.uint8)
    rest = values.astype(np.int64)
    for pos in range(width - 1, -1, -1):
        out[:, pos] = rest % 10
        rest //= 10
    return out


def national_numbers(index: np.ndarray) -> np.ndarray:
    """The 10-digit national significant number (``9XXXXXXXXX``) as int64."""
    slot = (_check(index) * _PHONE_MUL + _PHONE_ADD) % PHONE_SPACE
    prefix = np.asarray(PREFIXES, dtype=np.int64)[slot // 10**7]
    return np.asarray(prefix * 10**7 + slot % 10**7, dtype=np.int64)


def phone_digits(index: np.ndarray) -> np.ndarray:
    """National number digits, (n, 10) uint8: what the messy formats are rendered from."""
    return _digits(national_numbers(index), 10)


def e164(index: np.ndarray) -> list[str]:
    """``+989XXXXXXXXX`` per person: the form a correct normalizer must produce."""
    return [f"+98{n}" for n in national_numbers(index).tolist()]


def card_digits(index: np.ndarray) -> np.ndarray:
    """16 card digits, (n, 16) uint8: issuer prefix, a bijective serial, a Luhn check digit."""
    serial = (_check(index) * _CARD_MUL + _CARD_ADD) % _CARD_SPACE
    out = np.empty((serial.size, 16), dtype=np.uint8)
    out[:, :4] = _CARD_ISSUER
    out[:, 4:15] = _digits(serial, 11)
    payload = out[:, :15].astype(np.int64)
    doubled = payload[:, 0:15:2] * 2  # every second digit from the right of the payload
    total = np.where(doubled > 9, doubled - 9, doubled).sum(axis=1) + payload[:, 1:15:2].sum(1)
    out[:, 15] = (10 - total % 10) % 10
    return out


def cards(index: np.ndarray) -> list[str]:
    """The 16 digits per person, for tests."""
    return ["".join(map(str, row)) for row in card_digits(index).tolist()]


def emails(index: np.ndarray) -> pa.StringArray:
    """Lower-case ``first<sep>last<n>@domain``; the trailing number alone makes it unique."""
    index = _check(index)
    h = _mix(index)
    first = pa.array(FIRST_NAMES).take(pa.array(h % np.uint64(len(FIRST_NAMES))))
    h2 = h >> np.uint64(16)
    last = pa.array(LAST_NAMES).take(pa.array(h2 % np.uint64(len(LAST_NAMES))))
    h3 = h >> np.uint64(32)
    sep = pa.array(SEPARATORS).take(pa.array(h3 % np.uint64(len(SEPARATORS))))
    pick = np.searchsorted(_DOMAIN_CUMULATIVE, (h >> np.uint64(40)) % np.uint64(100), "right")
    domain = pa.array(["@" + d for d in DOMAINS]).take(pa.array(pick))
    number = pc.cast(pa.array((index * _MAIL_MUL + _MAIL_ADD) % _MAIL_SPACE), pa.string())
    joined = pc.binary_join_element_wise(first, sep, last, number, domain, "")
    return joined.cast(pa.string())
