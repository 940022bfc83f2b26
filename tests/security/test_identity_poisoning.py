"""Identity poisoning, as the audit ran it: one party ties another's phones to one e-mail.

A party holds the match key, so it can tokenize any phone. The attacker
(filimo) re-uploads its dataset with N of the victim's (okala's) phone
numbers, each in a row with one e-mail of its own; the room re-matches. The
victim's persons and bounded row count (rows kept at ``max_rows_per_person``)
must stay within TOLERANCE of the unpoisoned match, the attack must be
counted, and the attacker and reviewers must see the count (never a token).
A chained variant (many e-mails, two phones each) and disjoint pairs (each
forged e-mail tied to its own two phones, within every per-type limit) are
held to the same tolerance. Figures in SECURITY.md ("Identity poisoning") come from here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from cleanroom.party.normalize import phone_reference
from cleanroom.room.auth import Role
from cleanroom.room.ingest import ingest
from cleanroom.room.matching import live_generation, run_match
from cleanroom.room.state import Room
from tests.system.world import LiveServer, World, build_world, load_and_match, open_room

VICTIM, ATTACKER = ("okala", "orders"), ("filimo", "views")
N = 1_000  # the audit's number of phones
TOLERANCE = 0.005  # victim's persons and bounded rows may move by at most 0.5%


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("poisoning"), persons=4_000, seed=43)


@pytest.fixture(scope="module")
def room(world: World) -> Iterator[Room]:
    room = open_room(world.room_dir)
    load_and_match(room, world)
    yield room
    room.close()


def victim_counts(room: Room) -> tuple[int, int]:
    """The victim's persons and rows kept under the policy's per-person row bound."""
    generation = live_generation(room)
    assert generation is not None
    table = generation.tables[".".join(VICTIM)]
    privacy = room.active_policy().policy.privacy
    assert privacy is not None
    row = (
        room.wh.cursor()
        .execute(
            f'SELECT count(DISTINCT person), count(*) FILTER (WHERE _rank <= ?) FROM wh."{table}"',
            [privacy.max_rows_per_person],
        )
        .fetchone()
    )
    assert row is not None
    return int(row[0]), int(row[1])


def victim_phones(world: World, n: int) -> list[str]:
    """n distinct phones of the victim's customers (distinct once normalized), as cells."""
    table = pacsv.read_csv(
        world.data.files[VICTIM],
        convert_options=pacsv.ConvertOptions(column_types={"mobile": pa.string()}),
    )
    seen: dict[str, str] = {}
    for value in table.column("mobile").to_pylist():
        normalized = phone_reference(value)
        if normalized is not None:
            seen.setdefault(normalized, value)
    phones = list(seen.values())
    assert len(phones) >= n, "the world is too small for the attack"
    return phones[:n]


def poisoned_upload(world: World, room: Room, rows: list[tuple[str, str]], name: str) -> None:
    """The attacker's own dataset plus ``rows`` of (e-mail, phone), sealed and uploaded."""
    source = world.data.files[ATTACKER]
    honest = pacsv.read_csv(
        source, convert_options=pacsv.ConvertOptions(column_types={"mobile": pa.string()})
    )
    template = honest.slice(0, 1).to_pylist()[0]
    extra = [{**template, "email": email, "mobile": phone} for email, phone in rows]
    poisoned = pa.concat_tables(
        [honest, pa.Table.from_pylist(extra, schema=honest.schema)], promote_options="none"
    )
    path = Path(world.root) / f"{name}.csv"
    pacsv.write_csv(poisoned, path)
    bundle = world.seal(*ATTACKER, Path(world.root) / f"{name}.bundle", input_path=path)
    ingest(room, bundle, room.users.get(f"{ATTACKER[0]}-admin"))
    run_match(room, room.users.get("room-admin"))


def within(after: tuple[int, int], before: tuple[int, int]) -> bool:
    return all(abs(a - b) <= TOLERANCE * b for a, b in zip(after, before, strict=True))


