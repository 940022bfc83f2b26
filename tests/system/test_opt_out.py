"""Opt-out across brands and match-key rotation, through the CLI as a party and an operator would.

A handcrafted group of three brands (``alpha`` runs a campaign) whose persons
stay inside every per-person bound, so each template's exact counts are a
function of the data alone. One customer, present at all three brands under
different spellings of one phone number, objects at ``beta``: beta seals a
suppression list (``cleanroom prepare --kind suppression``) naming the phone
in yet another spelling, uploads it with ``cleanroom upload``, the operator
runs ``cleanroom match``, and every template's exact counts must equal those
of a room that never held the customer — and differ before the list applied.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from cleanroom import clock
from cleanroom.contract.bundle import BundleWriter
from cleanroom.contract.keyed_hash import TOKEN_TYPE, TOKEN_VERSION
from cleanroom.contract.keys import (
    generate_match_key,
    generate_party_keys,
    load_room_public_key,
    load_signing_key,
    load_symmetric_key,
)
from cleanroom.contract.spec import load_spec
from cleanroom.errors import BundleError, ConflictError, ForbiddenError, MixedMatchKeysError
from cleanroom.party.prepare import prepare
from cleanroom.room.analyses import prepare_template
from cleanroom.room.analyses.overlap import Overlap
from cleanroom.room.auth import Role
from cleanroom.room.ingest import ingest
from cleanroom.room.matching import live_generation, run_match
from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.selection import GenerationTables
from cleanroom.room.state import Room, init_room
from cleanroom.room.suppression import SuppressionList, live_lists
from tests.system.test_web import Visitor, csrf_of
from tests.system.world import LiveServer, open_room, run_cli
from tests.unit.room.journey_room import BRANDS, Event, Exposure, ordinary, policy
from tests.unit.room.test_analyses_sensitivity import CONFIGS, FIXED_SALT

OBJECTOR = 9_999  # the customer who objects (not among the ordinary persons)
# The objector's phone as each brand's export spells it, and as beta's suppression list does.
SPELLINGS = {"alpha": "09121119999", "beta": "+98 912 111 9999", "gamma": "98-912-111-9999"}
LISTED = "۰۹۱۲ ۱۱۱ ۹۹۹۹"  # Persian digits: the same number once more
SPEC_EVENTS = {
    "identifiers": {"mobile": "phone"},
    "columns": {"at": "timestamp", "channel": "category", "amount": "number"},
    "time": "at",
}
SPEC_CAMPAIGN = {
    "identifiers": {"mobile": "phone"},
    "columns": {"exposed_at": "timestamp", "arm": "category"},
    "time": "exposed_at",
}


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def phone(person: int, brand: str) -> str:
    if person == OBJECTOR:
        return SPELLINGS[brand]
    return f"0912{person:07d}" if brand != "beta" else f"+98912{person:07d}"


def objector() -> tuple[list[Event], list[Exposure]]:
    """Two events at every brand, in order alpha → beta → gamma, and a treated exposure."""
    at = dt.datetime(2026, 2, 3, 10)
    events = [
        Event(OBJECTOR, brand, at + dt.timedelta(days=9 * i + j), "app", 120.0 + i)
        for i, brand in enumerate(BRANDS)
        for j in (0, 1)
    ]
    return events, [Exposure(OBJECTOR, dt.datetime(2026, 1, 20, 9), "treatment")]


def write_exports(out: Path, events: list[Event], exposures: list[Exposure]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for brand in BRANDS:
        with (out / f"{brand}.events.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["mobile", "at", "channel", "amount"])
            for e in events:
                if e.brand == brand:
                    amount = "" if e.amount is None else e.amount
                    w.writerow([phone(e.person, brand), e.at.isoformat(), e.channel, amount])
    with (out / "alpha.campaign.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["mobile", "exposed_at", "arm"])
        for x in exposures:
            w.writerow([phone(x.person, "alpha"), x.at.isoformat(), x.arm])


class Site:
    """One room with its parties' keys, specs and exports on disk."""

    def __init__(self, root: Path, events: list[Event], exposures: list[Exposure]) -> None:
        self.root = root
        self.sealed = 0
        keys = root / "keys"
        match_id = generate_match_key(keys / "match.key").key_ids["match_key_id"]
        for brand in BRANDS:
            generate_party_keys(brand, keys / brand)
        doc = policy().model_dump(mode="json", exclude_none=True)
        doc["match_key_id"] = match_id
        for brand in BRANDS:
            doc["parties"][brand]["public_key"] = (keys / brand / f"{brand}.pub").read_text()
        CollaborationPolicy.model_validate(doc)
        (root / "policy.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
        init_room(root / "room", root / "policy.yaml")
        write_exports(root / "exports", events, exposures)
        specs = root / "specs"
        specs.mkdir()
        for brand in BRANDS:
            (specs / f"{brand}.events.yaml").write_text(
                yaml.safe_dump({"dataset": "events", **SPEC_EVENTS})
            )
        (specs / "alpha.campaign.yaml").write_text(
            yaml.safe_dump({"dataset": "campaign", **SPEC_CAMPAIGN})
        )
        (specs / "suppression.yaml").write_text(
            yaml.safe_dump({"dataset": "optout", "identifiers": {"phone": "phone"}})
        )
        room = open_room(root / "room", warehouse=False)
        try:
            self.tokens = {
                brand: room.users.add(f"{brand}-admin", Role.party_admin, brand)[1]
                for brand in BRANDS
            }
            self.tokens["admin"] = room.users.add("room-admin", Role.room_admin)[1]
            self.tokens["reporter"] = room.users.add("reporter", Role.reporter)[1]
        finally:
            room.close()

    def inputs(self) -> Iterator[tuple[str, str]]:
        yield from [(b, "events") for b in BRANDS]
        yield "alpha", "campaign"

    def seal(self, party: str, dataset: str) -> Path:
        """In process, as the reference room's parties do."""
        out = self.root / "bundles" / f"{party}.{dataset}.bundle"
        prepare(
            input_path=self.root / "exports" / f"{party}.{dataset}.csv",
            spec=load_spec(self.root / "specs" / f"{party}.{dataset}.yaml"),
            party=party,
            match_key=load_symmetric_key(self.root / "keys" / "match.key", "match-key"),
            room_key=load_room_public_key(self.root / "room" / "keys" / "room.pub"),
            signing_key=load_signing_key(self.root / "keys" / party / f"{party}.key"),
            out=out,
        )
        return out

    def cli_seal(self, party: str, what: str, source: Path, *extra: str) -> Path:
        self.sealed += 1
        out = self.root / "bundles" / f"{party}.{what}.{self.sealed}.bundle"
        args = ["--dataset", what] if what != "suppression" else ["--kind", "suppression"]
        spec = (
            self.root
            / "specs"
            / (f"{party}.{what}.yaml" if what != "suppression" else "suppression.yaml")
        )
        ok(
            run_cli(
                "prepare", "--party", party, *args, "--input", source, "--spec", spec,
                "--match-key", self.root / "keys" / "match.key",
                "--room-key", self.root / "room" / "keys" / "room.pub",
                "--signing-key", self.root / "keys" / party / f"{party}.key",
                "--out", out, *extra,
                cwd=self.root,
            )
        )  # fmt: skip
        return out


NOTICE = "Customers who opted out were left out of these numbers at every brand."


def console_answer(url: str, token: str) -> str:
    """A retention query through the web console, as a signed-in reporter; the page."""
    v = Visitor(url)
    assert v.sign_in(token).status_code == 303
    form = v.get("/ui/console").text
    params = {"p.start": "2026-01", "p.months": "6", "epsilon": "0.5"}
    page = v.post("/ui/console", {"csrf": csrf_of(form), "template": "retention", **params})
    assert page.status_code == 200, page.text[-500:]
    assert "± " in page.text or "±" in page.text
    return page.text


def exact_counts(room: Room) -> dict[str, Any]:
    """Every template configuration's exact vectors on the live generation (never released)."""
    generation = live_generation(room)
    assert generation is not None
    # One salt for both rooms (each room's own secret would choose differently; no
    # person here makes more transitions than the bound, so nothing is chosen anyway).
    tables = GenerationTables(generation.tables, FIXED_SALT)
    active = room.active_policy().policy
    out: dict[str, Any] = {}
    for index, (name, params) in enumerate(CONFIGS):
        prepared = prepare_template(name, params, policy=active, party="reporter")
        cursor = room.backend.cursor()
        exact = prepared.exact(cursor, tables)
        key = f"{index}:{name}"
        if isinstance(prepared, Overlap):
            out[key] = {str(k): v for k, v in dict(exact).items()}
        else:
            out[key] = {v: {str(c): n for c, n in cells.items()} for v, cells in exact.items()}
    return out


@pytest.fixture(scope="module")
def ordinary_people() -> tuple[list[Event], list[Exposure]]:
    return ordinary(seed=5, persons=80, most=3)  # at most 2 transitions each: no draw


@pytest.fixture(scope="module")
def without_objector(
    tmp_path_factory: pytest.TempPathFactory, ordinary_people: tuple[list[Event], list[Exposure]]
) -> dict[str, Any]:
    """The reference: the same group, the objector never uploaded by anyone."""
    site = Site(tmp_path_factory.mktemp("reference"), *ordinary_people)
    room = open_room(site.root / "room")
    try:
        for party, dataset in site.inputs():
            ingest(room, site.seal(party, dataset), room.users.get(f"{party}-admin"))
        run_match(room, room.users.get("room-admin"))
        return exact_counts(room)
    finally:
        room.close()


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, ordinary_people: tuple[list[Event], list[Exposure]]
) -> Site:
    events, exposures = ordinary_people
    extra_events, extra_exposures = objector()
    return Site(
        tmp_path_factory.mktemp("optout"), events + extra_events, exposures + extra_exposures
    )


