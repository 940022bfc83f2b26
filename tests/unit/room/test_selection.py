"""Per-person bounds choose by the match generation, not by the query (issue 15, part 2).

The same query on one generation must give the same exact bounded answer
however often it is asked (only the noise may differ); another generation
draws anew. The journey room's persons have up to 12 events at three brands,
so a bound of one or two groups, rows or transition pairs per person cuts
real choices: a fresh draw per query would change the answers.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pytest

from cleanroom.room import selection
from cleanroom.room.analyses import prepare_template
from cleanroom.room.analyses.journey import Journey
from cleanroom.room.backends.duckdb import DuckDBCursor, DuckDBTables
from cleanroom.room.identity import TokenSource, resolve
from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.query import groups
from cleanroom.room.query.check import check_sql
from cleanroom.room.query.compile import compile_plan
from cleanroom.room.query.prepared import bounds
from cleanroom.room.selection import SALT_BITS, GenerationTables
from tests.unit.room import journey_room

SECRET = b"s" * 32
SHAPES = [  # each cuts a per-person choice: groups (g = 1), filtered rows, joined rows (k = 2)
    "SELECT channel, COUNT(DISTINCT person) FROM alpha.events GROUP BY channel",
    "SELECT channel, COUNT(*), SUM(amount) FROM beta.events WHERE amount IS NOT NULL"
    " GROUP BY channel",
    "SELECT a.channel, COUNT(*), COUNT(DISTINCT a.person) FROM alpha.events AS a"
    " JOIN gamma.events AS b ON a.person = b.person GROUP BY a.channel",
]


@pytest.fixture(scope="module")
def sql_policy() -> CollaborationPolicy:
    return journey_room.policy(k=2, g=1)


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    events, exposures = journey_room.ordinary(3, persons=300)
    return journey_room.load(events, exposures)


def sql_exact(
    sql: str, policy: CollaborationPolicy, con: duckdb.DuckDBPyConnection, tables: dict[str, str]
) -> list[tuple[Any, ...]]:
    assert policy.privacy is not None
    compiled = compile_plan(
        check_sql(sql, policy=policy, party="alpha"), tables, **bounds(policy.privacy)
    )
    width = len(compiled.keys) + len(compiled.measurements)  # the cut's totals follow
    return sorted(r[:width] for r in con.execute(compiled.sql).fetchall())


def transitions_exact(
    con: duckdb.DuckDBPyConnection, tables: dict[str, str]
) -> dict[str, dict[Any, int]]:
    params = {"max_transitions": "1", "window_days": "365", **journey_room.PERIOD}
    prepared = prepare_template(
        "transitions", params, policy=journey_room.policy(), party="reporter"
    )
    assert isinstance(prepared, Journey)
    return prepared.exact(DuckDBCursor(con.cursor()), tables)


def test_the_salt_is_a_function_of_the_room_secret_and_the_generation() -> None:
    salts = {GenerationTables.of({}, SECRET, g).salt for g in range(1, 200)}
    assert len(salts) == 199  # each generation its own
    assert all(0 <= s < 2**SALT_BITS for s in salts)
    assert GenerationTables.of({}, SECRET, 7).salt == GenerationTables.of({}, SECRET, 7).salt
    assert GenerationTables.of({}, b"t" * 32, 7).salt != GenerationTables.of({}, SECRET, 7).salt


def test_the_salt_never_shows_when_the_tables_are_printed_or_serialized() -> None:
    tables = GenerationTables.of({"alpha.events": "g3__alpha__events"}, SECRET, 3)
    salt = tables.salt
    assert selection.salt(tables) == salt
    for text in (repr(tables), str(tables), json.dumps(tables)):
        assert str(salt) not in text
        assert hex(salt)[2:] not in text
    assert tables == {"alpha.events": "g3__alpha__events"}


def test_tables_without_a_generation_get_a_fresh_secret_draw() -> None:
    plain = {"alpha.events": "t"}
    assert len({selection.salt(plain) for _ in range(20)}) == 20


@pytest.mark.parametrize("sql", SHAPES)
def test_asking_again_on_one_generation_gives_the_same_exact_answer(
    sql: str, sql_policy: CollaborationPolicy, con: duckdb.DuckDBPyConnection
) -> None:
    tables = GenerationTables.of(journey_room.TABLES, SECRET, 1)
    first = sql_exact(sql, sql_policy, con, tables)
    assert first  # the shape counts something
    for _ in range(5):
        assert sql_exact(sql, sql_policy, con, tables) == first


@pytest.mark.parametrize("sql", [SHAPES[0], SHAPES[2]])
def test_another_generation_chooses_anew(
    sql: str, sql_policy: CollaborationPolicy, con: duckdb.DuckDBPyConnection
) -> None:
    """Salted choices (groups, joined rows) differ between generations' salts."""
    answers = {
        tuple(sql_exact(sql, sql_policy, con, GenerationTables(journey_room.TABLES, s)))
        for s in (GenerationTables.of({}, SECRET, g).salt for g in range(1, 9))
    }
    assert len(answers) > 1


