"""The ground truth agrees with an independent re-reading of the party files."""

from __future__ import annotations

import io
import itertools
import json
import re
from collections import Counter, defaultdict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from synth_support import NORMALIZE, PERSONS

from cleanroom.synth import DATASETS, PARTIES, PERSONAS, SynthSummary, identifiers
from cleanroom.synth.brands import ARMS

TYPE_ORDER = ("phone", "email", "card")  # the truth names a room person by its lowest type


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def find(self, x: Any) -> Any:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: Any, b: Any) -> None:
        self.parent[self.find(a)] = self.find(b)


@pytest.fixture(scope="module")
def room(csv_run: SynthSummary) -> dict[str, Any]:
    """Resolve persons from the CSV files alone, the way the clean room will."""
    uf = UnionFind()
    rows: list[tuple[str, str, list[tuple[str, str]]]] = []
    unusable: Counter[str] = Counter()
    for ds in DATASETS:
        types = {c: "string" for c in ds.identifiers}
        table = pacsv.read_csv(
            csv_run.files[(ds.party, ds.name)],
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True),
        )
        columns = {c: table[c].to_pylist() for c in ds.identifiers}
        for i in range(table.num_rows):
            nodes = []
            for column, kind in ds.identifiers.items():
                raw = columns[column][i]
                value = None if raw is None else NORMALIZE[kind.value](raw)
                if value is not None:
                    nodes.append((kind.value, value))
            if not nodes:
                unusable[ds.key] += 1
                continue
            for a, b in itertools.pairwise(nodes):
                uf.union(a, b)
            uf.find(nodes[0])
            rows.append((ds.party, ds.name, nodes))
    members: dict[Any, set[tuple[str, str]]] = defaultdict(set)
    for node in list(uf.parent):
        members[uf.find(node)].add(node)
    row_counts: dict[Any, Counter[str]] = defaultdict(Counter)
    for party, name, nodes in rows:
        row_counts[uf.find(nodes[0])][f"{party}_{name}"] += 1
    return {"members": members, "rows": row_counts, "unusable": unusable}


