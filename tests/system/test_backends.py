"""DuckDB and Spark resolve the same persons and compute the same exact aggregates.

One generated group is loaded into two rooms, one matched on Spark and one in
DuckDB: the two matches must group the same rows into persons (person ids
are random labels, so each person is compared by the rows it owns). Then
the Spark room's analysis tables (encrypted Parquet written by Spark) are
read back into its own warehouse, and every query below runs through the
engine's own ``Prepared.execute`` on both backends over those identical
tables, with a cursor that records what each backend returned before any
noise: those rows must be identical. The noise after them is shared code and
is not seeded.

Which rows a person keeps is random, and the engines' randomness differs
(``random()``, ``hash()``), so each case is chosen where the selection is
either not random or does not bind:

* single-table SQL without a filter bounds rows with the stored ``_rank``
  (drawn once at match time, exported with the table): the row bound binds
  (k = 10) and both engines keep the same rows; g is above every domain, so
  no per-query group selection runs;
* SQL with a filter or a join ranks rows afresh with ``random()``: run with
  k = 10,000 and g = 1,000, above what any person has here (checked);
* ``transitions`` keeps ``max_transitions`` pairs per person by ``hash()``:
  three brands make at most six pairs, under the ten kept;
* the other templates bound persons deterministically (one cell per person).

One Spark session serves the whole test run (local[2], 4 shuffle partitions,
no UI).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("pyspark")

from pyspark.sql import SparkSession
from sqlglot import exp

from cleanroom.errors import ConflictError
from cleanroom.room.analyses import prepare_template, sequence
from cleanroom.room.backends import Backend
from cleanroom.room.backends.duckdb import DuckDBBackend
from cleanroom.room.backends.kms import ParquetKey
from cleanroom.room.backends.spark import SparkBackend, spark_session
from cleanroom.room.config import load_settings
from cleanroom.room.matching import Generation, live_generation, reading, run_match
from cleanroom.room.policy.privacy import PrivacyPolicy
from cleanroom.room.query.check import check_sql
from cleanroom.room.query.prepared import Prepared, SqlQuery
from cleanroom.room.state import Room
from cleanroom.sql import statement
from tests.system.world import World, build_world, load_and_match

pytestmark = pytest.mark.spark

PERIOD = {"start": "2026-01-01", "end": "2026-07-01"}
RANKED = "ranked"  # k binds through the stored _rank
LOOSE = "loose"  # nothing binds

SQL = {
    "count_sum_avg_by_city": (
        RANKED,
        "SELECT city, COUNT(*), SUM(amount), AVG(amount) FROM okala.orders GROUP BY city",
    ),
    "persons_by_channel": (
        RANKED,
        "SELECT channel, COUNT(DISTINCT person) FROM okala.orders GROUP BY channel",
    ),
    "all_of_one_table": (
        RANKED,
        "SELECT COUNT(*), COUNT(DISTINCT person), SUM(amount) FROM okala.orders",
    ),
    "filtered_time_range": (
        LOOSE,
        "SELECT category, COUNT(*), COUNT(DISTINCT person), SUM(amount) FROM okala.orders "
        "WHERE ordered_at >= '2026-02-01' AND ordered_at < TIMESTAMP '2026-05-01 12:00:00' "
        "AND (channel = 'app' OR amount > 250000.5) AND city NOT IN ('Tehran') GROUP BY category",
    ),
    "join_on_person": (
        LOOSE,
        "SELECT o.city, COUNT(DISTINCT o.person), SUM(p.amount) FROM okala.orders o "
        "JOIN ofogh.purchases p ON o.person = p.person GROUP BY o.city",
    ),
}
TEMPLATES = {
    "overlap": {},
    "transitions": {"brands": "okala,ofogh,ozone", "max_transitions": "10", **PERIOD},
    "funnel": {"steps": "okala,ofogh.purchases:city=Tehran,ozone", "window_days": "45", **PERIOD},
    "time_to_cross": {"from": "okala", "to": "ofogh", **PERIOD},
    "retention": {"start": "2026-01", "months": "6"},
    "segments": {"as_of": "2026-07-01"},
    "lift": {"outcome": "ofogh.purchases", "metric": "amount", **PERIOD},
    "app_to_store": {
        "from": "okala.orders:channel=app",
        "to": "ofogh",
        "window_days": "20",
        **PERIOD,
    },
}


class Recording:
    """A backend cursor that keeps every result it hands to the engine (the exact numbers)."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self.results: list[list[tuple[Any, ...]]] = []

    def execute(self, statement: exp.Query) -> Recording:
        self.cursor.execute(statement)
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows = [tuple(r) for r in self.cursor.fetchall()]
        self.results.append(sorted(rows, key=repr))
        return rows