def test_transitions_keep_the_same_pairs_on_one_generation(
    con: duckdb.DuckDBPyConnection,
) -> None:
    tables = GenerationTables.of(journey_room.TABLES, SECRET, 1)
    first = transitions_exact(con, tables)
    assert sum(first["persons"].values()) > 0
    for _ in range(5):
        assert transitions_exact(con, tables) == first
    others = {
        tuple(
            sorted(
                transitions_exact(con, GenerationTables(journey_room.TABLES, s))["persons"].items()
            )
        )
        for s in (GenerationTables.of({}, SECRET, g).salt for g in range(2, 9))
    }
    assert len(others | {tuple(sorted(first["persons"].items()))}) > 1


@pytest.mark.parametrize("g", [1, 2])
def test_the_group_window_keeps_the_groups_a_window_over_pairs_keeps(
    con: duckdb.DuckDBPyConnection, g: int
) -> None:
    """The compiled group bound (each row ranked by its group's salted hash) keeps what
    ranking each person's distinct groups does, after the same fixed row bound."""
    policy = journey_room.policy(k=2, g=g)
    salt = GenerationTables.of({}, SECRET, 4).salt
    sql = (
        "SELECT a.channel, COUNT(*), COUNT(DISTINCT a.person) FROM alpha.events AS a"
        " JOIN gamma.events AS b ON a.person = b.person GROUP BY a.channel"
    )
    got = sql_exact(sql, policy, con, GenerationTables(journey_room.TABLES, salt))
    rows = journey_room.TABLES["alpha.events"], journey_room.TABLES["gamma.events"]
    reference = f"""
        WITH src AS (
            SELECT a.person, a.channel AS k, a._rank AS ra, b._rank AS rb
            FROM wh."{rows[0]}" a JOIN wh."{rows[1]}" b ON a.person = b.person
            WHERE a.channel IN ('app', 'web')
        ),
        rows_kept AS (
            SELECT * FROM src QUALIFY row_number() OVER
            (PARTITION BY person ORDER BY hash(ra, rb, person, $salt), ra, rb) <= 2
        ),
        pairs AS (SELECT person, k, count(*) AS n FROM rows_kept GROUP BY person, k),
        groups_kept AS (
            SELECT * FROM pairs QUALIFY row_number() OVER
            (PARTITION BY person ORDER BY hash(k, person, $salt), k) <= {g}
        )
        SELECT k, sum(n), count(*) FROM groups_kept GROUP BY k
    """
    expected = sorted(con.execute(reference, {"salt": salt}).fetchall())
    assert got == expected
    if g == 1:  # the bound binds: some person lost a group
        unbounded = sql_exact(
            sql, journey_room.policy(k=2, g=2), con, GenerationTables(journey_room.TABLES, salt)
        )
        assert sum(r[2] for r in got) < sum(r[2] for r in unbounded)