def test_an_opted_out_customer_disappears_from_every_template(
    site: Site, without_objector: dict[str, Any]
) -> None:
    room = open_room(site.root / "room")
    try:
        with LiveServer(room) as server:
            url = ["--url", server.url]
            for party, dataset in site.inputs():
                bundle = site.cli_seal(
                    party, dataset, site.root / "exports" / f"{party}.{dataset}.csv"
                )
                ok(run_cli("upload", bundle, *url, "--token", site.tokens[party], cwd=site.root))
            ok(run_cli("match", *url, "--token", site.tokens["admin"], cwd=site.root))
            before = exact_counts(room)
            changed = [k for k in before if before[k] != without_objector[k]]
            assert changed == list(before), "the objector must count in every template first"
            assert NOTICE not in console_answer(server.url, site.tokens["reporter"])

            listed = site.root / "exports" / "beta.optout.csv"
            listed.write_text(f"phone\n{LISTED}\n", encoding="utf-8")
            bundle = site.cli_seal("beta", "suppression", listed)
            shown = ok(run_cli("inspect", bundle, "--json", cwd=site.root))
            assert json.loads(shown)["kind"] == "suppression"
            said = ok(
                run_cli("upload", bundle, *url, "--token", site.tokens["beta"], cwd=site.root)
            )
            assert "suppression list v1 is live" in said
            # Listed, but not applied until the next match.
            assert exact_counts(room) == before
            latest = json.loads(
                ok(run_cli("match", *url, "--token", site.tokens["admin"], cwd=site.root))
            )
            assert latest["suppression_applied"] is True
            assert exact_counts(room) == without_objector
            # The console says so beside the answer (and never how many).
            assert NOTICE in console_answer(server.url, site.tokens["reporter"])

            # A new list replaces the old one: withdrawing the objection brings the customer back.
            empty = site.root / "exports" / "beta.none.csv"
            empty.write_text("phone\n", encoding="utf-8")
            bundle = site.cli_seal("beta", "suppression", empty)
            ok(run_cli("upload", bundle, *url, "--token", site.tokens["beta"], cwd=site.root))
            ok(run_cli("match", *url, "--token", site.tokens["admin"], cwd=site.root))
            assert exact_counts(room) == before
            # Still a list applied (an empty one): saying otherwise would tell how many (none).
            assert NOTICE in console_answer(server.url, site.tokens["reporter"])
    finally:
        room.close()
    trail = [json.loads(r["details"]) | {"action": r["action"]} for r in _audit(site)]
    uploads = [t for t in trail if t["action"] == "suppression.upload"]
    assert [t["version"] for t in uploads] == [1, 2]
    assert all("rows" not in t for t in uploads)
    matches = [t for t in trail if t["action"] == "match.run"]
    assert [m["suppression"] for m in matches] == [{}, {"beta": 1}, {"beta": 2}]