PERSONS, SEED = 800, 29


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("backends"), persons=PERSONS, seed=SEED)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> SparkSession:
    return spark_session(
        "local[2]",
        tmp_path_factory.mktemp("spark-work"),
        {"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "2"},
    )


@pytest.fixture(scope="module")
def room(world: World, session: SparkSession) -> Iterator[Room]:
    """The group matched on Spark."""
    settings = load_settings(
        world.room_dir, environment="development", backend="spark", spark_master="local[2]"
    )
    room = Room(settings)
    load_and_match(room, world)
    yield room
    room.close()


@pytest.fixture(scope="module")
def duck_room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Room]:
    """The same group (same seed: same rows, other keys) matched in DuckDB."""
    world = build_world(tmp_path_factory.mktemp("backends-duck"), persons=PERSONS, seed=SEED)
    room = Room(load_settings(world.room_dir, environment="development"))
    load_and_match(room, world)
    yield room
    room.close()


@pytest.fixture(scope="module")
def generation(room: Room) -> Generation:
    """The Spark-matched generation, its tables also read into the room's warehouse."""
    found = live_generation(room)
    assert found is not None
    return into_warehouse(room, found)


def into_warehouse(room: Room, generation: Generation) -> Generation:
    """Copy a Spark-matched generation's tables into the room's warehouse for DuckDB to read."""
    backend = room.backend
    assert isinstance(backend, SparkBackend)
    for name in generation.tables.values():
        cursor = room.wh.cursor()
        cursor.register("spark_rows", read_parquet(backend, name))
        cursor.execute(f'CREATE TABLE wh."{name}" AS SELECT * FROM spark_rows')
        cursor.close()
    return generation


def read_parquet(backend: SparkBackend, name: str) -> pa.Table:
    """A Spark-written table, decrypted by Arrow with the room's key."""
    return pq.read_table(
        backend.data / name, decryption_properties=backend.key.decryption_properties()
    )


def persons(tables: dict[str, pa.Table]) -> Counter[tuple[tuple[str, tuple[Any, ...]], ...]]:
    """Each person as the sorted rows it owns across tables (ids and _rank left out)."""
    owned: dict[int, list[tuple[str, tuple[Any, ...]]]] = {}
    for key, table in tables.items():
        columns = [c for c in table.column_names if c not in ("person", "_rank")]
        for row in table.to_pylist():
            values = tuple(row[c] for c in columns)
            owned.setdefault(row["person"], []).append((key, values))
    return Counter(tuple(sorted(rows, key=repr)) for rows in owned.values())


def privacy(room: Room, mode: str) -> PrivacyPolicy:
    base = room.active_policy().policy.privacy
    assert base is not None
    k, g = (10, 1_000) if mode == RANKED else (10_000, 1_000)
    return base.model_copy(update={"max_rows_per_person": k, "max_groups_per_person": g})


def exact(
    backend: Backend, query: Prepared, generation: Generation, policy: PrivacyPolicy
) -> tuple[list[list[tuple[Any, ...]]], dict[str, Any]]:
    cursor = Recording(backend.cursor())
    released = query.execute(cursor, generation.tables, Fraction(1), policy).as_dict()
    return cursor.results, released


def both(room: Room, generation: Generation, query: Prepared, policy: PrivacyPolicy) -> None:
    duck, duck_released = exact(DuckDBBackend(room.wh), query, generation, policy)
    spark, spark_released = exact(room.backend, query, generation, policy)
    assert duck and any(duck), "the case computes something"
    assert spark == duck
    assert spark_released["columns"] == duck_released["columns"]