def test_identity_resolution_draws_its_salts_from_the_one_helper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A match's rounds and its numbering of persons take their salts from ``selection.salt``."""
    drawn: list[int] = []
    real = selection.salt

    def counted(tables: dict[str, str] | None = None) -> int:
        drawn.append(real(tables))
        return drawn[-1]

    monkeypatch.setattr(selection, "salt", counted)
    con = duckdb.connect()
    con.execute("CREATE TABLE a AS SELECT * FROM (VALUES ('\\x01'::BLOB, '\\x02'::BLOB)) t(x, y)")
    resolve(DuckDBTables(con), [TokenSource("a", ["x", "y"])], person_map="pm")
    assert len(drawn) >= 2  # one round at least, and the numbering
    assert all(0 <= s < 2**SALT_BITS for s in drawn)


PERSON_COUNT = (
    "SELECT a.channel, b.channel AS other, COUNT(DISTINCT a.person) FROM alpha.events AS a"
    " JOIN gamma.events AS b ON a.person = b.person GROUP BY a.channel, b.channel"
)
PERSON_COUNT_SRC = """
    SELECT a.person, a.channel AS k1, b.channel AS k2,
           (list_position(['app', 'web'], a.channel) - 1) * 2
           + list_position(['app', 'web'], b.channel) - 1 AS cell
    FROM wh."{a}" a JOIN wh."{b}" b ON a.person = b.person
    WHERE a.channel IN ('app', 'web') AND b.channel IN ('app', 'web')
"""  # a group's place in the grid: the declared domain's order


def _person_count(con: duckdb.DuckDBPyConnection, g: int, salt: int) -> list[Any]:
    policy = journey_room.policy(k=max(g, 3), g=g)  # k bounds no row: only persons are counted
    assert policy.privacy is not None
    compiled = compile_plan(
        check_sql(PERSON_COUNT, policy=policy, party="alpha"),
        GenerationTables(journey_room.TABLES, salt),
        **bounds(policy.privacy),
    )
    return sorted(con.execute(compiled.sql).fetchall())