def _audit(site: Site) -> list[Any]:
    import sqlite3

    db = sqlite3.connect(site.root / "room" / "meta.sqlite")
    db.row_factory = sqlite3.Row
    try:
        return list(db.execute("SELECT action, details FROM audit ORDER BY seq"))
    finally:
        db.close()


def test_a_mixed_match_key_match_is_refused_naming_the_parties_behind(
    tmp_path: Path, ordinary_people: tuple[list[Event], list[Exposure]]
) -> None:
    site = Site(tmp_path, *ordinary_people)
    room = open_room(site.root / "room")
    try:
        with LiveServer(room) as server:
            url = ["--url", server.url]
            for party, dataset in site.inputs():
                bundle = site.cli_seal(
                    party, dataset, site.root / "exports" / f"{party}.{dataset}.csv"
                )
                ok(run_cli("upload", bundle, *url, "--token", site.tokens[party], cwd=site.root))
            ok(run_cli("match", *url, "--token", site.tokens["admin"], cwd=site.root))
            generation = live_generation(room)
            assert generation is not None
            # The ceremony: a new key, a policy version announcing it with a cut-over.
            old_key = load_symmetric_key(site.root / "keys" / "match.key", "match-key").key_id
            new_id = generate_match_key(site.root / "keys" / "match2.key").key_ids["match_key_id"]
            doc = yaml.safe_load((site.root / "policy.yaml").read_text())
            cutover = clock.now() + dt.timedelta(days=1)
            doc["match_key_rotation"] = {"to_key_id": new_id, "cutover": cutover.isoformat()}
            _activate(room, doc)
            (site.root / "keys" / "match.key").rename(site.root / "keys" / "old.key")
            (site.root / "keys" / "match2.key").rename(site.root / "keys" / "match.key")
            fresh = site.cli_seal("beta", "events", site.root / "exports" / "beta.events.csv")
            early = run_cli("upload", fresh, *url, "--token", site.tokens["beta"], cwd=site.root)
            assert early.returncode != 0 and "cut-over" in early.stderr
            with clock.use(clock.SetClock(cutover + dt.timedelta(hours=1))):
                fresh = site.cli_seal("beta", "events", site.root / "exports" / "beta.events.csv")
                ok(run_cli("upload", fresh, *url, "--token", site.tokens["beta"], cwd=site.root))
                refused = run_cli("match", *url, "--token", site.tokens["admin"], cwd=site.root)
                assert refused.returncode != 0
                assert "alpha" in refused.stderr and "gamma" in refused.stderr
                assert "beta (" not in refused.stderr  # beta already moved
                assert live_generation(room) == generation  # the old generation stays live
                for party, dataset in site.inputs():
                    if party == "beta":
                        continue
                    bundle = site.cli_seal(
                        party, dataset, site.root / "exports" / f"{party}.{dataset}.csv"
                    )
                    ok(
                        run_cli(
                            "upload", bundle, *url, "--token", site.tokens[party], cwd=site.root
                        )
                    )
                ok(run_cli("match", *url, "--token", site.tokens["admin"], cwd=site.root))
                # Every party moved: the old key is retired and its bundles refused for good.
                stale = site.cli_seal(
                    "gamma", "events", site.root / "exports" / "gamma.events.csv",
                    "--match-key", site.root / "keys" / "old.key",
                )  # fmt: skip
                late = run_cli(
                    "upload", stale, *url, "--token", site.tokens["gamma"], cwd=site.root
                )
                assert late.returncode != 0 and "retired" in late.stderr
    finally:
        room.close()
    actions = [r["action"] for r in _audit(site)]
    assert actions.count("match_key.retired") == 1
    assert old_key in {json.loads(r["details"]).get("match_key_id") for r in _audit(site)}


