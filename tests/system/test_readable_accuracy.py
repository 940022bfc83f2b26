"""Readable accuracy over HTTP and on the command line: flags, rounding, ranges, rules said.

One generated group in a live room. The API's cells carry ``mostly_noise``,
``step`` and ``display`` beside the raw value; an average whose noise covers
its range reads as that range; withheld groups and join_required are named as
rules; ``cleanroom query`` prints the same, with a legend, in either language.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from cleanroom.room.state import Room
from tests.system.world import LiveServer, World, build_world, open_room, run_cli

SQL = (
    "SELECT city, channel, COUNT(DISTINCT person) AS buyers, AVG(amount) AS basket "
    "FROM okala.orders GROUP BY city, channel"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("readable"), persons=1_200, seed=41)


@pytest.fixture(scope="module")
def live(world: World) -> Iterator[LiveServer]:
    room: Room = open_room(world.room_dir)
    with LiveServer(room) as server:
        for (party, _), bundle in sorted(world.bundles.items()):
            r = call(server, world.tokens[f"{party}_admin"], "POST", "/api/v1/datasets", bundle)
            assert r.status_code == 201, r.text
        assert (
            call(server, world.tokens["room_admin"], "POST", "/api/v1/matches").status_code == 201
        )
        yield server
    room.close()


def call(
    server: LiveServer, token: str, method: str, path: str, body: Any = None, **kw: Any
) -> httpx.Response:
    content = body.read_bytes() if body is not None else None
    return httpx.request(
        method,
        server.url + path,
        headers={"Authorization": f"Bearer {token}"},
        content=content,
        timeout=120,
        **kw,
    )


def cells(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for row in result["rows"] for c in row.values() if isinstance(c, dict)]


def check_cell(cell: dict[str, Any]) -> None:
    """The fields every released cell carries, consistent with its raw value and bound."""
    assert set(cell) >= {"value", "mostly_noise", "step", "display"}
    value, error = cell["value"], cell.get("error95")
    if value is not None and error is not None:
        assert cell["mostly_noise"] is (abs(value) <= error)
    else:
        assert cell["mostly_noise"] is False
    step = Decimal(repr(cell["step"]))
    if error:  # two significant digits of the bound
        assert Decimal(repr(error)) / step >= 10 or step == 1
    if cell.get("range_only") or cell.get("clamped") or value is None:
        assert cell["display"].startswith("between ") or cell.get("withheld")


def test_every_cell_carries_its_flag_step_and_display_and_withheld_groups_a_rule(
    world: World, live: LiveServer
) -> None:
    token = world.tokens["okala_analyst"]
    noisy = call(live, token, "POST", "/api/v1/queries", json={"sql": SQL, "epsilon": 1e-6})
    assert noisy.status_code == 200, noisy.text
    result = noisy.json()
    for cell in cells(result):
        check_cell(cell)
    # At this epsilon the noise dwarfs every number: all but the odd 5% that land outside
    # their own bound are flagged, and no average is a value.
    flagged = [row["buyers"]["mostly_noise"] for row in result["rows"]]
    assert sum(flagged) >= len(flagged) / 2
    assert all(row["basket"]["display"].startswith("between ") for row in result["rows"])
    # Sixteen city × channel groups at this noise: some fall under the minimum, and the
    # answer names the rule, its threshold and how many it withheld.
    assert result["suppressed_groups"] > 0
    assert result["rules"][0]["rule"] == "min_noisy_persons"
    assert result["rules"][0]["cells"] == result["suppressed_groups"]
    assert result["rules"][0]["threshold"] == 10

    again = call(live, token, "GET", f"/api/v1/queries/{result['query_id']}").json()
    assert again["rows"] == result["rows"] and again["rules"] == result["rules"]

    useful = call(live, token, "POST", "/api/v1/queries", json={"sql": SQL, "epsilon": 1.0})
    released = useful.json()
    for cell in cells(released):
        check_cell(cell)
    counts = [row["buyers"] for row in released["rows"]]
    assert any(not c["mostly_noise"] for c in counts)
    for c in counts:  # rounded to its bound: the display's value is the raw one at its step
        shown = c["display"].removeprefix("≈ ").split(" ± ")[0].replace(",", "")
        assert abs(int(shown) - c["value"]) <= c["step"] / 2


def test_overlap_under_join_required_names_the_rule_and_withholds_rates(
    world: World, live: LiveServer
) -> None:
    token = world.tokens["okala_analyst"]
    body = {"template": "overlap", "params": {"parties": "filimo,ofogh,okala"}, "epsilon": 0.3}
    result = call(live, token, "POST", "/api/v1/queries", json=body).json()
    join = [r for r in result["rules"] if r["rule"] == "join_required"]
    assert join == [
        {"rule": "join_required", "cells": 3, "party": "okala", "message": join[0]["message"]}
    ]
    pairs = {p["pair"]: p for p in result["pairwise"]}
    assert pairs["filimo+ofogh"]["both"]["restricted"] == "join_required"
    assert all(p["rate"]["withheld"] == "join_required" for p in pairs.values())
    assert all(p["rate"]["value"] is None for p in pairs.values())
    for row in result["rows"]:
        check_cell(row["persons"])


def test_the_cli_prints_rounded_numbers_the_mark_its_legend_and_the_rules(
    world: World, live: LiveServer, tmp_path: Any
) -> None:
    token = world.tokens["okala_analyst"]
    args = ["query", "--url", live.url, "--token", token, "--template", "overlap"]
    args += ["--param", "parties=filimo,okala,tapsi", "--epsilon", "0.001"]
    english = run_cli(*args, cwd=tmp_path, env={"COLUMNS": "200"})
    assert english.returncode == 0, english.stderr
    out = english.stdout
    assert "Numbers are rounded to what their error bound allows" in out
    assert "† mostly noise" in out and re.search(r"± [\d,]+ †", out)  # ε 0.001: all noise
    plain = out.replace("\u2068", "").replace("\u2069", "")
    assert "Only persons of okala are counted (rule join_required)" in plain
    assert "withheld (rule join_required)" in out  # the pairwise rates

    persian = run_cli("--lang", "fa", *args, cwd=tmp_path, env={"COLUMNS": "200"})
    assert persian.returncode == 0, persian.stderr
    text = persian.stdout
    assert "پاسخ از حافظهٔ نهان" in text  # the same question: the stored answer, in Persian
    assert "قاعدهٔ join_required" in text and "عددها تا جایی گرد شده‌اند" in text
    numbers = re.findall(r"± (\S+) †", text)
    assert numbers and all(re.fullmatch(r"[۰-۹٬]+", n) for n in numbers)
