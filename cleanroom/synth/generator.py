"""Generate the group's party exports and their ground truth, chunk by chunk.

Memory stays bounded by ``chunk_persons``: each chunk's rows are streamed to one
writer per dataset and dropped. Chunk ``i`` draws from
``default_rng([seed, i])``: persons from the root stream and each party from a child
spawned in a fixed order, so leaving a party out does not change what the others
hold. Same seed and chunk size give byte-identical files.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cleanroom.batches import in_order
from cleanroom.contract.spec import IdType
from cleanroom.errors import UserError
from cleanroom.synth import brands as b
from cleanroom.synth import events as ev
from cleanroom.synth import formats, identifiers, people, truth
from cleanroom.synth.people import People

MIN_PERSONS, MAX_PERSONS = 1, identifiers.MAX_PERSONS
MAX_CHUNK = 2_000_000
ID_BIT = {IdType.phone: people.PHONE, IdType.email: people.EMAIL, IdType.card: people.CARD}


@dataclass(frozen=True)
class SynthSummary:
    """What ``generate`` wrote; row counts and paths keyed by ``(party, dataset)``."""

    out: Path
    persons: int
    room_persons: int
    rows: dict[tuple[str, str], int]
    files: dict[tuple[str, str], Path]
    specs: dict[tuple[str, str], Path]
    truth: dict[str, Path]


@dataclass(frozen=True)
class Chunk:
    """One chunk, fully built: what each file gets, plus what the tests need to check it."""

    people: People
    tables: dict[tuple[str, str], pa.Table]
    events: dict[tuple[str, str], ev.Events]
    truth: pa.Table
    comp: np.ndarray


def _check(
    persons: int, seed: int, fmt: str, parties: Sequence[str] | None, chunk: int
) -> tuple[str, ...]:
    """The parties to write, in ``PARTIES`` order; refuse anything else with a reason."""
    if not MIN_PERSONS <= persons <= MAX_PERSONS:
        raise UserError(f"persons must be between {MIN_PERSONS:,} and {MAX_PERSONS:,}")
    if fmt not in ("csv", "parquet"):
        raise UserError(f"format must be csv or parquet, not '{fmt}'")
    if not 1 <= chunk <= MAX_CHUNK:
        raise UserError(f"chunk_persons must be between 1 and {MAX_CHUNK:,}")
    if seed < 0:
        raise UserError("seed must be zero or positive")
    chosen = tuple(b.PARTIES) if parties is None else tuple(dict.fromkeys(parties))
    unknown = sorted(set(chosen) - set(b.PARTIES))
    if unknown:
        raise UserError(
            f"unknown part{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}"
            f"; choose from {', '.join(b.PARTIES)}"
        )
    if not chosen:
        raise UserError(f"choose at least one party from {', '.join(b.PARTIES)}")
    return tuple(p for p in b.PARTIES if p in chosen)


def build_chunk(
    seed: int, chunk_index: int, start: int, stop: int, parties: Sequence[str]
) -> Chunk:
    """Persons ``start..stop-1``: their rows per dataset of ``parties`` and their truth."""
    root = np.random.SeedSequence([seed, chunk_index])
    party_seeds = dict(zip(b.PARTIES, root.spawn(len(b.PARTIES)), strict=True))
    folk = people.draw(np.random.default_rng(root), np.arange(start, stop, dtype=np.int64))
    phones = identifiers.phone_digits(folk.index)
    cards = identifiers.card_digits(folk.index)
    emails = formats.email_cases(identifiers.emails(folk.index))
    tables: dict[tuple[str, str], pa.Table] = {}
    happened: dict[tuple[str, str], ev.Events] = {}
    for party in parties:
        p = b.PARTIES.index(party)
        rng = np.random.default_rng(party_seeds[party])
        for name, rows in ev.BEHAVIOUR[party](rng, folk).items():
            spec = b.dataset(party, name)
            who = rows.person
            cells: dict[str, pa.Array] = {}
            for column, kind in spec.identifiers.items():
                bit = ID_BIT[kind]
                present = (folk.on_file[who, p] & bit) != 0
                broken = (folk.broken[who, p] & bit) != 0
                if kind is IdType.email:
                    cells[column] = formats.render_emails(rng, emails, who, present, broken)
                else:
                    renderer = formats.PHONES if kind is IdType.phone else formats.CARDS
                    digits = phones if kind is IdType.phone else cards
                    cells[column] = renderer.render(rng, digits, who, present, broken)
            cells.update(rows.columns)
            tables[(party, name)] = pa.table(cells, schema=spec.schema)
            happened[(party, name)] = rows
    written = np.isin(np.array(b.PARTIES), np.array(parties))
    seen = dataclasses.replace(folk, on_file=np.where(written, folk.on_file, 0).astype(np.uint8))
    comp = truth.closure(seen.usable)
    return Chunk(seen, tables, happened, truth.persons_table(seen, comp, happened), comp)


class _Sink:
    """One output file, written under a temporary name and moved into place when complete."""

    def __init__(self, path: Path, schema: pa.Schema, fmt: str) -> None:
        self.path = path
        self.partial = path.with_name(f".{path.name}.partial")
        self.rows = 0
        self.writer: pacsv.CSVWriter | pq.ParquetWriter
        if fmt == "csv":
            self.writer = pacsv.CSVWriter(self.partial, schema)
        else:
            self.writer = pq.ParquetWriter(self.partial, schema, compression="zstd")

    def write(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        self.writer.write_table(table)

    def close(self, keep: bool) -> None:
        self.writer.close()
        if keep:
            os.replace(self.partial, self.path)
        else:
            self.partial.unlink(missing_ok=True)


class _Output:
    """Every file of a run; data files appear only if the whole run succeeds."""

    def __init__(self, out: Path, parties: tuple[str, ...], fmt: str) -> None:
        self.out = out
        self.datasets = [d for d in b.DATASETS if d.party in parties]
        for d in self.datasets:
            (out / d.party).mkdir(parents=True, exist_ok=True)
        (out / "truth").mkdir(parents=True, exist_ok=True)
        self.sinks = {
            (d.party, d.name): _Sink(out / d.party / f"{d.name}.{fmt}", d.schema, fmt)
            for d in self.datasets
        }
        self.truth = _Sink(out / "truth" / "persons.parquet", truth.persons_schema(), "parquet")

    def write(self, chunk: Chunk) -> None:
        for key, table in chunk.tables.items():
            self.sinks[key].write(table)
        self.truth.write(chunk.truth)

    def close(self, keep: bool) -> None:
        for sink in [*self.sinks.values(), self.truth]:
            sink.close(keep)

    def specs(self) -> dict[tuple[str, str], Path]:
        paths = {}
        for d in self.datasets:
            paths[(d.party, d.name)] = self.out / d.party / f"{d.name}.spec.yaml"
            d.write_spec(paths[(d.party, d.name)])
        return paths


def _pipelined(
    chunks: Iterator[tuple[int, Chunk]],
    write: Callable[[Chunk], None],
    progress: Callable[[int], None] | None,
) -> None:
    """Write chunk i on a second thread while chunk i + 1 is built.

    Arrow's writers release the GIL, so this hides most of the write time; at most
    two chunks are in memory at once. ``progress`` hears of a chunk once it is written.
    """

    def written(item: tuple[int, Chunk]) -> int:
        write(item[1])
        return item[0]

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth-writer") as pool:
        for size in in_order(pool, written, chunks, 1):
            if progress is not None:
                progress(size)


def generate(
    out: Path,
    *,
    persons: int,
    seed: int = 7,
    fmt: Literal["csv", "parquet"] = "csv",
    parties: Sequence[str] | None = None,
    chunk_persons: int = 250_000,
    progress: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Write ``out/<party>/<dataset>.<fmt>`` with their specs, and ``out/truth/``.

    ``progress(n)`` is called with the number of persons whose rows were just written.
    """
    chosen = _check(persons, seed, fmt, parties, chunk_persons)
    out = Path(out)
    output = _Output(out, chosen, fmt)
    tally = truth.Tally(chosen)

    def chunks() -> Iterator[tuple[int, Chunk]]:
        for i, begin in enumerate(range(0, persons, chunk_persons)):
            stop = min(begin + chunk_persons, persons)
            chunk = build_chunk(seed, i, begin, stop, chosen)
            tally.add(chunk.people, chunk.comp, chunk.truth, chunk.events)
            yield stop - begin, chunk

    done = False
    try:
        _pipelined(chunks(), output.write, progress)
        done = True
    finally:
        output.close(keep=done)
    specs = output.specs()
    summary = {"seed": seed, "chunk_persons": chunk_persons, "format": fmt, **tally.summary()}
    summary["period"] = {"start": "2026-01-01", "end_exclusive": "2026-07-01"}
    summary["domains"] = {d.key: dict(d.domains) for d in output.datasets}
    summary_path = out / "truth" / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return SynthSummary(
        out=out,
        persons=persons,
        room_persons=tally.room_persons,
        rows={key: sink.rows for key, sink in output.sinks.items()},
        files={key: sink.path for key, sink in output.sinks.items()},
        specs=specs,
        truth={"persons": output.truth.path, "summary": summary_path},
    )
