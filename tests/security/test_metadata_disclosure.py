"""No route tells one party another party's exact row counts, versions or spending.

The outside audit read every party's exact row counts and version history
from ``GET /api/v1/datasets`` as any signed-in user, and the row total from
the unauthenticated ``/metrics``: across two versions, the difference was one
whale's exact event count. Here tapsi uploads its rides twice (the second time
with fewer rows) and spends budget; then okala's analyst — and no one at all —
asks every GET route the app serves (the OpenAPI document's, the web pages,
the docs, ``/metrics``), with every other party's datasets filled in, and no
answer may carry any of those exact counts or their differences. Tapsi's own
analyst and a reviewer, asking the same routes, do see them: the check can
fail.
"""

from __future__ import annotations

import json
import math
import mimetypes
import re
import zipfile
from collections.abc import Iterator
from fractions import Fraction
from io import BytesIO
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from cleanroom.demo.scenario import Group, LiveServer, build_group, open_room
from cleanroom.room.http.app import create_app
from cleanroom.room.ingest import ingest
from cleanroom.room.matching import run_match
from cleanroom.room.query.engine import Engine, QueryRequest
from cleanroom.room.reports.runner import ReportRunner
from cleanroom.room.state import Room
from tests.system.test_web import Visitor
from tests.system.world import load_and_match

ASKER = "okala"
REPORT = "overlap-okala"
REPORTS = {  # a report okala receives: its pages and files are walked too
    REPORT: {
        "title": "overlap for okala",
        "recipients": [ASKER, "reviewers"],
        "sections": [{"template": "overlap", "epsilon": 0.1}],
    }
}
THEIR_SPEND = "0.37"
_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
_GROUPING = re.compile(r"(?<=\d)[,٬\u066c\u202f\u00a0 ](?=\d{3}(?!\d))")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Group:
    return build_group(tmp_path_factory.mktemp("metadata"), persons=1_500, seed=61, reports=REPORTS)


@pytest.fixture(scope="module")
def live(world: Group, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Room]]:
    room = open_room(world.room_dir)
    room.settings = room.settings.model_copy(update={"scheduler": False})
    load_and_match(room, world)
    fewer = _truncated(world.data.files[("tapsi", "rides")], tmp_path_factory.mktemp("v2"))
    second = world.seal("tapsi", "rides", fewer.with_suffix(".bundle"), input_path=fewer)
    ingest(room, second, room.users.get("tapsi-admin"))
    run_match(room, room.users.get("room-admin"))
    Engine(room).run(
        QueryRequest(sql="SELECT COUNT(*) AS n FROM tapsi.rides", epsilon=Fraction(THEIR_SPEND)),
        room.users.get("tapsi-analyst"),
    )
    run = ReportRunner(Engine(room)).run(REPORT, user=room.users.get("room-admin"))
    assert run.status == "done", run.error
    with LiveServer(room) as server:
        yield server.url, room
    room.close()