@pytest.fixture(scope="module")
def summary(csv_run: SynthSummary) -> dict[str, Any]:
    return json.loads(csv_run.truth["summary"].read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def truth(csv_run: SynthSummary) -> dict[int, dict[str, Any]]:
    table = pq.read_table(csv_run.truth["persons"])
    return {row["component"]: row for row in table.to_pylist()}


def owner_index() -> dict[tuple[str, str], int]:
    index = np.arange(PERSONS)
    owners: dict[tuple[str, str], int] = {}
    for kind, values in (
        ("phone", identifiers.e164(index)),
        ("email", identifiers.emails(index).to_pylist()),
        ("card", identifiers.cards(index)),
    ):
        owners.update({(kind, v): i for i, v in enumerate(values)})
    return owners


def test_truth_matches_independent_resolution(room, truth, summary) -> None:  # type: ignore[no-untyped-def]
    owners = owner_index()
    assert len(room["members"]) == len(truth) == summary["room_persons"]
    seen = set()
    for root, nodes in room["members"].items():
        persons = {owners[n] for n in nodes}
        assert len(persons) == 1, "identifiers of two persons resolved together"
        lowest = min(TYPE_ORDER.index(kind) for kind, _ in nodes)
        component = persons.pop() * 3 + lowest
        row = truth[component]
        counts = room["rows"][root]
        for ds in DATASETS:
            assert row[f"rows_{ds.party}_{ds.name}"] == counts[f"{ds.party}_{ds.name}"]
        for party in PARTIES:
            here = any(counts[f"{ds.party}_{ds.name}"] for ds in DATASETS if ds.party == party)
            assert row[f"present_{party}"] == here
        seen.add(component)
    assert seen == set(truth)


def test_combinations_add_up(room, summary) -> None:  # type: ignore[no-untyped-def]
    assert sum(summary["combinations"].values()) == summary["room_persons"]
    assert sum(summary["true_combinations"].values()) <= summary["persons"] == PERSONS
    combos: Counter[str] = Counter()
    for counts in room["rows"].values():
        combos["+".join(sorted({k.split("_")[0] for k, v in counts.items() if v}))] += 1
    assert dict(combos) == summary["combinations"]
    for key, n in summary["datasets"].items():
        assert room["unusable"][key] == n["rows_unusable"]


def test_every_brand_pair_overlaps_30_to_60_percent(summary) -> None:  # type: ignore[no-untyped-def]
    assert len(summary["true_overlap"]) == 10
    for pair, figures in summary["true_overlap"].items():
        a, b = pair.split("+")
        assert figures["rate"] == pytest.approx(
            figures["both"] / min(figures[a], figures[b]), abs=1e-4
        )
        assert 0.30 <= figures["rate"] <= 0.60, pair
    for pair, figures in summary["overlap"].items():
        # The room loses links (card-only, e-mail-only records), never invents them.
        assert figures["rate"] <= summary["true_overlap"][pair]["rate"] + 1e-9
        assert 0.30 <= figures["rate"] <= 0.60, pair
    assert (
        summary["overlap"]["filimo+ofogh"]["rate"] < summary["true_overlap"]["filimo+ofogh"]["rate"]
    )


def test_personas_campaign_and_messiness_are_in_the_data(summary, truth) -> None:  # type: ignore[no-untyped-def]
    assert set(summary["personas"]) == {"loyal", "converter", "churner", "single", "newcomer"}
    assert sum(summary["personas"].values()) == PERSONS
    for key, n in summary["datasets"].items():
        if key != "ozone/campaign":
            assert 0.003 < n["records_bad_identifier"] / n["records"] < 0.03, key
    arms = Counter(r["campaign_arm"] for r in truth.values() if r["campaign_arm"])
    assert set(arms) == set(ARMS)
    ozone = sum(r["present_ozone"] for r in truth.values())
    assert 0.06 < sum(arms.values()) / ozone < 0.14
    assert summary["room_persons"] > sum(summary["true_combinations"].values())  # some split


def test_converters_reach_ofogh_after_okala(truth) -> None:  # type: ignore[no-untyped-def]
    lags = [
        (r["first_ofogh_purchases"] - r["first_okala_orders"]).total_seconds() / 86_400
        for r in truth.values()
        if r["persona"] == "converter" and r["present_ofogh"] and r["present_okala"]
    ]
    assert lags and min(lags) > 0 and max(lags) <= 61


def test_no_identifier_reaches_the_truth(csv_run: SynthSummary) -> None:
    table = pq.read_table(csv_run.truth["persons"])
    for field in table.schema:
        assert not pa.types.is_string(field.type), field.name
        if pa.types.is_dictionary(field.type):
            values = set(table[field.name].combine_chunks().dictionary.to_pylist())
            assert values <= {*PERSONAS, *ARMS}, field.name
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    decoded = sink.getvalue()
    summary = csv_run.truth["summary"].read_bytes()
    for text in (decoded, summary):
        assert b"@" not in text
        assert not re.search(rb"[0-9]{9,}", text), "a long digit run: a phone or card?"
        assert not re.search("[\u06f0-\u06f9\u0660-\u0669]".encode(), text)
    blobs = (decoded, summary, csv_run.truth["persons"].read_bytes())
    sample = np.arange(0, PERSONS, 7)
    canonical = [
        *identifiers.e164(sample),
        *(s[3:] for s in identifiers.e164(sample)),
        *identifiers.emails(sample).to_pylist(),
        *identifiers.cards(sample),
    ]
    for needle in [*canonical, *raw_cells(csv_run)]:
        for blob in blobs:
            assert needle.encode() not in blob


def raw_cells(run: SynthSummary, every: int = 40) -> list[str]:
    """A sample of the identifier cells as written in the party files."""
    cells: set[str] = set()
    for ds in DATASETS:
        table = pacsv.read_csv(
            run.files[(ds.party, ds.name)],
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in ds.identifiers}
            ),
        )
        for column in ds.identifiers:
            cells.update(
                v.strip() for v in table[column].to_pylist()[::every] if v and len(v.strip()) > 4
            )
    return sorted(cells)
