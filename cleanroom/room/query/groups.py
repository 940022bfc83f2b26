"""A person count's bound on groups: each person's ``g`` groups, chosen by the group's number.

Counting only persons (``COUNT(DISTINCT person)`` with no other aggregate),
the compiler bounds no rows but the groups a person counts in
(:func:`top_groups`). A group is known by its number, its place in the
release's grid, so the choice, fixed per match generation by the salt,
hashes and compares integers, never the keys' text.
"""

from __future__ import annotations

from sqlglot import exp

from cleanroom import sql
from cleanroom.room.pipeline import Cut
from cleanroom.room.query.plan import QueryPlan
from cleanroom.room.query.tree import (
    Query,
    alias,
    answer_and_cut,
    column,
    count_star,
    number,
    salted,
    total,
)

MASK_CELLS = 63  # groups one BIGINT of bits holds (bit 63 is its sign)
DEALS = 4096  # orders of the grid a person over the bound is dealt one of (a power of 2)


def top_groups(
    query: Query, plan: QueryPlan, keys: list[str], g: int, salt: int, cut: Cut | None
) -> exp.Select:
    """Persons per group when only persons are counted: each person's ``g`` first groups.

    ``cut`` is None when ``g`` bounds nothing (a person keeps every group):
    then, up to :data:`MASK_CELLS` groups, the same numbered path counts each
    group's persons from the masks with no choice and no cut (2.5x faster than
    the distinct (person, group) pairs at 5M rows, 24 groups).

    A group is known by its number, its place in the release's grid (the keys'
    places in their domains, the last key fastest), and a person over ``g``
    keeps ``g`` of its groups, chosen from its groups alone and the
    generation's salt, so the sensitivity is ``g`` whichever it keeps and the
    choice is the same at every query of the generation. Rows find their places by
    joining each key's declared domain (a table ``key<i>`` of places and
    values), so a row with an undeclared key, or none, has no group and is
    never counted: the compiler leaves this path's rows without the domain
    filter, which the join replaces (a filter and then a ``CASE`` per row
    cost a third more at 5M rows). The number is an integer, so no string
    key is hashed, compared or carried per row; the keys come back from it
    once per group (:func:`_keys_of`). Each person's group count
    ``n`` gives the cut with no second pass: ``min(n, g)`` kept, the excess
    over ``g`` cut, and the person affected when ``n > g``.

    Up to :data:`MASK_CELLS` groups, a person's groups are the bits of one
    BIGINT, and a person over ``g`` keeps the first ``g`` in one of
    :data:`DEALS` random orders of the grid (:func:`_groups_as_bits`);
    beyond, their distinct (person, group) pairs, and the ``g`` of smallest
    salted hash of (group, person) (:func:`_groups_as_pairs`). Either way a
    person's choice is a uniformly random order's first ``g``; the orders a
    generation deals from are fewer in the first, which moves no count by more
    than the bound's own bias does (``bench/group_window.py`` measures both).
    """
    numbered = exp.select(column("person", "src")).from_("src")
    cell: exp.Expr | None = None
    for i, (key, name) in enumerate(zip(plan.group_by, keys, strict=True)):
        table = f"key{i}"
        rows = [exp.tuple_(number(j), sql.literal(v)) for j, v in enumerate(key.domain)]
        names = [sql.identifier("place"), sql.identifier("value")]
        domain = exp.Values(expressions=rows, alias=exp.TableAlias(this="d", columns=names))
        query.add(table, exp.select("*").from_(domain))
        on = exp.EQ(this=column(name, "src"), expression=column("value", table))
        numbered = numbered.join(exp.Join(this=exp.to_table(table), on=on), copy=False)
        place: exp.Expr = column("place", table)
        if cell is not None:
            times = exp.Mul(this=exp.paren(cell, copy=False), expression=number(len(key.domain)))
            place = exp.Add(this=times, expression=place)
        cell = place
    assert cell is not None  # a person count bounded by groups has keys
    query.add("numbered", numbered.select(alias(cell, "cell"), copy=False))
    if plan.key_count <= MASK_CELLS:
        _groups_as_bits(query, plan.key_count, g if cut else None, salt)
    else:
        assert cut is not None  # unbounded beyond one integer's bits: the compiler's pairs
        _groups_as_pairs(query, g, salt)
    if cut is None:
        return query.build(_keys_of(plan, keys))
    query.add("answer", _keys_of(plan, keys))
    # ``sizes`` (n, persons): how many persons have n groups, which is all the cut needs.
    n, most, persons = column("n"), number(g), column("persons")

    def weighted(value: exp.Expr) -> exp.Expr:
        return exp.Sum(this=exp.Mul(this=persons.copy(), expression=value))

    excess = exp.func("greatest", exp.Sub(this=n.copy(), expression=most.copy()), number(0))
    over = exp.Case(
        ifs=[exp.If(this=exp.GT(this=n.copy(), expression=most.copy()), true=number(1))]
    )
    totals = exp.select(
        total(weighted(exp.func("least", n.copy(), most.copy())), "c_kept"),
        total(weighted(exp.func("least", excess, number(cut.cap))), "c_cut"),
        total(weighted(over.else_(number(0))), "c_persons"),
    ).from_("sizes")
    query.add("cut_totals", totals)
    return query.build(answer_and_cut())


