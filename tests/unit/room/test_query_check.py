"""The restricted-SQL gate, tested by a corpus of queries and by properties.

``tests/fixtures/queries/allowed/*.sql`` must check; each file of
``rejected/*.sql`` starts with ``-- rule: <id>`` and must be refused by exactly
that rule. A ``-- party: <id>`` header line says who asks (default okala). The
header lines are stripped before checking, so the comment rule applies to the
rest.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom.room.policy import load_policy, parse_policy
from cleanroom.room.policy.models import CollaborationPolicy
from cleanroom.room.query.check import MAX_GROUPS, QueryRejected, check_sql
from cleanroom.room.query.parse import MAX_SQL_CHARS
from cleanroom.room.query.plan import (
    Aggregate,
    BoolOp,
    ColumnRef,
    Comparison,
    GroupKey,
    QueryPlan,
    TableRef,
)
from cleanroom.text import quoted

CORPUS = Path(__file__).parents[2] / "fixtures" / "queries"
POLICY_FILE = CORPUS / "policy.yaml"
POLICY = load_policy(POLICY_FILE)[0]
ALLOWED = sorted((CORPUS / "allowed").glob("*.sql"))
REJECTED = sorted((CORPUS / "rejected").glob("*.sql"))
HEADER = re.compile(r"^-- (rule|party): (\S+)\s*$")

# Every rule the gate is specified to have; each must be exercised below.
SPECIFIED_RULES = {
    "select_star", "row_level_output", "join_not_on_person", "unknown_table",
    "table_not_allowed", "column_not_allowed", "stored_column", "group_by_not_dimension",
    "domain_value_undeclared", "subquery", "cte", "set_operation", "window_function",
    "unknown_function", "multiple_statements", "comment", "not_select", "person_in_output",
    "identifier_column", "join_required", "free_sql_disabled", "syntax", "order_or_limit",
    "having", "distinct_select", "too_many_groups", "constant_predicate",
}  # fmt: skip
RULES_TESTED_OUTSIDE_THE_CORPUS = {"free_sql_disabled", "too_many_groups"}


def read_case(path: Path) -> tuple[dict[str, str], str]:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    header: dict[str, str] = {}
    while lines and (match := HEADER.match(lines[0])):
        header[match[1]] = match[2]
        lines.pop(0)
    return header, "".join(lines)


def check(sql: str, party: str = "okala", policy: CollaborationPolicy = POLICY) -> QueryPlan:
    return check_sql(sql, policy=policy, party=party)


def rule_of(sql: str, party: str = "okala", policy: CollaborationPolicy = POLICY) -> str:
    with pytest.raises(QueryRejected) as err:
        check(sql, party, policy)
    return err.value.rule


def policy_with(change: Any) -> CollaborationPolicy:
    data = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    change(data)
    return parse_policy(data)


# --- the corpus --------------------------------------------------------------------------


def test_the_corpus_covers_every_specified_rule() -> None:
    assert len(ALLOWED) >= 12
    assert len(REJECTED) >= 40
    corpus_rules = {read_case(path)[0]["rule"] for path in REJECTED}
    assert not SPECIFIED_RULES - RULES_TESTED_OUTSIDE_THE_CORPUS - corpus_rules


@pytest.mark.parametrize("path", ALLOWED, ids=lambda p: p.stem)
def test_allowed_queries_check(path: Path) -> None:
    header, sql = read_case(path)
    assert set(header) <= {"party"}
    party = header.get("party", "okala")
    plan = check(sql, party)
    assert plan.aggregates
    assert plan.canonical
    # The canonical text is itself restricted SQL, and checking it changes nothing.
    assert check(plan.canonical, party).canonical == plan.canonical


@pytest.mark.parametrize("path", REJECTED, ids=lambda p: p.stem)
def test_rejected_queries_name_their_rule(path: Path) -> None:
    header, sql = read_case(path)
    assert "rule" in header, f"{path.name} must start with '-- rule: <id>'"
    with pytest.raises(QueryRejected) as err:
        check(sql, header.get("party", "okala"))
    assert err.value.rule == header["rule"], err.value.message
    assert err.value.code == "query_rejected"
    assert err.value.status == 400
    assert err.value.message
    assert str(err.value) == err.value.message


# --- plans -------------------------------------------------------------------------------

CITIES = ("tehran", "mashhad", "isfahan", "shiraz", "tabriz")


def allowed(name: str) -> QueryPlan:
    header, sql = read_case(CORPUS / "allowed" / f"{name}.sql")
    return check(sql, header.get("party", "okala"))


def test_plan_of_a_grouped_count() -> None:
    plan = allowed("count_by_city")
    assert plan.tables == (TableRef("okala", "orders", "orders"),)
    assert plan.group_by == (GroupKey(ColumnRef("orders", "city"), CITIES, "city"),)
    assert plan.aggregates == (Aggregate("count", "count"),)
    assert plan.where is None
    assert plan.key_count == 5


def test_plan_of_a_join() -> None:
    plan = allowed("join_overlap")
    assert plan.tables == (
        TableRef("okala", "orders", "o"),
        TableRef("ofogh", "purchases", "p"),
    )
    assert [(k.column, k.output) for k in plan.group_by] == [
        (ColumnRef("o", "city"), "city"),
        (ColumnRef("p", "category"), "category"),
    ]
    assert plan.group_by[1].domain == ("fashion", "electronics", "home", "beauty")
    assert plan.aggregates == (Aggregate("count_persons", "shoppers", ColumnRef("o", "person")),)
    assert plan.key_count == 20


def test_where_narrows_the_released_keys_in_declared_order() -> None:
    plan = allowed("where_in_narrows_domain")
    city, channel = plan.group_by
    assert city.domain == ("tehran", "shiraz")  # declared order, not the IN list's
    assert channel.domain == ("app", "web")  # != removes a value
    assert plan.where == BoolOp(
        "and",
        (
            Comparison(ColumnRef("orders", "city"), "in", ("shiraz", "tehran")),
            Comparison(ColumnRef("orders", "channel"), "!=", ("phone",)),
        ),
    )


def test_narrowing_only_from_top_level_conjuncts() -> None:
    plan = check(
        "SELECT city, COUNT(*) FROM okala.orders WHERE city = 'tehran' OR amount > 5 GROUP BY city"
    )
    assert plan.group_by[0].domain == CITIES


def test_time_literals_are_normalized_per_column_type() -> None:
    plan = allowed("time_range")
    assert plan.where == BoolOp(
        "and",
        (
            Comparison(
                ColumnRef("orders", "ordered_at"),
                "between",
                ("2025-01-01 00:00:00", "2025-03-31 23:59:59"),
            ),
            Comparison(ColumnRef("orders", "ordered_at"), "is not null"),
        ),
    )
    dates = allowed("ofogh_joins_okala").where
    assert isinstance(dates, BoolOp)
    assert dates.items[1] == Comparison(ColumnRef("p", "purchased_at"), "<", ("2025-07-01",))


def test_output_names_positional_group_by_and_bounds() -> None:
    plan = allowed("lower_case_positional_group")
    assert plan.group_by[0].output == "ch"
    assert plan.group_by[0].column == ColumnRef("orders", "channel")
    assert plan.aggregates == (
        Aggregate("sum", "revenue", ColumnRef("orders", "amount"), (0, 5_000_000)),
        Aggregate("avg", "avg_amount", ColumnRef("orders", "amount"), (0, 5_000_000)),
    )


def test_default_output_names_are_made_unique() -> None:
    plan = check(
        "SELECT SUM(o.amount), SUM(p.amount), COUNT(*) AS sum_amount_2, COUNT(*) "
        "FROM okala.orders o JOIN ofogh.purchases p ON o.person = p.person"
    )
    assert [a.output for a in plan.aggregates] == [
        "sum_amount",
        "sum_amount_3",
        "sum_amount_2",
        "count",
    ]


def test_a_grouped_key_not_selected_is_still_released_by_name() -> None:
    plan = allowed("group_key_not_selected")
    assert plan.group_by[0].output == "channel"


def test_unaliased_tables_with_the_same_dataset_name_get_unique_aliases() -> None:
    def add_orders(data: dict[str, Any]) -> None:
        data["parties"]["ofogh"]["datasets"]["orders"] = {
            "identifiers": {"phone": "phone"},
            "columns": {"size": {"type": "integer", "domain": [1, 2, 3]}},
        }
        data["parties"]["ofogh"]["analysts"]["tables"].append("ofogh.orders")

    policy = policy_with(add_orders)
    plan = check(
        "SELECT okala.orders.city, ofogh.orders.size, COUNT(*) "
        "FROM okala.orders JOIN ofogh.orders ON okala.orders.person = ofogh.orders.person "
        "GROUP BY 1, 2",
        "ofogh",
        policy,
    )
    assert [t.alias for t in plan.tables] == ["orders", "ofogh_orders"]
    assert [k.column for k in plan.group_by] == [
        ColumnRef("orders", "city"),
        ColumnRef("ofogh_orders", "size"),
    ]
    assert (
        rule_of(
            "SELECT orders.city, COUNT(*) FROM okala.orders "
            "JOIN ofogh.orders ON okala.orders.person = ofogh.orders.person GROUP BY 1",
            "ofogh",
            policy,
        )
        == "ambiguous_column"
    )


# --- rules that need another policy, or no file -------------------------------------------


def test_free_sql_can_be_switched_off() -> None:
    policy = policy_with(lambda d: d["parties"]["ofogh"]["analysts"].update(free_sql=False))
    assert rule_of("SELECT COUNT(*) FROM ofogh.purchases", "ofogh", policy) == "free_sql_disabled"


def test_join_required_can_be_switched_off() -> None:
    sql = "SELECT COUNT(*) FROM ofogh.purchases"
    assert rule_of(sql) == "join_required"
    policy = policy_with(lambda d: d["parties"]["okala"].update(analysts={"join_required": False}))
    assert check(sql, policy=policy).tables == (TableRef("ofogh", "purchases", "purchases"),)


def test_unknown_party() -> None:
    assert rule_of("SELECT COUNT(*) FROM okala.orders", "mallory") == "unknown_party"


def test_too_many_groups() -> None:
    def big_domains(data: dict[str, Any]) -> None:
        orders = data["parties"]["okala"]["datasets"]["orders"]["columns"]
        orders["weekday"]["domain"] = list(range(400))
        orders["channel"]["domain"] = [f"c{i}" for i in range(300)]

    policy = policy_with(big_domains)
    sql = "SELECT weekday, channel, COUNT(*) FROM okala.orders {} GROUP BY weekday, channel"
    with pytest.raises(QueryRejected) as err:
        check(sql.format(""), policy=policy)
    assert err.value.rule == "too_many_groups"
    assert "120,000" in err.value.message and f"{MAX_GROUPS:,}" in err.value.message
    # Restricting a dimension in WHERE brings the release under the limit.
    plan = check(sql.format("WHERE weekday IN (1, 2, 3)"), policy=policy)
    assert plan.key_count == 900


def test_too_long_and_too_deep() -> None:
    long = "SELECT COUNT(*) FROM okala.orders WHERE " + " OR ".join(["city = 'tehran'"] * 700)
    assert len(long) > MAX_SQL_CHARS
    assert rule_of(long) == "too_long"
    deep = "SELECT COUNT(*) FROM okala.orders WHERE " + "(" * 200 + "amount > 1" + ")" * 200
    assert rule_of(deep) == "too_complex"
    nots = "SELECT COUNT(*) FROM okala.orders WHERE " + "NOT " * 2000 + "amount > 1"
    assert rule_of(nots) == "too_complex"


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("SELECT COUNT(*) FROM okala.orders\x00; DROP TABLE x", "syntax"),
        ("SELECT COUNT(*) FROM okala.orders WHERE city = 'teh\u2028ran'", "syntax"),
        ("SELECT COUNT(*) FROM okala.orders WHERE city = 'tehran\x1b[2J'", "syntax"),
        ("SELECT COUNT(*) FROM okala.orders WHERE ordered_at > TIMESTAMPTZ '2025-01-01'",
         "bad_literal"),
        ("SELECT COUNT(*) FROM okala.orders WHERE weekday = '1'", "literal_type"),
        ("SELECT COUNT(*) FROM okala.orders WHERE city = 'Tehran'", "domain_value_undeclared"),
        ("SELECT COUNT(*) FROM okala.orders o JOIN ofogh.purchases p "
         "ON o.person IS NOT DISTINCT FROM p.person", "join_not_on_person"),
        ("SELECT COUNT(*) FROM okala.orders FOR UPDATE", "unsupported_clause"),
        ("SELECT COUNT(*) INTO leak FROM okala.orders", "not_select"),
        ("EXPLAIN SELECT COUNT(*) FROM okala.orders", "not_select"),
    ],
)  # fmt: skip
def test_more_hostile_spellings(sql: str, rule: str) -> None:
    assert rule_of(sql) == rule


def test_harmless_spellings() -> None:
    bom = check("\ufeffSELECT COUNT(*) FROM okala.orders")
    assert bom.canonical == 'SELECT COUNT(*) AS "count" FROM okala.orders'
    many = " AND ".join(f"amount > {i}" for i in range(300))  # long, but flat
    assert check(f"SELECT COUNT(*) FROM okala.orders WHERE {many}").where is not None
    plan = allowed("three_way_join")
    assert [t.name for t in plan.tables] == ["okala.orders", "okala.visits", "ofogh.purchases"]
    assert plan.where == BoolOp(
        "and",
        (
            Comparison(ColumnRef("v", "visited_at"), ">=", ("2025-01-01 00:00:00",)),
            Comparison(ColumnRef("p", "member"), "=", (False,)),
        ),
    )
    assert plan.canonical.startswith(
        'SELECT okala.visits.page AS "page", COUNT(DISTINCT ofogh.purchases.person) AS "persons"'
    )


def test_messages_name_the_offending_piece() -> None:
    with pytest.raises(QueryRejected) as err:
        check("SELECT SUM(amount) FROM okala.orders GROUP BY amount")
    assert err.value.message == (
        "GROUP BY amount: amount is a metric; group only by dimensions "
        "(city, category, channel, weekday)"
    )
    with pytest.raises(QueryRejected) as err:
        check("SELECT city, COUNT(*)\nFROM okala.orders\nWHERE city = = 'x'")
    assert err.value.rule == "syntax"
    assert err.value.message.startswith("line 3, column 14: ")
    assert "<" not in err.value.message  # no parser internals
    with pytest.raises(QueryRejected) as err:
        check("SELECT COUNT(*) FROM okala.orders WHERE city = 'karaj'")
    assert f"{quoted('karaj')} is not a declared value of city" in err.value.message
    with pytest.raises(QueryRejected) as err:
        check(
            "SELECT o.channel, COUNT(*) FROM okala.orders o "
            "JOIN ofogh.purchases p ON o.person = p.person GROUP BY o.channel",
            "ofogh",
        )
    assert "okala.orders.channel" in err.value.message
    assert "(allowed: person, ordered_at, city, amount)" in err.value.message


def test_canonical_ignores_trivial_rewrites() -> None:
    a = check(
        "SELECT o.city, COUNT(*) FROM okala.orders o JOIN ofogh.purchases p "
        "ON o.person = p.person WHERE o.city IN ('tehran', 'shiraz') AND p.amount > 10 "
        "GROUP BY o.city"
    )
    b = check(
        "select   X.CITY, count(*)\nfrom okala.orders as x inner join ofogh.purchases y "
        "on (y.person = x.person)\nwhere (10 < y.amount) and x.city in ('shiraz','tehran') "
        "group by 1"
    )
    assert a.canonical == b.canonical
    c = check(
        "SELECT o.city, COUNT(*) FROM okala.orders o JOIN ofogh.purchases p "
        "ON o.person = p.person WHERE o.city IN ('tehran', 'shiraz') AND p.amount >= 10 "
        "GROUP BY o.city"
    )
    assert c.canonical != a.canonical


# --- properties --------------------------------------------------------------------------

ALIAS = st.from_regex(r"[a-z]{1,5}_[a-z0-9]{0,3}", fullmatch=True)


@dataclass(frozen=True)
class Atom:
    """One predicate of the grammar; ``{o}``/``{p}`` stand for the table qualifiers."""

    column: str
    op: str
    values: tuple[str, ...] = ()


ATOMS = [
    Atom("{o}.city", "in", ("'tehran'", "'shiraz'", "'tabriz'")),
    Atom("{o}.channel", "=", ("'app'",)),
    Atom("{o}.amount", ">", ("1000",)),
    Atom("{o}.amount", "<=", ("2500000",)),
    Atom("{o}.weekday", "not in", ("6", "7")),
    Atom("{o}.ordered_at", ">=", ("DATE '2025-01-01'", "'2025-01-01'", "'2025-01-01 00:00'")),
    Atom("{o}.category", "between", ("'bakery'", "'grocery'")),
    Atom("{o}.city", "is not null"),
]
JOIN_ATOMS = [
    Atom("{p}.category", "in", ("'home'", "'beauty'")),
    Atom("{p}.purchased_at", "<", ("DATE '2025-06-01'", "'2025-06-01'")),
    Atom("{p}.member", "=", ("TRUE",)),
]
FLIP = {">": "<", "<": ">", ">=": "<=", "<=": ">=", "=": "="}


@dataclass(frozen=True)
class Spec:
    join: bool
    keys: tuple[str, ...]
    aggregates: tuple[str, ...]
    where: tuple[tuple[Atom, ...], ...]  # AND of ORs of atoms


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    join = draw(st.booleans())
    dims = ["{o}.city", "{o}.channel", "{o}.weekday"] + (["{p}.category"] if join else [])
    keys = draw(st.lists(st.sampled_from(dims), unique=True, max_size=2))
    aggs = ["COUNT(*)", "COUNT(DISTINCT {o}.person)", "SUM({o}.amount)"]
    aggs += ["AVG({p}.amount)"] if join else []
    aggregates = draw(st.lists(st.sampled_from(aggs), unique=True, min_size=1, max_size=3))
    atoms = ATOMS + (JOIN_ATOMS if join else [])
    clause = st.lists(st.sampled_from(atoms), unique=True, min_size=1, max_size=2)
    where = draw(st.lists(clause.map(tuple), max_size=3))
    return Spec(join, tuple(keys), tuple(aggregates), tuple(where))


@dataclass(frozen=True)
class Style:
    aliases: tuple[str | None, str | None]
    upper: bool
    spaces: tuple[str, ...]
    rng: random.Random


styles = st.builds(
    Style,
    aliases=st.one_of(
        st.just((None, None)),
        st.tuples(ALIAS, ALIAS).filter(lambda pair: pair[0] != pair[1]),
    ),
    upper=st.booleans(),
    spaces=st.lists(st.sampled_from([" ", "  ", "\n", "\t", " \n  "]), min_size=1).map(tuple),
    rng=st.randoms(use_true_random=False),
)


def render(spec: Spec, style: Style) -> str:
    """One spelling of ``spec``: aliases, case, white space, orders and parentheses vary."""
    rng = style.rng
    o_alias, p_alias = style.aliases

    def ws() -> str:
        return rng.choice(style.spaces)

    def kw(word: str) -> str:
        return word.upper() if style.upper else word.lower()

    o = o_alias or rng.choice(["orders", "okala.orders"])
    p = p_alias or rng.choice(["purchases", "ofogh.purchases"])

    def fill(text: str) -> str:
        return text.format(o=o, p=p)

    def atom(a: Atom) -> str:
        column = fill(a.column)
        if a.op in ("in", "not in"):
            values = list(a.values)
            rng.shuffle(values)
            text = f"{column}{ws()}{kw(a.op)}{ws()}({', '.join(values)})"
        elif a.op == "between":
            text = f"{column} {kw('between')} {a.values[0]} {kw('and')} {a.values[1]}"
        elif a.op == "is not null":
            text = f"{column} {kw('is not null')}"
        else:
            value = rng.choice(a.values)  # equivalent spellings of one literal
            if rng.random() < 0.5:
                text = f"{column}{ws()}{a.op}{ws()}{value}"
            else:
                text = f"{value}{ws()}{FLIP[a.op]}{ws()}{column}"
        return f"({text})" if rng.random() < 0.3 else text

    def clause(atoms: tuple[Atom, ...]) -> str:
        parts = [atom(a) for a in atoms]
        rng.shuffle(parts)
        text = f"{ws()}{kw('or')}{ws()}".join(parts)
        return f"({text})" if len(parts) > 1 or rng.random() < 0.3 else text

    items = [fill(k) for k in spec.keys] + [fill(a) for a in spec.aggregates]
    sql = f"{kw('select')}{ws()}{f',{ws()}'.join(items)}{ws()}{kw('from')} okala.orders"
    if o_alias:
        sql += f" {kw('as ') if rng.random() < 0.5 else ''}{o_alias}"
    if spec.join:
        sql += f"{ws()}{rng.choice([kw('join'), kw('inner join')])} ofogh.purchases"
        if p_alias:
            sql += f" {p_alias}"
        pair = [f"{o}.person", f"{p}.person"]
        rng.shuffle(pair)
        sql += f"{ws()}{kw('on')} {pair[0]} = {pair[1]}"
    if spec.where:
        clauses = [clause(c) for c in spec.where]
        rng.shuffle(clauses)
        sql += f"{ws()}{kw('where')}{ws()}" + f"{ws()}{kw('and')}{ws()}".join(clauses)
    if spec.keys:
        keys = [fill(k) for k in spec.keys]
        rng.shuffle(keys)
        sql += f"{ws()}{kw('group by')} {', '.join(keys)}"
    return sql + rng.choice(["", ";", " ;\n"])


@settings(max_examples=150, deadline=None)
@given(spec=specs(), first=styles, second=styles)
def test_trivially_rewritten_queries_share_their_canonical_text(
    spec: Spec, first: Style, second: Style
) -> None:
    a, b = render(spec, first), render(spec, second)
    try:
        plan = check(a)
    except QueryRejected as err:
        # Contradictory filters (city = 'tehran' AND city IN (...) without it) are refused.
        assert err.rule == "empty_result", (a, err.message)
        assert rule_of(b) == "empty_result"
        return
    assert check(b).canonical == plan.canonical, (a, b)
    assert check(plan.canonical).canonical == plan.canonical


FRAGMENTS = [
    "'", '"', ";", "--", "/*", "*/", "$$", "\\", "(", ")", "::", "?", "$1", "\x00", "E'",
    " SELECT ", " FROM ", " okala.orders ", " ofogh.purchases ", " WHERE ", " GROUP BY ",
    " JOIN ", " ON ", " UNION ", " COUNT(*) ", " COUNT(DISTINCT person) ", " city ",
    " = ", " 'tehran' ", " IN ", " AND ", " OR ", " NOT ", " DROP TABLE x", " read_csv('/') ",
    " ATTACH ", " COPY ", " PRAGMA ", " ||", " \u043e", "1e999", " -- x\n", " person ",
]  # fmt: skip
BODIES = [read_case(path)[1] for path in ALLOWED]


@st.composite
def hostile(draw: st.DrawFn) -> str:
    pieces = draw(st.lists(st.one_of(st.text(max_size=12), st.sampled_from(FRAGMENTS))))
    if draw(st.booleans()):
        body = draw(st.sampled_from(BODIES))
        at = draw(st.integers(0, len(body)))
        return body[:at] + "".join(pieces) + body[at:]
    return "".join(pieces)


@settings(max_examples=300, deadline=None)
@given(sql=st.one_of(hostile(), st.text()))
def test_hostile_text_is_only_ever_rejected(sql: str) -> None:
    try:
        plan = check(sql)
    except QueryRejected as err:
        assert err.rule and err.message
        return
    assert check(plan.canonical).canonical == plan.canonical


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("'1405-01-15'", "2026-04-04 00:00:00"),
        ("'۱۴۰۵/۰۱/۱۵'", "2026-04-04 00:00:00"),
        ("'1404/12/29 10:30'", "2026-03-20 10:30:00"),
        ("DATE '1403-12-30'", "2025-03-20 00:00:00"),  # 1403 is a leap year
        ("'2025-01-31'", "2025-01-31 00:00:00"),
    ],
)
def test_solar_hijri_literals_are_converted_exactly(literal: str, expected: str) -> None:
    plan = check(f"SELECT COUNT(*) FROM okala.orders WHERE ordered_at >= {literal}")
    assert plan.where == Comparison(ColumnRef("orders", "ordered_at"), ">=", (expected,))


def test_solar_hijri_and_gregorian_spellings_share_their_canonical_text() -> None:
    sql = "SELECT COUNT(*) FROM okala.orders WHERE ordered_at >= {}"
    assert (
        check(sql.format("'۱۴۰۵/۰۱/۱۵'")).canonical == check(sql.format("'2026-04-04'")).canonical
    )


@pytest.mark.parametrize(
    ("literal", "reason"),
    [
        ("'1404-12-30'", "no such day"),  # 1404 is a common year: Esfand has 29 days
        ("'1405-13-01'", "no such day"),
        ("'2025-02-29'", "Gregorian date"),
        ("'1405-01-15 10:00'", "not a date"),  # a timestamp for a date column
        ("'1405-xx-15'", "not a date"),
    ],
)
def test_impossible_solar_hijri_literals_are_refused_with_the_reason(
    literal: str, reason: str
) -> None:
    column = "purchased_at"  # a date column
    sql = f"SELECT COUNT(*) FROM ofogh.purchases WHERE {column} >= {literal}"
    with pytest.raises(QueryRejected) as err:
        check(sql, party="ofogh")
    assert err.value.rule == "bad_date"
    assert reason in str(err.value)