def test_spark_and_duckdb_matches_form_the_same_persons(
    room: Room, generation: Generation, duck_room: Room
) -> None:
    backend = room.backend
    assert isinstance(backend, SparkBackend)
    duck = live_generation(duck_room)
    assert duck is not None
    duck_tables = sequence.datasets(duck.tables)  # DuckDB also prepares the journeys' sequence
    assert duck_tables.keys() == generation.tables.keys()
    on_spark = {k: read_parquet(backend, v) for k, v in generation.tables.items()}
    in_duckdb = {
        k: duck_room.wh.cursor().execute(f'SELECT * FROM wh."{v}"').to_arrow_table()
        for k, v in duck_tables.items()
    }
    assert {k: t.num_rows for k, t in on_spark.items()} == {
        k: t.num_rows for k, t in in_duckdb.items()
    }
    spark_persons = persons(on_spark)
    assert spark_persons == persons(in_duckdb)
    assert sum(spark_persons.values()) > PERSONS // 2  # persons were found, most multi-row
    for table in on_spark.values():  # _rank numbers each person's rows 1..n
        ranks: dict[int, list[int]] = {}
        for row in table.select(["person", "_rank"]).to_pylist():
            ranks.setdefault(row["person"], []).append(row["_rank"])
        assert all(sorted(r) == list(range(1, len(r) + 1)) for r in ranks.values())


def test_the_match_left_only_encrypted_analysis_tables(room: Room, generation: Generation) -> None:
    backend = room.backend
    assert isinstance(backend, SparkBackend)
    names = set(generation.tables.values())
    assert {p.name for p in backend.data.iterdir()} == names  # no party table, no person map
    for name in names:
        assert (backend.data / name / "_SUCCESS").exists()
        for part in (backend.data / name).glob("*.parquet"):
            data = part.read_bytes()
            assert data[-4:] == b"PARE"  # Parquet with an encrypted footer
            assert b"Tehran" not in data and b"person" not in data
            with pytest.raises(Exception):  # noqa: B017 - any reader without the key fails
                pq.read_table(part)


@pytest.mark.parametrize("case", sorted(SQL))
def test_restricted_sql_gives_the_same_exact_aggregates(
    room: Room, generation: Generation, case: str
) -> None:
    mode, sql = SQL[case]
    policy = room.active_policy().policy
    query = SqlQuery(check_sql(sql, policy=policy, party="okala"))
    if mode == LOOSE:  # the precondition of the docstring: no bound binds
        orders, purchases = generation.tables["okala.orders"], generation.tables["ofogh.purchases"]
        most = room.wh.cursor().execute(
            f'SELECT max(n) FROM (SELECT count(*) AS n FROM wh."{orders}" o '
            f'JOIN wh."{purchases}" p USING (person) GROUP BY person)'
        )
        assert most.fetchall()[0][0] < 10_000
    both(room, generation, query, privacy(room, mode))


def test_a_binding_group_bound_keeps_as_many_groups_on_both(
    room: Room, generation: Generation
) -> None:
    """Counting persons at one city each: which city a person keeps follows each engine's
    hash of the person (the order of the grid it is dealt), how many groups are kept and
    cut does not, and the kept groups are what the persons add up to."""
    policy = room.active_policy().policy
    sql = "SELECT city, COUNT(DISTINCT person) FROM okala.orders GROUP BY city"
    query = SqlQuery(check_sql(sql, policy=policy, party="okala"))
    one = privacy(room, RANKED).model_copy(update={"max_groups_per_person": 1})
    totals = []
    for backend in (DuckDBBackend(room.wh), room.backend):
        (rows, *_), _ = exact(backend, query, generation, one)
        kept, cut, over = rows[0][-3:]
        assert sum(r[1] for r in rows) == kept and cut > 0 and over > 0  # the bound binds
        totals.append((kept, cut, over))
    assert totals[0] == totals[1]


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_template_gives_the_same_exact_aggregates(
    room: Room, generation: Generation, name: str
) -> None:
    policy = room.active_policy().policy
    query = prepare_template(name, TEMPLATES[name], policy=policy, party="reporter")
    assert policy.privacy is not None
    both(room, generation, query, policy.privacy)


def test_a_replaced_generation_is_retired_and_queries_read_the_new_one(
    room: Room, generation: Generation
) -> None:
    backend = room.backend
    assert isinstance(backend, SparkBackend)
    run_match(room, room.users.get("room-admin"))
    new = live_generation(room)
    assert new is not None and new.generation == generation.generation + 1
    into_warehouse(room, new)
    old = set(generation.tables.values())
    assert not old & {p.name for p in backend.data.iterdir()}
    assert not old & set(backend.views)
    query = prepare_template("overlap", {}, policy=room.active_policy().policy, party="reporter")
    privacy_policy = room.active_policy().policy.privacy
    assert privacy_policy is not None
    both(room, new, query, privacy_policy)