def _activate(room: Room, doc: dict[str, Any]) -> None:
    """The reviewers' part of the ceremony: propose the rotation, two others approve it."""
    names = ("author", "first", "second")
    for name in names:
        room.users.add(f"reviewer-{name}", Role.reviewer)
    author, *approvers = (room.users.get(f"reviewer-{n}") for n in names)
    text = yaml.safe_dump(doc, allow_unicode=True)
    proposal, changes = room.policies.propose(author, text, "rotate the match key")
    assert [c.privacy for c in changes] == ["loosens"]
    for reviewer in approvers:
        room.policies.approve(reviewer, proposal.version)
    assert room.active_policy().policy.match_key_rotation is not None


def crafted(site: Site, party: str, metadata: dict[str, Any], table: pa.Table) -> Path:
    """A bundle sealed and signed properly by ``party`` but with a header of our choosing."""
    payload = io.BytesIO()
    pq.write_table(table, payload)
    out = site.root / "bundles" / f"crafted-{secrets.token_hex(4)}.bundle"
    with BundleWriter(
        out,
        party=party,
        dataset="suppression",
        metadata={
            "match_key_id": load_symmetric_key(
                site.root / "keys" / "match.key", "match-key"
            ).key_id,
            "token_version": TOKEN_VERSION,
            **metadata,
        },
        room_key=load_room_public_key(site.root / "room" / "keys" / "room.pub"),
        signing_key=load_signing_key(site.root / "keys" / party / f"{party}.key"),
    ) as bundle:
        bundle.write(payload.getvalue())
        bundle.finish({"rows": table.num_rows})
    return out