def test_one_email_tied_to_a_thousand_of_anothers_phones(world: World, room: Room) -> None:
    before = victim_counts(room)
    honest = live_generation(room)
    assert honest is not None and honest.withheld is not None
    assert honest.withheld["links"] == honest.withheld["hubs"] == 0  # honest data is untouched
    phones = victim_phones(world, N)
    poisoned_upload(world, room, [("one.person@poison.example", p) for p in phones], "hub")
    after = victim_counts(room)
    print(f"hub attack: victim persons/bounded rows {before} -> {after}")
    assert within(after, before), (before, after)
    withheld = live_generation(room).withheld  # type: ignore[union-attr]
    assert withheld is not None
    assert withheld["hubs"] >= 1
    assert withheld["by_party"][ATTACKER[0]] >= N
    assert set(withheld["by_party"]) == {ATTACKER[0]}

    with LiveServer(room) as server:
        attacker = _latest(server.url, world.tokens[f"{ATTACKER[0]}_admin"])
        victim = _latest(server.url, world.tokens[f"{VICTIM[0]}_analyst"])
        reviewer = _latest(server.url, world.tokens[Role.reviewer.value])
    assert attacker["withheld"] == {"links": withheld["by_party"][ATTACKER[0]]}
    assert victim["withheld"] == {"links": 0}
    assert reviewer["withheld"] == withheld
    audit = room.audit.entries(action="match.run")[-1]
    assert audit.details["withheld"] == withheld
    text = json.dumps([attacker, reviewer, audit.details])
    assert "poison" not in text and not any(p in text for p in phones[:50])


def test_chained_emails_two_phones_each_stay_within_tolerance(world: World, room: Room) -> None:
    """Many e-mails, two victim phones each: under every per-token limit, but one chain."""
    before = victim_counts(room)
    phones = victim_phones(world, 400)
    rows = [(f"link{i}@poison.example", phones[i + d]) for i in range(399) for d in (0, 1)]
    poisoned_upload(world, room, rows, "chain")
    after = victim_counts(room)
    print(f"chain attack: victim persons/bounded rows {before} -> {after}")
    print(f"chain attack withheld: {live_generation(room).withheld}")  # type: ignore[union-attr]
    assert within(after, before), (before, after)
    withheld = live_generation(room).withheld  # type: ignore[union-attr]
    assert withheld is not None
    # The foreign-merge limit cuts the chain's links before any group forms.
    assert withheld["foreign_merges"] >= 390 and withheld["split_groups"] == 0
    assert set(withheld["by_party"]) == {ATTACKER[0]}


def test_disjoint_pairs_stay_within_tolerance(world: World, room: Room) -> None:
    """500 forged e-mails, each tied to its own 2 victim phones: every group within limits."""
    before = victim_counts(room)
    phones = victim_phones(world, 1_000)
    rows = [(f"pair{i}@poison.example", phones[2 * i + d]) for i in range(500) for d in (0, 1)]
    poisoned_upload(world, room, rows, "pairs")
    after = victim_counts(room)
    print(f"disjoint pairs: victim persons/bounded rows {before} -> {after}")
    print(f"disjoint pairs withheld: {live_generation(room).withheld}")  # type: ignore[union-attr]
    assert within(after, before), (before, after)
    withheld = live_generation(room).withheld  # type: ignore[union-attr]
    assert withheld is not None
    assert withheld["hubs"] == withheld["split_groups"] == 0  # the per-type limits miss it
    assert withheld["foreign_merges"] >= 450  # each pair that held two of okala's persons
    assert set(withheld["by_party"]) == {ATTACKER[0]}  # the victim's own links all kept
    assert withheld["by_party"][ATTACKER[0]] >= 900


def _latest(url: str, token: str) -> dict[str, object]:
    response = httpx.get(
        f"{url}/api/v1/matches/latest", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, dict)
    return body