def test_a_failed_spark_match_leaves_nothing_behind(
    room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = room.backend
    assert isinstance(backend, SparkBackend)
    live = live_generation(room)
    before = {p.name for p in backend.data.iterdir()}
    views = {t.name for t in backend.session.catalog.listTables()}

    def fail(*args: object, **kwargs: object) -> int:
        raise RuntimeError("executor lost")  # after the export and the resolution

    monkeypatch.setattr("cleanroom.room.backends.spark.person_table", fail)
    with pytest.raises(RuntimeError, match="executor lost"):
        run_match(room, room.users.get("room-admin"))
    assert live_generation(room) == live  # the old generation still serves
    assert {p.name for p in backend.data.iterdir()} == before  # no exported party table
    assert {t.name for t in backend.session.catalog.listTables()} == views


def test_what_a_killed_match_left_is_removed_when_the_backend_opens(
    room: Room, session: SparkSession, tmp_path: Path
) -> None:
    data = tmp_path / "spark"
    leftovers = [data / ".match-0badc0ffee00" / "p__orders", data / ".g3__p__orders.partial"]
    for path in leftovers:
        path.mkdir(parents=True)
        (path / "part-00000.parquet").write_bytes(b"PAR1")
    (data / "g2__p__orders").mkdir()
    settings = room.settings.model_copy(update={"spark_data": data})
    backend = SparkBackend.open(settings, room.wh, room.rekey_secret, tmp_path / "work")
    assert {p.name for p in data.iterdir()} == {"g2__p__orders"}
    backend.close()


def test_a_generation_matched_in_duckdb_is_exported_on_first_spark_query(
    duck_room: Room, session: SparkSession, tmp_path: Path
) -> None:
    generation = live_generation(duck_room)
    assert generation is not None
    spark = SparkBackend(
        duck_room.wh, ParquetKey.from_secret(duck_room.rekey_secret), tmp_path, session
    )
    try:
        policy = duck_room.active_policy().policy
        assert policy.privacy is not None
        query = prepare_template("overlap", {}, policy=policy, party="reporter")
        duck, _ = exact(duck_room.backend, query, generation, policy.privacy)
        exported, _ = exact(spark, query, generation, policy.privacy)
        assert exported == duck and any(duck)
        assert {p.name for p in tmp_path.iterdir()} == set(
            sequence.datasets(generation.tables).values()
        )
    finally:
        spark.close()


def test_a_spark_generation_is_refused_by_a_room_switched_back_to_duckdb(
    room: Room, generation: Generation, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert generation.backend == "spark"
    monkeypatch.setattr(room, "settings", room.settings.model_copy(update={"backend": "duckdb"}))
    with pytest.raises(ConflictError, match="run a match again"), reading(room):
        pass


def test_an_empty_table_exports_as_a_typed_empty_table(room: Room) -> None:
    backend = room.backend
    assert isinstance(backend, SparkBackend)
    room.wh.cursor().execute(
        'CREATE TABLE wh."g98__p__empty" '
        "(person BIGINT, city VARCHAR, seen TIMESTAMP, _rank BIGINT)"
    )
    try:
        got = backend.cursor().execute(
            statement('SELECT count(*), max(seen) FROM wh."g98__p__empty"')
        )
        assert got.fetchall() == [(0, None)]
        schema = backend.session.table(backend.view("g98__p__empty")).schema
        assert [f.name for f in schema.fields] == ["person", "city", "seen", "_rank"]
    finally:
        backend.retire(["g98__p__empty"])
    assert "g98__p__empty" not in room.wh.tables()


def test_a_table_missing_everywhere_is_a_clear_error(room: Room) -> None:
    backend = room.backend
    assert isinstance(backend, SparkBackend)
    with pytest.raises(ConflictError, match="run a match again"):
        backend.cursor().execute(statement('SELECT count(*) FROM wh."g99__okala__orders"'))


def test_values_bound_into_spark_come_back_unchanged(room: Room) -> None:
    values: list[object] = [
        "it's a \\ 'quote'\n",
        -(2**62),
        0.1,
        True,
        None,
        dt.date(2026, 2, 28),
        dt.datetime(2026, 2, 28, 23, 59, 59, 123456),
    ]
    named = {f"v{i}": value for i, value in enumerate(values)}
    sql = "SELECT " + ", ".join(f"${name}" for name in named)
    got = room.backend.cursor().execute(statement(sql, **named)).fetchall()
    assert got == [tuple(values)]


def test_settings_pick_the_backend(world: World, tmp_path: Path) -> None:
    settings = load_settings(world.room_dir, environment="development")
    assert settings.backend == "duckdb" and settings.spark_master == "local[*]"
    assert load_settings(world.room_dir, backend="spark").backend == "spark"