def test_the_room_refuses_bad_suppression_uploads_and_changes_nothing(
    tmp_path: Path, ordinary_people: tuple[list[Event], list[Exposure]]
) -> None:
    site = Site(tmp_path, *ordinary_people)
    listed = site.root / "exports" / "beta.optout.csv"
    listed.write_text(f"phone\n{LISTED}\n", encoding="utf-8")
    bundle = site.cli_seal("beta", "suppression", listed)
    room = open_room(site.root / "room")
    try:
        with pytest.raises(ForbiddenError):  # only beta's own admin uploads beta's list
            ingest(room, bundle, room.users.get("alpha-admin"))
        tokens = pa.table({"phone": pa.array([b"\x01" * 32], TOKEN_TYPE)})
        spec = {"dataset": "x", "identifiers": {"phone": "phone"}, "columns": {"a": "number"}}
        columns = crafted(
            site,
            "beta",
            {"kind": "suppression", "spec": spec},
            tokens.append_column("a", pa.array([1.0])),
        )
        with pytest.raises(BundleError, match="identifiers only"):
            ingest(room, columns, room.users.get("beta-admin"))
        unknown = crafted(site, "beta", {"kind": "erasure"}, tokens)
        with pytest.raises(BundleError, match="unknown bundle kind"):
            ingest(room, unknown, room.users.get("beta-admin"))
        assert live_lists(room.store.connection()) == []
        first = ingest(room, bundle, room.users.get("beta-admin"))
        assert isinstance(first, SuppressionList)
        with pytest.raises(ConflictError, match="replay"):
            ingest(room, bundle, room.users.get("beta-admin"))
        assert live_lists(room.store.connection()) == [first]
        # What its uploader is told, and what everyone sees of a match: no count at all.
        assert not {"rows", "tokens", "persons"} & set(first.public())
        refusals = [
            json.loads(r["details"])["reason"]
            for r in _audit(site)
            if r["action"] == "dataset.upload"
        ]
        assert refusals == ["forbidden", "bad_bundle", "bad_bundle", "conflict"]
    finally:
        room.close()


def test_an_objection_under_the_old_key_keeps_the_rotation_open(
    tmp_path: Path, ordinary_people: tuple[list[Event], list[Exposure]]
) -> None:
    """A party whose list is still under the old key is named; the old key stays until it moves."""
    site = Site(tmp_path, *ordinary_people)
    listed = site.root / "exports" / "beta.optout.csv"
    listed.write_text(f"phone\n{LISTED}\n", encoding="utf-8")
    room = open_room(site.root / "room")
    try:
        admin = room.users.get("room-admin")
        for party, dataset in site.inputs():
            ingest(room, site.seal(party, dataset), room.users.get(f"{party}-admin"))
        ingest(room, site.cli_seal("beta", "suppression", listed), room.users.get("beta-admin"))
        old_key = load_symmetric_key(site.root / "keys" / "match.key", "match-key").key_id
        new_id = generate_match_key(site.root / "keys" / "match2.key").key_ids["match_key_id"]
        doc = yaml.safe_load((site.root / "policy.yaml").read_text())
        doc["match_key_rotation"] = {"to_key_id": new_id, "cutover": clock.now().isoformat()}
        _activate(room, doc)
        (site.root / "keys" / "match.key").rename(site.root / "keys" / "old.key")
        (site.root / "keys" / "match2.key").rename(site.root / "keys" / "match.key")
        for party, dataset in site.inputs():
            ingest(room, site.seal(party, dataset), room.users.get(f"{party}-admin"))
        with pytest.raises(MixedMatchKeysError, match=r"beta \(suppression list") as caught:
            run_match(room, admin)
        assert caught.value.details["parties"] == ["beta"]
        assert room.store.connection().execute("SELECT * FROM retired_match_keys").fetchall() == []
        ingest(room, site.cli_seal("beta", "suppression", listed), room.users.get("beta-admin"))
        statuses = (
            room.store.connection()
            .execute("SELECT version, status, match_key_id FROM suppressions ORDER BY version")
            .fetchall()
        )
        assert [tuple(r) for r in statuses] == [(1, "retired", old_key), (2, "live", new_id)]
        assert not {t for t in room.wh.tables() if t.startswith("s_beta__v1")}
        generation = run_match(room, admin)
        assert generation.suppression == {"beta": 2}
    finally:
        room.close()
    retired = [json.loads(r["details"]) for r in _audit(site) if r["action"] == "match_key.retired"]
    assert retired and retired[0]["to_key_id"] == new_id