def _first_groups(source: str, g: int, salt: int) -> exp.Select:
    """Per person of ``source`` (person, cell): the ``g`` smallest (salted hash, cell).

    ``min(struct, g)`` compares the structs field by field; Spark writes it as
    the sorted first ``g`` of the collected list (``backends/dialect.py``).
    """
    fields = [
        exp.PropertyEQ(this=sql.identifier("h"), expression=salted(["cell"], salt)[0]),
        exp.PropertyEQ(this=sql.identifier("cell"), expression=column("cell")),
    ]
    first = exp.Min(this=exp.Struct(expressions=fields), count=number(g))
    return exp.select(alias(first, "top_groups")).from_(source).group_by(column("person"))


def _kept(query: Query, source: str, name: str) -> None:
    """``name``: (cell, m), the persons who keep each group among ``source``'s choices."""
    top = "top_groups"
    query.add(f"{name}_each", exp.select(alias(exp.Explode(this=column(top)), top)).from_(source))
    kept = exp.select(alias(column("cell", top), "cell"), alias(count_star(), "m"))
    query.add(name, kept.from_(f"{name}_each").group_by(column("cell", top), copy=False))


def _groups_as_pairs(query: Query, g: int, salt: int) -> None:
    """``counted`` (cell, m) and ``sizes`` from each person's distinct (person, cell) pairs.

    A person keeps the ``g`` groups of smallest (salted hash of the group's
    number and the person, number): one aggregation per person.
    """
    pairs = exp.select(column("person"), column("cell")).from_("numbered")
    query.add("pairs", pairs.group_by(column("person"), column("cell"), copy=False))
    query.add("per_person", _first_groups("pairs", g, salt).select(alias(count_star(), "n")))
    _kept(query, "per_person", "counted")
    sizes = exp.select(column("n"), alias(count_star(), "persons")).from_("per_person")
    query.add("sizes", sizes.group_by(column("n"), copy=False))


