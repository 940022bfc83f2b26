"""The ground truth as the clean room will be able to see it, for tests of later stages.

The room drops identifiers it cannot normalize and resolves persons as connected
components of identifiers that share a row. A person's identifiers are the same at
every brand, and every row of a brand's record carries all the record's identifiers,
so a record is one clique over its usable identifier types (a 3-bit mask: phone,
email, card) and a person's room persons are the closure of those masks. A person
whose brands share no usable identifier (ofogh by card only, tapsi by phone) is
several room persons. The truth holds no identifier, raw or normalized.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from cleanroom.synth import brands as b
from cleanroom.synth.events import DAY, EPOCH, Events
from cleanroom.synth.people import OFOGH, OZONE, PERSONAS, People

ID_BITS = (1, 2, 4)  # phone, email, card
LIFT_WINDOW_DAYS = 28
_DATASET_FIELDS = (
    "rows", "rows_unusable", "rows_bad_identifier",
    "records", "records_unusable", "records_bad_identifier",
)  # fmt: skip
_ARM_FIELDS = ("enrolled", "linked_to_ofogh", "ofogh_rows_before", "ofogh_rows_after")
NOTES = {
    "room_persons": "persons as the room resolves them: components of identifiers sharing a row",
    "combinations": "room persons per set of brands they have usable rows at",
    "overlap": "per brand pair, room persons at both; rate = both / min(|A|, |B|)",
    "true_combinations": "generator persons per set of brands they have usable rows at",
    "true_overlap": "as overlap, over generator persons (no identity splits)",
    "datasets": "rows_unusable: no identifier the room can normalize, so the room drops the"
    " row; rows_bad_identifier: at least one identifier deliberately unparseable",
    "campaign": "per arm, ofogh rows in the window_days before and from the exposure day,"
    " of enrolled persons whose ozone and ofogh records the room links",
}


def closure(usable: np.ndarray) -> np.ndarray:
    """Per record, the identifier types of the room person it lands in (0: dropped).

    Two sweeps reach every record within three links, the longest path three node
    types allow (``{phone}``-``{phone,email}``-``{email,card}``-``{card}``); the third
    is a margin.
    """
    comp = usable.copy()
    for _ in range(3):
        for p in range(comp.shape[1]):
            for q in range(comp.shape[1]):
                touch = (comp[:, p] & comp[:, q]) != 0
                comp[:, p] |= np.where(touch, comp[:, q], 0).astype(comp.dtype)
    return comp


def lowest_bit(mask: np.ndarray) -> np.ndarray:
    """The smallest identifier type in a mask: names a room person within its person."""
    return mask & (~mask + np.uint8(1))


def persons_schema() -> pa.Schema:
    """One row per room person; nothing in it identifies anyone outside the generator."""
    fields = [
        pa.field("person", pa.int64()),
        pa.field("component", pa.int64()),
        pa.field("persona", pa.dictionary(pa.int32(), pa.string())),
        pa.field("campaign_arm", pa.dictionary(pa.int32(), pa.string())),
        pa.field("exposed_on", pa.date32()),
    ]
    fields += [pa.field(f"present_{p}", pa.bool_()) for p in b.PARTIES]
    fields += [pa.field(f"rows_{d.party}_{d.name}", pa.int64()) for d in b.DATASETS]
    fields += [pa.field(f"first_{d.party}_{d.name}", pa.timestamp("s")) for d in b.DATASETS]
    return pa.schema(fields)


def persons_table(
    people: People, comp: np.ndarray, events: dict[tuple[str, str], Events]
) -> pa.Table:
    """Room persons of a chunk, ordered by component id (``person * 3 + type bit``)."""
    low = lowest_bit(comp)
    rows, bits = [], []
    for kind, bit in enumerate(ID_BITS):
        holders = np.flatnonzero((low == bit).any(axis=1))
        rows.append(holders)
        bits.append(np.full(holders.size, kind))
    who, k = np.concatenate(rows), np.concatenate(bits)
    order = np.argsort(who * 3 + k, kind="stable")
    who, k = who[order], k[order]
    mine = low[who] == np.asarray(ID_BITS, dtype=np.uint8)[k][:, None]
    arm_here = people.enrolled[who] & mine[:, OZONE]
    cols: dict[str, Any] = {
        "person": pa.array(people.index[who]),
        "component": pa.array(people.index[who] * 3 + k),
        "persona": b.category(PERSONAS, people.persona[who]),
        "campaign_arm": pa.DictionaryArray.from_arrays(
            pa.array(np.where(people.treated[who], 0, 1), pa.int32(), mask=~arm_here),
            pa.array(b.ARMS),
        ),
        "exposed_on": pa.array(
            (EPOCH // DAY + people.exposed[who]).astype(np.int32), pa.date32(), mask=~arm_here
        ),
    }
    for p, party in enumerate(b.PARTIES):
        cols[f"present_{party}"] = pa.array(mine[:, p])
    for d in b.DATASETS:
        ev = events.get((d.party, d.name))
        here = mine[:, b.PARTIES.index(d.party)]
        count = np.where(here, ev.count[who], 0) if ev is not None else np.zeros(who.size, int)
        cols[f"rows_{d.party}_{d.name}"] = pa.array(count.astype(np.int64))
        first = ev.first[who] if ev is not None else np.zeros(who.size, np.int64)
        cols[f"first_{d.party}_{d.name}"] = pa.array(
            first.astype("datetime64[s]"), pa.timestamp("s"), mask=count == 0
        )
    return pa.table(cols, schema=persons_schema())


def _code(present: np.ndarray) -> np.ndarray:
    return np.asarray((present.astype(np.int64) << np.arange(present.shape[1])).sum(axis=1))


@dataclass
class Tally:
    """Running counts over chunks for ``summary.json``."""

    parties: tuple[str, ...]
    persons: int = 0
    room_persons: int = 0
    room_codes: np.ndarray = field(default_factory=lambda: np.zeros(32, np.int64))
    true_codes: np.ndarray = field(default_factory=lambda: np.zeros(32, np.int64))
    personas: np.ndarray = field(default_factory=lambda: np.zeros(len(PERSONAS), np.int64))
    datasets: dict[str, dict[str, int]] = field(default_factory=dict)
    campaign: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(
        self,
        people: People,
        comp: np.ndarray,
        table: pa.Table,
        events: dict[tuple[str, str], Events],
    ) -> None:
        """Fold one chunk in."""
        self.persons += len(people)
        self.room_persons += table.num_rows
        present = np.column_stack([table[f"present_{p}"].to_numpy() for p in b.PARTIES])
        self.room_codes += np.bincount(_code(present), minlength=32)
        self.true_codes += np.bincount(_code(people.usable != 0), minlength=32)
        self.personas += np.bincount(people.persona, minlength=len(PERSONAS))
        for (party, name), ev in events.items():
            p = b.PARTIES.index(party)
            members = people.member[:, p] & (ev.count > 0)
            tally = self.datasets.setdefault(f"{party}/{name}", dict.fromkeys(_DATASET_FIELDS, 0))
            tally["rows"] += ev.person.size
            tally["rows_unusable"] += int(ev.count[people.usable[:, p] == 0].sum())
            tally["rows_bad_identifier"] += int(ev.count[people.broken[:, p] != 0].sum())
            tally["records"] += int(members.sum())
            tally["records_unusable"] += int((members & (people.usable[:, p] == 0)).sum())
            tally["records_bad_identifier"] += int((members & (people.broken[:, p] != 0)).sum())
        self._lift(people, comp, events.get(("ofogh", "purchases")))

    def _lift(self, people: People, comp: np.ndarray, ofogh: Events | None) -> None:
        """Ofogh rows around exposure for enrolled persons the room can link to ozone."""
        if ofogh is None or "ozone" not in self.parties:
            return
        linked = people.enrolled & (comp[:, OZONE] != 0) & (comp[:, OZONE] == comp[:, OFOGH])
        since = (ofogh.seconds - EPOCH) // DAY - people.exposed[ofogh.person]
        window = np.abs(since + 0.5) < LIFT_WINDOW_DAYS
        before = np.bincount(ofogh.person[window & (since < 0)], minlength=len(people))
        after = np.bincount(ofogh.person[window & (since >= 0)], minlength=len(people))
        for arm, in_arm in (("treatment", people.treated), ("control", ~people.treated)):
            t = self.campaign.setdefault(arm, dict.fromkeys(_ARM_FIELDS, 0))
            t["enrolled"] += int((people.enrolled & in_arm).sum())
            t["linked_to_ofogh"] += int((linked & in_arm).sum())
            t["ofogh_rows_before"] += int(before[linked & in_arm].sum())
            t["ofogh_rows_after"] += int(after[linked & in_arm].sum())

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary; overlap rate = |A∩B| / min(|A|, |B|)."""
        return {
            "persons": self.persons,
            "room_persons": self.room_persons,
            "parties": list(self.parties),
            "combinations": _combinations(self.room_codes),
            "overlap": _overlap(self.room_codes, self.parties),
            "true_combinations": _combinations(self.true_codes),
            "true_overlap": _overlap(self.true_codes, self.parties),
            "personas": dict(zip(PERSONAS, self.personas.tolist(), strict=True)),
            "datasets": self.datasets,
            "campaign": {"window_days": LIFT_WINDOW_DAYS, **self.campaign},
            "notes": NOTES,
        }


def _combinations(codes: np.ndarray) -> dict[str, int]:
    out = {}
    for code in np.flatnonzero(codes):
        names = sorted(p for i, p in enumerate(b.PARTIES) if code >> i & 1)
        if names:
            out["+".join(names)] = int(codes[code])
    return dict(sorted(out.items()))


def _size(codes: np.ndarray, *parties: str) -> int:
    bits = sum(1 << b.PARTIES.index(p) for p in parties)
    return int(codes[[c for c in range(32) if c & bits == bits]].sum())


def _overlap(codes: np.ndarray, parties: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for x, y in itertools.combinations(sorted(parties), 2):
        both, nx, ny = _size(codes, x, y), _size(codes, x), _size(codes, y)
        rate = both / min(nx, ny) if min(nx, ny) else 0.0
        out[f"{x}+{y}"] = {"both": both, x: nx, y: ny, "rate": round(rate, 4)}
    return out
