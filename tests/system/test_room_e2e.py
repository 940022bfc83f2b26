"""The room end to end, over real HTTP: five parties upload, the room matches, and the
persons per brand combination equal the generator's ground truth exactly."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from cleanroom.contract.keys import generate_party_keys, load_signing_key, new_symmetric_key
from cleanroom.contract.spec import IdType
from cleanroom.party.normalize import email_reference, phone_reference
from cleanroom.room import logs
from cleanroom.room.analyses import sequence
from cleanroom.room.ingest import live_datasets
from cleanroom.room.matching import live_generation
from cleanroom.room.state import Room
from cleanroom.sql import SCHEMA
from tests.system.world import LiveServer, World, build_world, open_room


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def live(world: World) -> Iterator[tuple[LiveServer, Room]]:
    logs.configure(world.room_dir / "logs" / "service.log", "json")
    room = open_room(world.room_dir)
    try:
        with LiveServer(room) as server:
            yield server, room
    finally:
        room.close()
        logs.reset()


def call(
    server: LiveServer, method: str, path: str, token: str | None = None, **kw: object
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, server.url + path, headers=headers, timeout=120, **kw)  # type: ignore[arg-type]


def upload(server: LiveServer, token: str, bundle: Path) -> httpx.Response:
    return call(server, "POST", "/api/v1/datasets", token, content=bundle.read_bytes())


@pytest.fixture(scope="module")
def matched(world: World, live: tuple[LiveServer, Room]) -> tuple[LiveServer, Room]:
    server, room = live
    for (party, _dataset), bundle in sorted(world.bundles.items()):
        response = upload(server, world.tokens[f"{party}_admin"], bundle)
        assert response.status_code == 201, response.text
    response = call(server, "POST", "/api/v1/matches", world.tokens["room_admin"])
    assert response.status_code == 201, response.text
    return server, room


def exact_combinations(room: Room) -> dict[str, int]:
    """Internal check only: exact counts never leave the room through any API."""
    generation = live_generation(room)
    assert generation is not None
    parts = [
        f"SELECT DISTINCT person, '{name.split('.')[0]}' AS party FROM {SCHEMA}.{table}"
        for name, table in sequence.datasets(generation.tables).items()
        if name != "_persons"
    ]
    rows = (
        room.wh.cursor()
        .execute(
            "SELECT combo, count(*) FROM (SELECT person,"
            " string_agg(DISTINCT party, '+' ORDER BY party) AS combo"
            f" FROM ({' UNION ALL '.join(parts)}) GROUP BY person) GROUP BY combo"
        )
        .fetchall()
    )
    return {combo: n for combo, n in rows}


def test_persons_per_brand_combination_equal_ground_truth(
    world: World, matched: tuple[LiveServer, Room]
) -> None:
    _, room = matched
    truth = json.loads((world.data.out / "truth" / "summary.json").read_text())
    assert exact_combinations(room) == truth["combinations"]


def test_datasets_listed_with_versions(world: World, matched: tuple[LiveServer, Room]) -> None:
    server, _ = matched
    listed = call(server, "GET", "/api/v1/datasets", world.tokens["okala_analyst"]).json()
    assert {(d["party"], d["dataset"]) for d in listed} == set(world.bundles)
    shown = call(server, "GET", "/api/v1/datasets/okala/orders", world.tokens["reviewer"]).json()
    assert shown["status"] == "live" and shown["versions"][0]["version"] >= 1
    assert "table_name" not in json.dumps(shown)


def test_token_columns_are_stored_uncompressed(matched: tuple[LiveServer, Room]) -> None:
    """Random bytes gain nothing from a codec; trying one made ingest 2.7x slower."""
    _, room = matched
    cursor = room.wh.cursor()
    for version in live_datasets(room):
        tokens = [c for c, kind in version.columns.items() if kind in set(IdType)]
        found = cursor.execute(
            "SELECT DISTINCT column_name, compression FROM pragma_storage_info(?) "
            "WHERE segment_type = 'BLOB'",
            [f"{SCHEMA}.{version.table_name}"],
        ).fetchall()
        assert tokens and {c for c, _ in found} == set(tokens)
        assert {codec for _, codec in found} == {"Uncompressed"}, found


def test_match_reveals_no_counts(world: World, matched: tuple[LiveServer, Room]) -> None:
    server, _ = matched
    latest = call(server, "GET", "/api/v1/matches/latest", world.tokens["okala_analyst"]).json()
    assert set(latest) == {
        "generation",
        "finished_at",
        "inputs",
        "withheld",
        "suppression_applied",  # a flag: no party uploaded a suppression list here
    }
    assert latest["suppression_applied"] is False
    assert latest["withheld"] == {"links": 0}  # only its own party's withheld links, here none


def test_replay_is_refused(world: World, matched: tuple[LiveServer, Room]) -> None:
    server, _ = matched
    response = upload(server, world.tokens["okala_admin"], world.bundles[("okala", "orders")])
    assert response.status_code == 409
    assert "replay refused" in response.json()["error"]["message"]


def test_reupload_replaces_atomically(
    world: World, matched: tuple[LiveServer, Room], tmp_path: Path
) -> None:
    server, room = matched
    before = call(server, "GET", "/api/v1/datasets/tapsi/rides", world.tokens["tapsi_admin"]).json()
    fresh = world.seal("tapsi", "rides", tmp_path / "rides.bundle")
    response = upload(server, world.tokens["tapsi_admin"], fresh)
    assert response.status_code == 201, response.text
    after = call(server, "GET", "/api/v1/datasets/tapsi/rides", world.tokens["tapsi_admin"]).json()
    assert after["versions"][0]["version"] == before["versions"][0]["version"] + 1
    assert [v["status"] for v in after["versions"]][:2] == ["live", "replaced"]
    live_tables = {t for t in room.wh.tables() if t.startswith("d_tapsi__rides")}
    assert live_tables == {f"d_tapsi__rides__v{after['versions'][0]['version']}"}


def tampered(src: Path, dst: Path, cut: bool = False) -> Path:
    data = bytearray(src.read_bytes())
    if cut:
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0x40
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize(
    ("case", "status", "fragment"),
    [
        ("flipped", 400, "signature does not verify"),
        ("truncated", 400, "truncated bundle"),
        ("garbage", 400, "not a cleanroom bundle"),
        ("other_party_key", 400, "not signed by party 'okala'"),
        ("other_match_key", 400, "made with another match key"),
        ("unknown_party", 404, "party 'snapp' is not in the collaboration"),
        ("unknown_dataset", 404, "has no dataset 'returns'"),
        ("schema_differs", 400, "does not match the contract"),
        ("wrong_uploader", 403, "may not upload for party 'okala'"),
    ],
)
def test_bad_bundles_are_refused_and_change_nothing(
    world: World,
    matched: tuple[LiveServer, Room],
    tmp_path: Path,
    case: str,
    status: int,
    fragment: str,
) -> None:
    server, room = matched
    before = call(server, "GET", "/api/v1/datasets", world.tokens["reviewer"]).json()
    original = world.bundles[("okala", "orders")]
    token = world.tokens["okala_admin"]
    out = tmp_path / "b.bundle"
    if case == "flipped":
        bundle = tampered(original, out)
    elif case == "truncated":
        bundle = tampered(original, out, cut=True)
    elif case == "garbage":
        out.write_bytes(b"not a bundle at all")
        bundle = out
    elif case == "other_party_key":
        generate_party_keys("okala", tmp_path / "impostor")
        bundle = world.seal(
            "okala",
            "orders",
            out,
            signing_key=load_signing_key(tmp_path / "impostor" / "okala.key"),
        )
    elif case == "other_match_key":
        bundle = world.seal("okala", "orders", out, match_key=new_symmetric_key("match-key"))
    elif case == "unknown_party":
        bundle = world.seal("okala", "orders", out, party="snapp")
    elif case == "unknown_dataset":
        spec = (
            world.data.specs[("okala", "orders")]
            .read_text()
            .replace("dataset: orders", "dataset: returns")
        )
        (tmp_path / "s.yaml").write_text(spec)
        from cleanroom.contract.spec import load_spec

        bundle = world.seal("okala", "orders", out, spec=load_spec(tmp_path / "s.yaml"))
    elif case == "schema_differs":
        from cleanroom.contract.spec import load_spec

        spec = (
            world.data.specs[("okala", "orders")].read_text().replace("  channel: category\n", "")
        )
        (tmp_path / "s.yaml").write_text(spec)
        bundle = world.seal("okala", "orders", out, spec=load_spec(tmp_path / "s.yaml"))
    else:
        bundle = original
        token = world.tokens["ofogh_admin"]
    response = upload(server, token, bundle)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]["message"]
    assert call(server, "GET", "/api/v1/datasets", world.tokens["reviewer"]).json() == before
    assert not list(room.paths.uploads.iterdir())


def test_sealed_to_another_room(
    world: World, matched: tuple[LiveServer, Room], tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    server, _ = matched
    other = world.seal(
        "okala", "orders", tmp_path / "o.bundle", room_key=X25519PrivateKey.generate().public_key()
    )
    response = upload(server, world.tokens["okala_admin"], other)
    assert response.status_code == 400
    assert "sealed to another room key" in response.json()["error"]["message"]


def test_a_bundle_with_an_older_token_definition_is_refused(
    world: World, matched: tuple[LiveServer, Room], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cleanroom.party import prepare as prepare_module

    server, _ = matched
    before = call(server, "GET", "/api/v1/datasets", world.tokens["reviewer"]).json()
    monkeypatch.setattr(prepare_module, "TOKEN_VERSION", 1)  # as a release before version 2
    old = world.seal("okala", "orders", tmp_path / "old.bundle")
    response = upload(server, world.tokens["okala_admin"], old)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "token definition version 1" in message
    assert "prepare the export again" in message
    assert call(server, "GET", "/api/v1/datasets", world.tokens["reviewer"]).json() == before


def test_a_match_refuses_datasets_of_an_older_token_definition(
    world: World, matched: tuple[LiveServer, Room]
) -> None:
    server, room = matched
    db = room.store.connection()
    generation = live_generation(room)
    # A dataset uploaded before the upgrade carries the migration's default, version 1.
    db.execute("UPDATE datasets SET token_version = 1 WHERE party = 'okala' AND status = 'live'")
    try:
        response = call(server, "POST", "/api/v1/matches", world.tokens["room_admin"])
        assert response.status_code == 409, response.text
        message = response.json()["error"]["message"]
        assert "okala.orders" in message and "older token definition" in message
        assert "ofogh" not in message and "tapsi" not in message
    finally:
        db.execute("UPDATE datasets SET token_version = 2 WHERE token_version = 1")
    assert live_generation(room) == generation
    running = db.execute("SELECT count(*) FROM matches WHERE status = 'running'").fetchone()[0]
    assert running == 0


def test_upload_over_the_limit(world: World, matched: tuple[LiveServer, Room]) -> None:
    server, room = matched
    settings = room.settings
    room.settings = settings.model_copy(update={"max_upload_bytes": 1000})
    try:
        response = upload(server, world.tokens["okala_admin"], world.bundles[("okala", "orders")])
    finally:
        room.settings = settings
    assert response.status_code == 413
    assert not list(room.paths.uploads.iterdir())


@pytest.mark.parametrize(
    ("token", "method", "path", "status"),
    [
        (None, "GET", "/api/v1/datasets", 401),
        ("cr_" + "A" * 43, "GET", "/api/v1/datasets", 401),
        ("garbage", "GET", "/api/v1/me", 401),
        ("okala_analyst", "POST", "/api/v1/datasets", 403),
        ("reviewer", "POST", "/api/v1/datasets", 403),
        ("okala_admin", "POST", "/api/v1/matches", 403),
        ("okala_analyst", "GET", "/api/v1/audit", 403),
        ("reporter", "GET", "/api/v1/audit/verify", 403),
        ("okala_admin", "GET", "/api/v1/audit", 403),
    ],
)
def test_access_control(
    world: World,
    matched: tuple[LiveServer, Room],
    token: str | None,
    method: str,
    path: str,
    status: int,
) -> None:
    server, room = matched
    bearer = world.tokens.get(token, token) if token else None
    response = call(server, method, path, bearer, content=b"x" if method == "POST" else None)
    assert response.status_code == status
    denied = room.audit.entries(action="auth.denied", limit=1000)
    assert denied and denied[-1].target is not None and path in denied[-1].target


def test_revoked_token_is_refused(world: World, matched: tuple[LiveServer, Room]) -> None:
    server, room = matched
    _, token = room.users.add(
        "temp-analyst", __import__("cleanroom.room.auth", fromlist=["Role"]).Role.analyst, "okala"
    )
    assert call(server, "GET", "/api/v1/me", token).status_code == 200
    room.users.revoke("temp-analyst")
    assert call(server, "GET", "/api/v1/me", token).status_code == 401


def test_health_ready_metrics_openapi(matched: tuple[LiveServer, Room]) -> None:
    server, _ = matched
    assert call(server, "GET", "/api/v1/health").json() == {"status": "ok"}
    assert call(server, "GET", "/api/v1/ready").json()["status"] == "ready"
    metrics = call(server, "GET", "/metrics").text
    assert 'cleanroom_uploads_total{outcome="accepted"}' in metrics
    spec = call(server, "GET", "/openapi.json").json()
    assert "/api/v1/datasets" in spec["paths"]


def test_audit_chain_records_everything_and_verifies(
    world: World, matched: tuple[LiveServer, Room]
) -> None:
    server, _ = matched
    token = world.tokens["reviewer"]
    actions = {e["action"] for e in call(server, "GET", "/api/v1/audit?limit=1000", token).json()}
    assert {"room.init", "user.add", "dataset.upload", "match.run", "auth.denied"} <= actions
    assert call(server, "GET", "/api/v1/audit/verify", token).json()["ok"] is True


def _raw_identifiers(world: World) -> tuple[set[bytes], set[bytes]]:
    """Every raw identifier cell of every input, and its normalized form."""
    raw: set[bytes] = set()
    normalized: set[bytes] = set()
    for (party, dataset), path in world.data.files.items():
        spec = json.loads(
            json.dumps(__import__("yaml").safe_load(world.data.specs[(party, dataset)].read_text()))
        )
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(spec["identifiers"], pa.string())
            ),
        )
        for column, kind in spec["identifiers"].items():
            for value in table.column(column).to_pylist():
                if not value or len(value.strip()) < 6:
                    continue
                raw.add(value.strip().encode())
                norm = (
                    phone_reference(value)
                    if kind == "phone"
                    else email_reference(value)
                    if kind == "email"
                    else None
                )
                if norm:
                    normalized.add(norm.encode())
                    if kind == "phone":
                        normalized.add(norm[3:].encode())  # national number without +98
    return raw, normalized


def test_no_raw_identifier_or_party_token_in_any_room_file(
    world: World, matched: tuple[LiveServer, Room]
) -> None:
    _, room = matched
    room.wh.checkpoint()
    raw, normalized = _raw_identifiers(world)
    blobs = {p: p.read_bytes() for p in room.paths.root.rglob("*") if p.is_file()}
    assert {"warehouse.duckdb", "meta.sqlite", "service.log"} <= {p.name for p in blobs}
    assert b"dataset.upload" in blobs[room.paths.root / "meta.sqlite"] or any(
        b"dataset.upload" in d for d in blobs.values()
    )
    for secret in world.tokens.values():  # bearer tokens are stored hashed, never logged
        assert not any(secret.encode() in data for data in blobs.values())
    # Every digit run and e-mail-shaped string on disk, against every identifier we know.
    found: set[bytes] = set()
    for data in blobs.values():
        found |= set(re.findall(rb"\+?\d{9,}", data))
        found |= set(re.findall(rb"[\w.+\-]+@[\w\-]+\.[\w.\-]+", data))
    assert not found & (raw | normalized)
    # Non-ASCII spellings and party tokens cannot be pattern-matched: look for each directly.
    spelled = [r for r in raw if not r.isascii()][:300] + [r for r in raw if b" " in r][:300]
    from cleanroom.contract.spec import IdType
    from cleanroom.party.tokens import token

    party_tokens = [
        token(world.match_key, IdType.phone, n.decode())
        for n in sorted(normalized)
        if n.startswith(b"+")
    ][:300]
    for data in blobs.values():
        for needle in spelled + party_tokens + [t.hex().encode() for t in party_tokens]:
            assert needle not in data


EVERYONE = {"party_admin", "analyst", "reviewer", "room_admin", "reporter"}
ROLE_MATRIX = {
    ("POST", "/api/v1/datasets"): {"party_admin"},
    ("GET", "/api/v1/datasets"): EVERYONE,
    ("GET", "/api/v1/datasets/{party}/{dataset}"): EVERYONE,
    ("POST", "/api/v1/matches"): {"room_admin"},
    ("GET", "/api/v1/matches/latest"): EVERYONE,
    ("POST", "/api/v1/room/expire"): {"room_admin"},
    ("GET", "/api/v1/room/backup"): {"room_admin"},
    ("GET", "/api/v1/audit"): {"reviewer", "room_admin"},
    ("GET", "/api/v1/audit/verify"): {"reviewer", "room_admin"},
    ("GET", "/api/v1/me"): EVERYONE,
    ("POST", "/api/v1/queries"): {"analyst", "reporter"},
    ("GET", "/api/v1/queries"): {"analyst", "reporter", "reviewer", "room_admin"},
    ("GET", "/api/v1/queries/{query_id}"): {"analyst", "reporter", "reviewer", "room_admin"},
    ("GET", "/api/v1/budget"): EVERYONE,
    ("GET", "/api/v1/policies"): {"reviewer", "room_admin"},
    ("POST", "/api/v1/policies"): {"reviewer"},
    ("GET", "/api/v1/policies/active"): EVERYONE,
    ("GET", "/api/v1/policies/diff"): {"reviewer", "room_admin"},
    ("GET", "/api/v1/policies/{version}"): {"reviewer", "room_admin"},
    ("POST", "/api/v1/policies/{version}/approve"): {"reviewer"},
    ("POST", "/api/v1/policies/{version}/reject"): {"reviewer"},
    ("POST", "/api/v1/policies/{version}/rollback"): {"reviewer"},
    ("GET", "/api/v1/reports"): {"analyst", "reporter", "reviewer", "room_admin"},
    ("GET", "/api/v1/reports/{name}/runs"): {"analyst", "reporter", "reviewer", "room_admin"},
    ("POST", "/api/v1/reports/{name}/run"): {"reporter", "room_admin"},
    ("GET", "/api/v1/reports/{name}/runs/{run_id}"): {
        "analyst",
        "reporter",
        "reviewer",
        "room_admin",
    },
    ("GET", "/api/v1/reports/{name}/runs/{run_id}/files/{file}"): {
        "analyst",
        "reporter",
        "reviewer",
        "room_admin",
    },
    ("GET", "/api/v1/reports/{name}/runs/{run_id}/archive"): {
        "analyst",
        "reporter",
        "reviewer",
        "room_admin",
    },
}
PUBLIC = {"/api/v1/health", "/api/v1/ready", "/metrics", "/openapi.json", "/docs", "/redoc"}


def test_every_endpoint_has_a_role_rule(matched: tuple[LiveServer, Room]) -> None:
    server, _ = matched
    spec = call(server, "GET", "/openapi.json").json()
    routes = {
        (method.upper(), path)
        for path, methods in spec["paths"].items()
        for method in methods
        if path not in PUBLIC
    }
    assert routes == set(ROLE_MATRIX)


@pytest.mark.parametrize(("method", "path"), sorted(ROLE_MATRIX))
def test_role_matrix(
    world: World, matched: tuple[LiveServer, Room], method: str, path: str
) -> None:
    server, _ = matched
    concrete = (
        path.replace("{party}", "okala")
        .replace("{dataset}", "orders")
        .replace("{query_id}", "0")
        .replace("{version}", "1")
        .replace("{name}", "overlap-weekly")
        .replace("{run_id}", "0")
        .replace("{file}", "report.html")
    )
    body = b"not a bundle" if method == "POST" else None
    assert call(server, method, concrete, None, content=body).status_code == 401
    for token_name, role in [
        ("okala_admin", "party_admin"),
        ("okala_analyst", "analyst"),
        ("reviewer", "reviewer"),
        ("room_admin", "room_admin"),
        ("reporter", "reporter"),
    ]:
        status = call(server, method, concrete, world.tokens[token_name], content=body).status_code
        if role in ROLE_MATRIX[(method, path)]:
            assert status not in (401, 403), (role, status)
        else:
            assert status == 403, (role, status)


def test_concurrent_uploads_of_one_dataset(
    world: World, matched: tuple[LiveServer, Room], tmp_path: Path
) -> None:
    server, room = matched
    bundles = [world.seal("filimo", "views", tmp_path / f"v{i}.bundle") for i in range(3)]
    token = world.tokens["filimo_admin"]
    with ThreadPoolExecutor(3) as pool:
        statuses = sorted(pool.map(lambda b: upload(server, token, b).status_code, bundles))
    assert statuses[0] == 201 and set(statuses) <= {201, 409}
    versions = call(server, "GET", "/api/v1/datasets/filimo/views", token).json()["versions"]
    assert [v["status"] for v in versions].count("live") == 1
    assert len(versions) == 1 + statuses.count(201)  # v1 from the first upload, plus each accepted
    tables = room.wh.tables()
    assert [t for t in tables if t.startswith("d_filimo__views")] == [
        f"d_filimo__views__v{versions[0]['version']}"
    ]
    assert not [t for t in tables if t.startswith("stage_")]


def test_values_are_encrypted_at_rest(world: World, matched: tuple[LiveServer, Room]) -> None:
    _, room = matched
    room.wh.checkpoint()
    for path in room.paths.root.glob("warehouse.duckdb*"):
        data = path.read_bytes()
        for value in (b"Tehran", b"Mashhad", b"bakery", b"2026-01"):
            assert value not in data, (path.name, value)