def _groups_as_bits(query: Query, cells: int, g: int | None, salt: int) -> None:
    """``counted`` (cell, m) and ``sizes`` from each person's groups as the bits of one BIGINT.

    Group ``cell`` is bit ``cell``: one aggregation per person (``bit_or``)
    gives every group a person has and ``bit_count`` how many, with no
    (person, group) pairs, and everything after counts distinct masks, far
    fewer than persons. A person over ``g`` is dealt one of :data:`DEALS`
    orders of the grid by a salted hash of the person (order ``d`` lists the
    groups by the salted hash of (d, group)) and keeps the ``g`` of its
    groups that order lists first: group ``cell`` is kept when fewer than
    ``g`` of the person's groups come before it, ``bit_count(mask & before)``
    below ``g``, ``before`` being the bits of the groups order ``d`` lists
    ahead of ``cell`` (a running ``bit_or`` over the order: at most
    ``DEALS`` × groups rows). So nothing is spelled out per person. With
    ``g`` None every person keeps every group.
    """
    one = exp.cast(number(1), exp.DataType.build("BIGINT"))
    bit = exp.BitwiseLeftShift(this=one, expression=column("cell"))
    bits = exp.select(column("person"), alias(exp.BitwiseOrAgg(this=bit), "mask")).from_("numbered")
    query.add("bits", bits.group_by(column("person"), copy=False))
    numbers = exp.Values(
        expressions=[exp.tuple_(number(i)) for i in range(cells)],
        alias=exp.TableAlias(this="c", columns=[sql.identifier("cell")]),
    )
    query.add("cells", exp.select("*").from_(numbers))
    has = exp.EQ(
        this=exp.BitwiseAnd(
            this=exp.paren(exp.BitwiseRightShift(this=column("mask"), expression=column("cell"))),
            expression=number(1),
        ),
        expression=number(1),
    )
    counted = exp.select(column("cell"), alias(exp.Sum(this=column("persons")), "m"))
    if g is None:
        masks = exp.select(column("mask"), alias(count_star(), "persons")).from_("bits")
        query.add("masks", masks.group_by(column("mask"), copy=False))
        counted = counted.from_("masks").join(exp.Join(this=exp.to_table("cells"), kind="CROSS"))
        query.add("counted", counted.where(has).group_by(column("cell")))
        return
    n = exp.func("bit_count", column("mask"))
    dealt = exp.BitwiseAnd(
        this=exp.Anonymous(this="hash", expressions=[column("person"), sql.bigint(salt)]),
        expression=number(DEALS - 1),
    )
    over = exp.GT(this=n.copy(), expression=number(g))
    deal = exp.Case(ifs=[exp.If(this=over, true=exp.paren(dealt))], default=number(0))
    masks = exp.select(
        alias(deal, "deal"), column("mask"), alias(n, "n"), alias(count_star(), "persons")
    ).from_("bits")
    query.add("masks", masks.group_by(exp.column("deal"), column("mask"), copy=False))
    query.add("dealt", exp.select(column("deal")).distinct().from_("masks"))
    rank = exp.Anonymous(
        this="hash", expressions=[column("deal"), column("cell"), sql.bigint(salt)]
    )
    running = exp.Window(
        this=exp.BitwiseOrAgg(this=bit.copy()),
        partition_by=[column("deal")],
        order=exp.Order(expressions=[exp.Ordered(this=rank), exp.Ordered(this=column("cell"))]),
        over="OVER",
    )
    ahead = exp.select(
        column("deal"),
        column("cell"),
        alias(exp.BitwiseXor(this=running, expression=bit), "before"),
    )  # the groups up to this one in order d, less this one
    query.add(
        "ahead", ahead.from_("dealt").join(exp.Join(this=exp.to_table("cells"), kind="CROSS"))
    )
    first = exp.func("bit_count", exp.BitwiseAnd(this=column("mask"), expression=column("before")))
    on = exp.EQ(this=column("deal", "ahead"), expression=column("deal", "masks"))
    counted = counted.from_("masks").join(exp.Join(this=exp.to_table("ahead"), on=on))
    kept = exp.and_(has, exp.LT(this=first, expression=number(g)))
    query.add("counted", counted.where(kept).group_by(column("cell")))
    sizes = exp.select(column("n"), alias(exp.Sum(this=column("persons")), "persons"))
    query.add("sizes", sizes.from_("masks").group_by(column("n")))


def _keys_of(plan: QueryPlan, keys: list[str]) -> exp.Select:
    """``answer``: each counted group's keys (from its number) and its persons.

    A key's place is ``cell // (size of the later domains) % (size of its own)``,
    looked up in the key's domain table.
    """
    answer = exp.select().from_("counted")
    values = []
    later = plan.key_count
    for i, key in enumerate(plan.group_by):
        table = f"key{i}"
        later //= len(key.domain)
        whole = exp.paren(exp.IntDiv(this=column("cell"), expression=number(later)))
        place = exp.paren(exp.Mod(this=whole, expression=number(len(key.domain))))
        on = exp.EQ(this=column("place", table), expression=place)
        answer = answer.join(exp.Join(this=exp.to_table(table), on=on), copy=False)
        values.append(column("value", table))
    named = [alias(v.copy(), name) for v, name in zip(values, keys, strict=True)]
    answer = answer.select(*named, total(exp.Sum(this=column("m")), "m_persons"), copy=False)
    return answer.group_by(*values, copy=False)