def _truncated(source: Path, out: Path) -> Path:
    """The same export with its second half gone: a second version with fewer rows.

    Half, so that the difference (a secret too) is larger than any person count
    the group's noisy answers release: a few hundred rows would meet a noisy
    overlap cell of the same size by chance.
    """
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = lines[: 1 + (len(lines) - 1) // 2]
    path = out / source.name
    path.write_text("".join(kept), encoding="utf-8")
    return path


def version_counts(room: Room, party: str) -> dict[str, list[int]]:
    """The exact row count of each version of each of ``party``'s datasets, oldest first."""
    db = room.store.connection()
    out: dict[str, list[int]] = {}
    for row in db.execute(
        "SELECT dataset, rows FROM datasets WHERE party = ? ORDER BY dataset, version", (party,)
    ):
        out.setdefault(str(row["dataset"]), []).append(int(row["rows"]))
    return out


def secret_counts(room: Room, party: str, *, differences: bool = True) -> set[int]:
    """Every exact row count of ``party``'s versions, and each difference between versions.

    Counts under 100 are left out: such small numbers appear in any page for
    other reasons (a campaign table with a dozen rows would match a CSS size).
    """
    found: set[int] = set()
    for rows in version_counts(room, party).values():
        found |= set(rows)
        if differences:
            found |= {abs(a - b) for a, b in pairwise(rows)}
    return {n for n in found if n >= 100}


def numbers_in(text: str) -> set[int]:
    """Every whole number a reader sees: Persian and Arabic digits folded, grouping dropped."""
    plain = _GROUPING.sub("", text.translate(_DIGITS))
    return {int(n) for n in re.findall(r"(?<![\d.])\d+(?![\d.])", plain)}


def get_routes(room: Room) -> list[str]:
    """Every GET path the app serves: the OpenAPI document's, the web pages, docs, metrics."""
    app = create_app(room)
    documented = {path for path, item in app.openapi()["paths"].items() if "get" in item}
    served = set(_get_paths(app.routes, ""))
    assert documented <= served
    return sorted(served)


def _get_paths(routes: list[Any], prefix: str) -> Iterator[str]:
    """GET paths of routes, into included routers (FastAPI keeps each inclusion as a node)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _get_paths(included.routes, prefix + route.include_context.prefix)
        elif "GET" in (getattr(route, "methods", None) or ()):
            yield prefix + str(route.path)


def filled(path: str, values: dict[str, str]) -> str:
    out = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "x"), path)
    return out + ("?to=1" if out.endswith("/diff") else "")


def walk(url: str, room: Room, world: Group, who: str | None) -> dict[str, str]:
    """Each GET route's answer to ``who`` (a user name, or None for no one), per asked path."""
    db = room.store.connection()
    query_id = str(db.execute("SELECT id FROM queries LIMIT 1").fetchone()["id"])
    run = db.execute("SELECT id, files FROM report_runs WHERE status = 'done'").fetchone()
    common = {"query_id": query_id, "version": "1", "number": "1", "name": REPORT}
    common["run_id"] = str(run["id"])
    pages: dict[str, str] = {}
    visitor = Visitor(url)
    headers: dict[str, str] = {}
    if who is not None:
        token = world.tokens[who]
        assert visitor.sign_in(token).status_code == 303
        headers = {"Authorization": f"Bearer {token}"}
    targets = sorted(world.bundles)
    for template in get_routes(room):
        paths = {
            filled(template, {**common, "party": party, "dataset": dataset, "file": file})
            for party, dataset in targets
            for file in json.loads(run["files"])
        }
        for path in sorted(paths):
            if path.startswith("/ui"):
                answer = visitor.get(path)
            else:
                answer = httpx.get(url + path, headers=headers, timeout=120)
            assert answer.status_code < 500, (path, answer.status_code, answer.text[:200])
            pages.update(readable(path, answer.headers.get("content-type", ""), answer.content))
    return pages


_DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+")


def readable(path: str, media_type: str, body: bytes) -> dict[str, str]:
    """What a reader reads of one answer, per page: its text, a zip's files one by one.

    Bytes are not read as text: a zip's deflated stream, a PNG's pixels and the
    base64 of an image or font embedded in a page hold digit runs by chance
    (a 4-digit secret turns up in a few hundred kilobytes of them now and
    then), and no reader sees them. The charts' numbers come from the same
    released cells as the pages' and files' text, which are read.
    """
    if media_type.startswith("application/zip"):
        with zipfile.ZipFile(BytesIO(body)) as archive:
            return {
                f"{path}!{member}": page
                for member in archive.namelist()
                for page in readable(member, _media_type(member), archive.read(member)).values()
            }
    if media_type.startswith(("image/", "font/")):
        return {path: ""}
    return {path: _DATA_URI.sub("data:", body.decode("utf-8", errors="replace"))}


def _media_type(member: str) -> str:
    """A zip member's media type, from its name."""
    return mimetypes.guess_type(member)[0] or "text/plain"


NOISY = frozenset({"value", "low", "high", "error95"})


def released(pages: dict[str, str]) -> set[int]:
    """The DP-released numbers the walk read: a noisy value may equal a secret by chance."""
    out: set[int] = set()

    def visit(node: object) -> None:
        if isinstance(node, dict):
            if NOISY & node.keys():
                out.update(shown_forms(node))
            for key, value in node.items():
                if key in NOISY and isinstance(value, int | float):
                    out.add(round(value))
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    for text in pages.values():
        try:
            visit(json.loads(text))
        except ValueError:
            continue
    return out


def shown_forms(cell: dict[str, Any]) -> set[int]:
    """What a page may print of one noisy cell: its display text, the ends of its interval.

    Pages round a number to what its bound allows and print value ± error as a
    range, so these derived forms of a noisy number are noisy too.
    """
    out: set[int] = set()
    for text in cell.values():
        if isinstance(text, str):
            out |= numbers_in(text)
    value, error = cell.get("value"), cell.get("error95")
    if isinstance(value, int | float) and isinstance(error, int | float):
        for end in (value - error, value + error):
            out |= {math.floor(end), math.ceil(end), round(end)}
    return out


def found(pages: dict[str, str], counts: set[int]) -> dict[str, set[int]]:
    """Where each of these counts appears in what the walk read."""
    hits = {path: numbers_in(text) & counts for path, text in pages.items()}
    return {path: hit for path, hit in hits.items() if hit}


def leaks(pages: dict[str, str], secrets: set[int]) -> dict[str, set[int]]:
    """Secret counts found in what the walk read, apart from coincidences with noisy values."""
    return found(pages, secrets - released(pages))


def test_an_analyst_learns_no_other_partys_exact_row_count_from_any_route(
    world: Group, live: tuple[str, Room]
) -> None:
    url, room = live
    others = {p for p, _ in world.bundles if p != ASKER}
    secrets = set().union(*(secret_counts(room, p) for p in others))
    tapsi = secret_counts(room, "tapsi")
    assert len(tapsi) >= 3  # two versions and their difference
    pages = walk(url, room, world, f"{ASKER}_analyst")
    assert len(pages) > 30
    assert any("/archive!" in path and path.endswith(".html") for path in pages)  # files read
    assert not leaks(pages, secrets), leaks(pages, secrets)
    anonymous = walk(url, room, world, None)
    assert not leaks(anonymous, secrets | secret_counts(room, ASKER))
    # The same walk shows the counts to those entitled: the check above can fail.
    shown = secret_counts(room, "tapsi", differences=False)
    # Found, not leaked: a noisy number printed beside the exact one may equal it by chance.
    theirs = found(walk(url, room, world, "tapsi_analyst"), shown)
    assert set().union(*theirs.values()) == shown, theirs
    assert "/api/v1/datasets" in theirs and "/ui/" in theirs
    every = set().union(*(secret_counts(room, p, differences=False) for p in others))
    oversight = found(walk(url, room, world, "reviewer"), every)
    assert set().union(*oversight.values()) == every
    print(
        f"metadata walk: {len(get_routes(room))} GET routes, {len(pages)} requests per identity; "
        f"{len(secrets)} secret counts; leaks to {ASKER}'s analyst: 0, to no one: 0; "
        f"tapsi's analyst saw its counts on {len(theirs)} pages, a reviewer on {len(oversight)}"
    )


def test_others_see_that_a_dataset_exists_and_how_fresh_it_is(
    world: Group, live: tuple[str, Room]
) -> None:
    url, _ = live

    def get(path: str, who: str) -> object:
        headers = {"Authorization": f"Bearer {world.tokens[who]}"}
        response = httpx.get(url + path, headers=headers, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    listed = get("/api/v1/datasets", f"{ASKER}_analyst")
    assert isinstance(listed, list)
    rides = next(d for d in listed if (d["party"], d["dataset"]) == ("tapsi", "rides"))
    assert rides["status"] == "live" and rides["uploaded_at"]
    assert not {"rows", "version", "bundle_id", "uploaded_by"} & set(rides)
    own = next(d for d in listed if d["party"] == ASKER)
    assert isinstance(own["rows"], int) and own["version"] >= 1
    shown = get("/api/v1/datasets/tapsi/rides", f"{ASKER}_analyst")
    assert isinstance(shown, dict) and "versions" not in shown and shown["uploaded_at"]
    history = get("/api/v1/datasets/tapsi/rides", "tapsi_analyst")
    assert isinstance(history, dict)
    assert [v["version"] for v in history["versions"]] == [2, 1]
    latest = get("/api/v1/matches/latest", f"{ASKER}_analyst")
    assert isinstance(latest, dict)
    assert latest["inputs"]["tapsi.rides"] is None and latest["inputs"]["okala.orders"] >= 1


def test_spending_is_shown_to_its_party_and_to_reviewers_only(
    world: Group, live: tuple[str, Room]
) -> None:
    url, _ = live

    def budget(who: str) -> list[dict[str, object]]:
        headers = {"Authorization": f"Bearer {world.tokens[who]}"}
        body = httpx.get(url + "/api/v1/budget", headers=headers, timeout=60).json()
        parties: list[dict[str, object]] = body["parties"]
        return parties

    mine = budget(f"{ASKER}_analyst")
    assert [b["party"] for b in mine] == [ASKER]
    assert "collaboration_spent" not in mine[0] and mine[0]["spent"] == 0
    theirs = budget("tapsi_analyst")
    assert theirs[0]["spent"] == float(THEIR_SPEND) and "collaboration_spent" not in theirs[0]
    overseen = {b["party"]: b for b in budget("reviewer")}
    assert overseen["tapsi"]["spent"] == float(THEIR_SPEND)
    assert overseen["tapsi"]["collaboration_spent"] >= float(THEIR_SPEND)  # + the report run


def test_metrics_carry_no_count_derived_from_data(world: Group, live: tuple[str, Room]) -> None:
    url, room = live
    text = httpx.get(url + "/metrics", timeout=60).text
    assert "cleanroom_http_requests_total" in text  # the service's behaviour is still there
    assert "upload_rows" not in text
    counted = {
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#") and "_bucket" not in line
    }
    every = set().union(*(secret_counts(room, p) for p, _ in world.bundles))
    assert not {float(n) for n in every} & counted