def _with_cut(groups_kept: dict[int, set[int]], groups_had: dict[int, set[int]]) -> list[Any]:
    """Rows (k1, k2, persons, kept, cut, persons cut) as the compiled statement gives them."""
    domain = ["app", "web"]
    counts: dict[int, int] = {}
    for cells in groups_kept.values():
        for cell in cells:
            counts[cell] = counts.get(cell, 0) + 1
    kept = sum(len(c) for c in groups_kept.values())
    cut = sum(min(len(groups_had[p]) - len(c), 50) for p, c in groups_kept.items())
    persons = sum(len(groups_had[p]) > len(c) for p, c in groups_kept.items())
    return sorted(
        (domain[cell // 2], domain[cell % 2], n, kept, cut, persons) for cell, n in counts.items()
    )


@pytest.mark.parametrize("g", [1, 2, 3])
def test_a_person_count_over_the_bound_keeps_the_first_groups_of_the_order_it_is_dealt(
    con: duckdb.DuckDBPyConnection, g: int
) -> None:
    """With a person's groups as the bits of one integer, a person over ``g`` is dealt
    order ``d`` (a salted hash of the person) and keeps the ``g`` of its groups of smallest
    (salted hash of (d, group), group): each group's persons and the cut (groups kept,
    groups over ``g``, persons over ``g``) are what that rule gives, person by person."""
    salt = GenerationTables.of({}, SECRET, 5).salt
    got = _person_count(con, g, salt)
    a, b = journey_room.TABLES["alpha.events"], journey_room.TABLES["gamma.events"]
    rows = con.execute(
        f"""SELECT DISTINCT person, cell, hash(person, $salt::BIGINT) & {groups.DEALS - 1},
                   hash(hash(person, $salt::BIGINT) & {groups.DEALS - 1}, cell, $salt::BIGINT)
            FROM ({PERSON_COUNT_SRC.format(a=a, b=b)})""",
        {"salt": salt},
    ).fetchall()
    had: dict[int, set[int]] = {}
    order: dict[int, list[tuple[int, int]]] = {}
    for person, cell, _, rank in rows:
        had.setdefault(person, set()).add(cell)
        order.setdefault(person, []).append((rank, cell))
    kept = {p: {cell for _, cell in sorted(order[p])[:g]} for p in had}
    assert got == _with_cut(kept, had)
    over = [p for p, cells in had.items() if len(cells) > g]
    assert len({r[2] for r in rows if r[0] in over}) > 1  # persons are dealt apart
    if g < 3:  # the bound binds: groups were cut, and some person lost one
        assert got[0][-2] > 0 and got[0][-1] > 0


@pytest.mark.parametrize("g", [1, 2, 3])
def test_a_person_count_beyond_one_integer_keeps_the_groups_a_row_window_keeps(
    con: duckdb.DuckDBPyConnection, g: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With more groups than an integer has bits, the (person, group) pairs keep each
    person's ``g`` groups of smallest (salted hash of the group's number and the person,
    number): the groups a ``dense_rank`` over every row keeps, and the same cut."""
    monkeypatch.setattr(groups, "MASK_CELLS", 0)
    salt = GenerationTables.of({}, SECRET, 5).salt
    got = _person_count(con, g, salt)
    a, b = journey_room.TABLES["alpha.events"], journey_room.TABLES["gamma.events"]
    rows = con.execute(
        f"""SELECT person, cell, dense_rank() OVER
            (PARTITION BY person ORDER BY hash(cell, person, $salt::BIGINT), cell) <= {g}
            FROM ({PERSON_COUNT_SRC.format(a=a, b=b)})""",
        {"salt": salt},
    ).fetchall()
    had: dict[int, set[int]] = {}
    kept: dict[int, set[int]] = {}
    for person, cell, first in rows:
        had.setdefault(person, set()).add(cell)
        kept.setdefault(person, set()).update([cell] if first else [])
    assert got == _with_cut(kept, had)
    if g < 3:
        assert got[0][-2] > 0 and got[0][-1] > 0


@pytest.mark.parametrize("groups_as", ["bits", "pairs"])
def test_a_person_count_the_group_bound_does_not_bind_counts_every_group_exactly(
    con: duckdb.DuckDBPyConnection, groups_as: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``g`` at least the grid's groups nothing is cut: the masks (or, beyond one
    integer's bits, the (person, group) pairs) give each group's exact persons, no
    undeclared key is counted, and no cut is measured."""
    if groups_as == "pairs":
        monkeypatch.setattr(groups, "MASK_CELLS", 0)
    salt = GenerationTables.of({}, SECRET, 6).salt
    sql = (
        "SELECT a.channel, b.channel AS other, COUNT(DISTINCT a.person) FROM alpha.events AS a"
        " JOIN gamma.events AS b ON a.person = b.person GROUP BY a.channel, b.channel"
    )
    policy = journey_room.policy(k=4, g=4)  # 2 x 2 groups: g bounds nothing
    assert policy.privacy is not None
    compiled = compile_plan(
        check_sql(sql, policy=policy, party="alpha"),
        GenerationTables(journey_room.TABLES, salt),
        **bounds(policy.privacy),
    )
    assert compiled.measures.cut is None
    assert ("mask" in compiled.sql) == (groups_as == "bits")
    got = sorted(con.execute(compiled.sql).fetchall())
    a, b = journey_room.TABLES["alpha.events"], journey_room.TABLES["gamma.events"]
    expected = sorted(
        con.execute(f"""
        SELECT a.channel, b.channel, count(DISTINCT a.person)
        FROM wh."{a}" a JOIN wh."{b}" b ON a.person = b.person
        WHERE a.channel IN ('app', 'web') AND b.channel IN ('app', 'web')
        GROUP BY ALL
        """).fetchall()
    )
    assert got == expected
    assert len(expected) == 4 and min(r[2] for r in expected) > 0


@pytest.mark.parametrize("m", [1, 2])
def test_transitions_keep_the_pairs_a_window_keeps(con: duckdb.DuckDBPyConnection, m: int) -> None:
    """Each person keeps the ``m`` pairs of smallest (salted hash, from, to): what a window
    over the person's consecutive events, written independently here, keeps."""
    tables = GenerationTables.of(journey_room.TABLES, SECRET, 6)
    template = prepare_template(
        "transitions",
        {"max_transitions": str(m), "window_days": "365", **journey_room.PERIOD},
        policy=journey_room.policy(),
        party="alpha",
    )
    assert isinstance(template, Journey)
    got = template.exact(DuckDBCursor(con.cursor()), tables)["persons"]
    ids = {b: i for i, b in enumerate(journey_room.BRANDS)}
    events = " UNION ALL ".join(
        f'SELECT person, {ids[b]} AS brand, "at" AS t FROM wh."{table}"'
        f" WHERE \"at\" >= DATE '2026-01-01' AND \"at\" < DATE '2026-07-01'"
        for b in journey_room.BRANDS
        for table in [journey_room.TABLES[f"{b}.events"]]
    )
    reference = f"""
        WITH seq AS (
            SELECT person, brand, lag(brand) OVER w AS a,
                   t - lag(t) OVER w <= INTERVAL 365 DAY AS near
            FROM ({events}) WINDOW w AS (PARTITION BY person ORDER BY t, brand)
        ),
        pairs AS (SELECT DISTINCT person, a, brand AS b FROM seq WHERE a <> brand AND near)
        SELECT a, b, count(*) FROM (
            SELECT * FROM pairs QUALIFY row_number() OVER
            (PARTITION BY person ORDER BY hash(a, b, person, $salt::BIGINT), a, b) <= {m}
        ) GROUP BY a, b
    """
    expected = {
        (journey_room.BRANDS[a], journey_room.BRANDS[b]): n
        for a, b, n in con.execute(reference, {"salt": tables.salt}).fetchall()
    }
    assert got == expected and sum(got.values()) > 0


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT channel, COUNT(*), SUM(amount) FROM beta.events GROUP BY channel",
        "SELECT COUNT(*) FROM alpha.events",
        "SELECT channel, AVG(amount) FROM alpha.events GROUP BY channel",
    ],
)
def test_a_row_bound_by_the_stored_order_discloses_the_cut_each_person_had(
    con: duckdb.DuckDBPyConnection, sql: str
) -> None:
    """One table, no filter: the rows kept, the rows over k (up to the cap a person) and the
    persons with any, counted in one scan over the stored order, are each person's own."""
    policy = journey_room.policy(k=2, g=1)
    assert policy.privacy is not None
    compiled = compile_plan(
        check_sql(sql, policy=policy, party="beta"),
        GenerationTables.of(journey_room.TABLES, SECRET, 2),
        **bounds(policy.privacy),
    )
    assert compiled.measures.cut is not None
    got = con.execute(compiled.sql).fetchall()[0][-3:]
    table = journey_room.TABLES[f"{'beta' if 'beta' in sql else 'alpha'}.events"]
    cap = compiled.measures.cut.cap
    reference = f"""
        SELECT sum(least(n, 2)), sum(least(greatest(n - 2, 0), {cap})), count(*) FILTER (n > 2)
        FROM (SELECT person, count(*) AS n FROM wh."{table}"
              WHERE channel IN ('app', 'web') GROUP BY person)
    """
    assert got == con.execute(reference).fetchone()
    assert got[1] > 0  # whales were cut
