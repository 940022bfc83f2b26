"""Persian data end to end: a party file written the way Iranian exports are.

Cities in both letter forms (Arabic yeh/kaf and Persian), a tatweel, amounts
in Persian digits and timestamps in the Solar Hijri calendar go through
``cleanroom prepare`` (the CLI), an upload and a match over HTTP, and come
out as one group per city whose noiseless counts and sums equal the exact
answer computed here from the file; a funnel step and a report section naming
``تهران`` run; the room's budget is counted in Solar Hijri months.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cleanroom import clock
from cleanroom.contract.keys import generate_match_key, generate_party_keys
from cleanroom.room.auth import Role
from cleanroom.room.matching import live_generation
from cleanroom.room.query.check import check_sql
from cleanroom.room.query.compile import compile_plan
from cleanroom.room.query.engine import Engine
from cleanroom.room.query.prepared import bounds
from cleanroom.room.reports.runner import ReportRunner
from cleanroom.room.state import Room, init_room
from cleanroom.room.web.pages.dashboard import datasets
from cleanroom.text import PERSIAN_DIGITS
from tests.system.world import LiveServer, open_room, run_cli

# Each city as the policy's reviewers wrote it, and the spellings the export holds.
CITIES = {
    "تهران": ["تهران", "تهـــران"],  # tatweel
    "شيراز": ["شيراز", "شیراز"],  # the policy writes Arabic yeh; the data has both
    "کرمان": ["كرمان", "کرمان"],  # Arabic kaf and Persian kaf
    "مشهد": ["مشهد", "مشهد\u200c"],  # a stray ZWNJ
}
CANONICAL = {"تهران": "تهران", "شيراز": "شیراز", "کرمان": "کرمان", "مشهد": "مشهد"}
PERSONS = 48
NOW = dt.datetime(2026, 5, 10, 9, 0, tzinfo=dt.UTC)  # 1405-02-20 in Tehran


def fa(number: object) -> str:
    """Persian digits, as Iranian spreadsheets export them."""
    return str(number).translate(str.maketrans("0123456789", PERSIAN_DIGITS))


@dataclass
class Truth:
    """The exact answer, computed from the rows the party file holds."""

    persons: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    revenue: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def write_orders(path: Path) -> tuple[Truth, dict[str, int]]:
    """The okala export; the row numbers of the rows prepare must reject, by reason."""
    truth = Truth()
    lines = ["mobile,city,amount,ordered_at"]
    names = list(CITIES)
    for i in range(PERSONS):
        phone = f"0912{i:07d}" if i % 2 else fa(f"0912{i:07d}")
        for j in range(2):
            policy_name = names[(i + j) % len(names)]
            spelling = CITIES[policy_name][(i + j) % 2]
            amount = 100_000 + 1_000 * i + 10 * j
            day = 1 + (i + j) % 10
            stamp = f"1405/01/{day:02d} 10:{j:02d}:00"
            lines.append(f"{phone},{spelling},{fa(amount) if i % 3 else amount},{fa(stamp)}")
            truth.persons[CANONICAL[policy_name]].add(i)
            truth.revenue[CANONICAL[policy_name]] += amount
    rejected = {"amount: not a valid number": len(lines)}
    lines.append(f"0912{PERSONS:07d},تهران,{fa('12x0')},1405/01/05 10:00:00")
    rejected["ordered_at: not a valid jalali timestamp"] = len(lines)
    lines.append(f"0912{PERSONS + 1:07d},تهران,5000,1404/12/30 10:00:00")  # 1404 is not leap
    lines.append(f"0912{PERSONS + 2:07d},اصفهان,5000,1405/01/05 10:00:00")  # not in the domain
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return truth, rejected


def write_visits(path: Path) -> None:
    """The ofogh export: half the persons visit after their orders (a funnel's next step)."""
    lines = ["mobile,visited_at"]
    lines += [f"0912{i:07d},{fa('1405/01/20 12:00:00')}" for i in range(0, PERSONS, 2)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def policy(root: Path, match_id: str) -> dict[str, Any]:
    def party(name: str, datasets: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "public_key": (root / "keys" / f"{name}.pub").read_text(encoding="ascii"),
            "datasets": datasets,
        }

    orders = {
        "identifiers": {"mobile": "phone"},
        "columns": {
            "city": {"type": "category", "domain": list(CITIES)},
            "amount": {"type": "number", "bounds": [0, 1_000_000]},
            "ordered_at": "timestamp",
        },
        "time": "ordered_at",
    }
    visits = {
        "identifiers": {"mobile": "phone"},
        "columns": {"visited_at": "timestamp"},
        "time": "visited_at",
    }
    return {
        "collaboration": "persian",
        "match_key_id": match_id,
        "parties": {
            "okala": party("okala", {"orders": orders}),
            "ofogh": party("ofogh", {"visits": visits}),
        },
        "privacy": {
            "budget": {
                "epsilon": 10,
                "period": "jalali_month",
                "shares": {"okala": 4, "ofogh": 3, "reporter": 3},
            },
            "max_epsilon_per_query": 2,
            "min_noisy_persons": 0,
        },
        "templates": {"funnel": {}},
        "reports": {
            "tehran-funnel": {
                "title": "قیف تهران",
                "recipients": ["okala", "reviewers"],
                "sections": [
                    {
                        "template": "funnel",
                        "params": {
                            "steps": "okala.orders:city=تهران,ofogh",
                            "start": "1405-01-01",
                            "end": "۱۴۰۵/۰۲/۰۱",
                        },
                        "epsilon": 0.5,
                    }
                ],
            }
        },
    }


@dataclass
class Persian:
    root: Path
    room: Room
    server: LiveServer
    tokens: dict[str, str]
    truth: Truth
    rejected: dict[str, int]
    prepared: dict[str, str]
    uploads: dict[str, dict[str, Any]]


def call(world: Persian, method: str, path: str, token: str, **kw: Any) -> httpx.Response:
    return httpx.request(
        method,
        world.server.url + path,
        headers={"Authorization": f"Bearer {world.tokens[token]}"},
        timeout=120,
        **kw,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Persian]:
    root = tmp_path_factory.mktemp("persian")
    match_id = generate_match_key(root / "keys" / "match.key").key_ids["match_key_id"]
    for name in ("okala", "ofogh"):
        generate_party_keys(name, root / "keys")
    (root / "policy.yaml").write_text(
        yaml.safe_dump(policy(root, match_id), allow_unicode=True), encoding="utf-8"
    )
    init_room(root / "room", root / "policy.yaml")
    truth, rejected = write_orders(root / "orders.csv")
    write_visits(root / "visits.csv")
    specs = {
        "orders": {
            "dataset": "orders",
            "identifiers": {"mobile": "phone"},
            "columns": {
                "city": "category",
                "amount": "number",
                "ordered_at": {"type": "timestamp", "calendar": "jalali"},
            },
            "time": "ordered_at",
        },
        "visits": {
            "dataset": "visits",
            "identifiers": {"mobile": "phone"},
            "columns": {"visited_at": {"type": "timestamp", "calendar": "jalali"}},
            "time": "visited_at",
        },
    }
    prepared = {}
    for party, dataset in (("okala", "orders"), ("ofogh", "visits")):
        spec = root / f"{dataset}.spec.yaml"
        spec.write_text(yaml.safe_dump(specs[dataset], allow_unicode=True), encoding="utf-8")
        done = run_cli(
            "prepare",
            "--party",
            party,
            "--dataset",
            dataset,
            "--input",
            root / f"{dataset}.csv",
            "--spec",
            spec,
            "--match-key",
            root / "keys" / "match.key",
            "--room-key",
            root / "room" / "keys" / "room.pub",
            "--signing-key",
            root / "keys" / f"{party}.key",
            "--out",
            root / f"{dataset}.bundle",
            cwd=root,
            env={"COLUMNS": "200"},
        )
        assert done.returncode == 0, done.stderr
        prepared[dataset] = done.stdout
    room = open_room(root / "room")
    tokens = {}
    for name in ("okala", "ofogh"):
        tokens[f"{name}_admin"] = room.users.add(f"{name}-admin", Role.party_admin, name)[1]
        tokens[f"{name}_analyst"] = room.users.add(f"{name}-analyst", Role.analyst, name)[1]
    tokens["room_admin"] = room.users.add("room-admin", Role.room_admin)[1]
    with clock.use(clock.SetClock(NOW)), LiveServer(room) as server:
        world = Persian(root, room, server, tokens, truth, rejected, prepared, {})
        for party, dataset in (("okala", "orders"), ("ofogh", "visits")):
            body = (root / f"{dataset}.bundle").read_bytes()
            response = call(world, "POST", "/api/v1/datasets", f"{party}_admin", content=body)
            assert response.status_code == 201, response.text
            world.uploads[dataset] = response.json()
        response = call(world, "POST", "/api/v1/matches", "room_admin")
        assert response.status_code == 201, response.text
        yield world
    room.close()


def test_prepare_reports_rejected_rows_by_reason_and_time_ranges(world: Persian) -> None:
    out = world.prepared["orders"]
    for reason, row in world.rejected.items():
        assert reason in out and f"(rows {row})" in out, (reason, out)
    assert "0912" not in out and "+98" not in out  # never an identifier
    # the Solar Hijri stamps 1405/01/01..10 are 2026-03-21..30 in Gregorian
    assert "time range ordered_at" in out
    assert "2026-03-21 10:00:00" in out and "2026-03-30 10:01:00" in out, out


def prepare_orders(
    world: Persian, out: str, *options: str, as_json: bool = False
) -> subprocess.CompletedProcess[str]:
    root = world.root
    return run_cli(
        *options,
        "prepare",
        *(["--json"] if as_json else []),
        "--party",
        "okala",
        "--dataset",
        "orders",
        "--input",
        root / "orders.csv",
        "--spec",
        root / "orders.spec.yaml",
        "--match-key",
        root / "keys" / "match.key",
        "--room-key",
        root / "room" / "keys" / "room.pub",
        "--signing-key",
        root / "keys" / "okala.key",
        "--out",
        root / out,
        cwd=root,
        env={"COLUMNS": "200"},
    )


def test_prepare_prints_its_summary_in_persian_and_its_json_in_no_language(
    world: Persian,
) -> None:
    persian = prepare_orders(world, "fa.bundle", "--lang", "fa")
    assert persian.returncode == 0, persian.stderr
    out = persian.stdout
    assert "بازهٔ زمانی" in out and "خوانده" in out
    for reason, row in world.rejected.items():  # row numbers in Persian digits
        assert reason in out and f"(سطرهای {fa(row)})" in out, (reason, out)
    assert "0912" not in out and "+98" not in out and "۰۹۱۲" not in out  # never an identifier
    as_json = {
        language: json.loads(
            prepare_orders(
                world, f"{language}.json.bundle", "--lang", language, as_json=True
            ).stdout
        )
        for language in ("fa", "en")
    }
    for summary in as_json.values():
        summary.pop("bundle_id", None)
        summary.pop("path", None)
        summary.pop("bundle", None)
    assert as_json["fa"] == as_json["en"]


def test_upload_reports_values_outside_the_domain_to_the_uploader_only(world: Persian) -> None:
    assert world.uploads["orders"]["out_of_domain"] == {"city": 1}  # the اصفهان row
    listed = call(world, "GET", "/api/v1/datasets", "ofogh_analyst").json()
    okala = next(d for d in listed if d["party"] == "okala")
    assert "out_of_domain" not in okala  # another party never sees it
    own = call(world, "GET", "/api/v1/datasets/okala/orders", "okala_analyst").json()
    assert own["versions"][0]["out_of_domain"] == {"city": 1}


def test_the_dashboard_shows_out_of_domain_rows_only_where_exact_figures_are_seen(
    world: Persian,
) -> None:
    own = {
        d.dataset: d for d in datasets(world.room, world.room.users.get("okala-analyst"))["okala"]
    }
    assert own["orders"].out_of_domain == {"city": 1}  # the اصفهان row, per dimension
    visits = datasets(world.room, world.room.users.get("ofogh-analyst"))["ofogh"]
    assert [d.out_of_domain for d in visits] == [{}]  # its own, without dimensions
    other = datasets(world.room, world.room.users.get("ofogh-analyst"))["okala"]
    assert all(d.out_of_domain is None and d.rows is None for d in other)
    overseer = datasets(world.room, world.room.users.get("room-admin"))["okala"]
    assert {d.dataset: d.out_of_domain for d in overseer}["orders"] == {"city": 1}


def test_group_by_city_gives_one_group_per_city_with_exact_noiseless_sums(
    world: Persian,
) -> None:
    sql = (
        "SELECT city, COUNT(DISTINCT person) AS buyers, SUM(amount) AS revenue "
        "FROM okala.orders GROUP BY city"
    )
    with clock.use(clock.SetClock(NOW)):
        response = call(
            world, "POST", "/api/v1/queries", "okala_analyst", json={"sql": sql, "epsilon": 2}
        )
    assert response.status_code == 200, response.text
    answer = response.json()
    released = [row["city"] for row in answer["rows"]]
    # One key per city, 4 not 8 (a group whose noisy count falls below zero is dropped).
    assert set(released) <= set(world.truth.persons) and len(set(released)) == len(released)
    assert len(released) + answer["suppressed_groups"] == len(world.truth.persons) == 4
    # The noiseless answer of the same checked plan equals the exact answer of the file.
    active = world.room.active_policy().policy
    assert active.privacy is not None
    plan = check_sql(sql, policy=active, party="okala")
    generation = live_generation(world.room)
    assert generation is not None
    compiled = compile_plan(plan, generation.tables, **bounds(active.privacy))
    exact = world.room.wh.cursor().execute(compiled.sql).fetchall()
    by_city = {row[0]: row[1:] for row in exact}
    names = [m.name for m in compiled.measurements]
    for city, persons in world.truth.persons.items():
        values = dict(zip(names, by_city[city][: len(names)], strict=True))  # then the cut
        counted = [v for k, v in values.items() if "person" in k]
        summed = [v for k, v in values.items() if k.startswith("m_sum")]
        assert counted and all(v == len(persons) for v in counted), (city, values)
        assert summed == [world.truth.revenue[city]], (city, values)


def test_a_literal_in_either_letter_form_names_one_city(world: Persian) -> None:
    with clock.use(clock.SetClock(NOW)):
        answers = [
            call(
                world,
                "POST",
                "/api/v1/queries",
                "okala_analyst",
                json={
                    "sql": f"SELECT COUNT(*) AS n FROM okala.orders WHERE city = '{spelling}'",
                    "dry_run": True,
                },
            )
            for spelling in ("شيراز", "شیراز", "كرمان")
        ]
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]


def test_a_funnel_step_naming_tehran_runs(world: Persian) -> None:
    params = {"steps": "okala.orders:city=تهران,ofogh", "start": "1405-01-01", "end": "1405-02-01"}
    with clock.use(clock.SetClock(NOW)):
        response = call(
            world,
            "POST",
            "/api/v1/queries",
            "okala_analyst",
            json={"template": "funnel", "params": params, "epsilon": 1},
        )
    assert response.status_code == 200, response.text
    labels = [row["label"] for row in response.json()["rows"]]
    assert labels[0] == "okala.orders:city=تهران"


def test_a_refusal_quotes_a_persian_value_whole_and_isolated(world: Persian) -> None:
    params = {"steps": "okala.orders:city=اصفهان,ofogh"}
    with clock.use(clock.SetClock(NOW)):
        response = call(
            world,
            "POST",
            "/api/v1/queries",
            "okala_analyst",
            json={"template": "funnel", "params": params, "dry_run": True},
        )
    assert response.status_code == 400
    assert "has no declared value '\u2068اصفهان\u2069'" in response.json()["error"]["message"]


def test_a_refusal_reads_in_the_language_asked_with_the_same_code_and_details(
    world: Persian,
) -> None:
    sql = "SELECT city, COUNT(*) FROM okala.orders WHERE city = 'اصفهان' GROUP BY city"
    answers = {}
    for language in ("fa", "en"):
        with clock.use(clock.SetClock(NOW)):
            response = httpx.post(
                world.server.url + "/api/v1/queries",
                headers={
                    "Authorization": f"Bearer {world.tokens['okala_analyst']}",
                    "Accept-Language": f"{language}, en;q=0.1",
                },
                json={"sql": sql, "dry_run": True},
                timeout=120,
            )
        assert response.status_code == 400
        answers[language] = response.json()["error"]
    persian, english = answers["fa"], answers["en"]
    assert (persian["code"], persian["details"]) == (english["code"], english["details"])
    assert persian["details"]["rule"] == "domain_value_undeclared"
    assert "is not a declared value" in english["message"]
    assert "از مقدارهای اعلام‌شدهٔ" in persian["message"]
    assert "'\u2068اصفهان\u2069'" in persian["message"]  # quoted whole, isolated


def test_a_report_section_naming_tehran_runs_and_is_charged_in_the_persian_month(
    world: Persian,
) -> None:
    with clock.use(clock.SetClock(NOW)):
        run = ReportRunner(Engine(world.room)).run("tehran-funnel")
        assert run.status == "done", run.error
        privacy = world.room.active_policy().policy.privacy
        assert privacy is not None
        status = Engine(world.room).ledger.status("reporter", privacy.budget)
    assert status.period == "1405-02"
    assert status.period_start == "2026-04-20T20:30:00+00:00"  # 00:00 on 1 Ordibehesht, Tehran
    assert status.spent == 0.5
