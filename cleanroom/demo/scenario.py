"""A whole group on one machine: generated data, every party's keys, a room, a live server.

``cleanroom demo`` runs it for people; the system tests run it for proof. The
parties' side and the room's side keep to their own keys here just as they
would on separate machines: the room never sees the match key, the parties
never see the room's private key.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from cleanroom.contract.keys import (
    SymmetricKey,
    generate_match_key,
    generate_party_keys,
    load_room_public_key,
    load_signing_key,
    load_symmetric_key,
)
from cleanroom.contract.spec import DatasetSpec, load_spec
from cleanroom.party.prepare import PrepareResult, prepare
from cleanroom.room.analyses import TEMPLATES
from cleanroom.room.auth import Role
from cleanroom.room.config import load_settings
from cleanroom.room.http.app import create_app
from cleanroom.room.policy.build import policy_document, write_policy
from cleanroom.room.state import Room, init_room
from cleanroom.synth import generate
from cleanroom.synth.generator import SynthSummary

# Metric bounds a collaboration would agree on (tomans, minutes): values are clamped to them.
BOUNDS = {"amount": [0, 20_000_000], "fare": [0, 3_000_000], "minutes": [0, 600]}
NOT_ACTIVITY = {("ozone", "campaign")}


def demo_privacy(parties: list[str]) -> dict[str, Any]:
    """A realistic privacy section: a monthly cap shared by the brands and the reporters."""
    return {
        "mechanism": "laplace",
        "budget": {
            "epsilon": 10.0,
            "period": "month",
            "shares": {**dict.fromkeys(parties, 1.6), "reporter": 2.0},
        },
        "max_epsilon_per_query": 1.0,
        "default_epsilon": 0.5,
        "max_rows_per_person": 10,
        "max_groups_per_person": 5,
        "min_noisy_persons": 10,
    }


def column_roles(summary: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Domains from the generator's declared category sets, bounds from :data:`BOUNDS`."""
    roles: dict[str, dict[str, dict[str, Any]]] = {}
    for dataset, domains in summary.get("domains", {}).items():
        roles[dataset] = {column: {"domain": values} for column, values in domains.items()}
    return roles


NAMES = {
    "ofogh": "Ofogh grocery stores",
    "okala": "Okala online grocery",
    "filimo": "Filimo streaming",
    "tapsi": "Tapsi rides",
    "ozone": "Ozone payments",
}
# The brands' names in Persian, for pages and reports in Persian (policy `names: {fa: …}`).
NAMES_FA = {
    "ofogh": "فروشگاه‌های افق",
    "okala": "اکالا",
    "filimo": "فیلیمو",
    "tapsi": "تپسی",
    "ozone": "اوزون",
}


@dataclass
class Group:
    """Paths, keys and tokens of a generated group and its room."""

    root: Path
    data: SynthSummary
    match_key: SymmetricKey
    room_dir: Path
    bundles: dict[tuple[str, str], Path] = field(default_factory=dict)
    sealed: dict[tuple[str, str], PrepareResult] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def key(self, party: str, suffix: str) -> Path:
        """A party's key file (``key`` or ``pub``)."""
        return self.root / "keys" / party / f"{party}.{suffix}"

    def seal(self, source: str, dataset: str, out: Path, **overrides: Any) -> Path:
        """Prepare ``source``'s dataset as its party would, any argument overridden."""
        self.sealed[(source, dataset)] = self._prepare(source, dataset, out, **overrides)
        return out

    def _prepare(self, source: str, dataset: str, out: Path, **overrides: Any) -> PrepareResult:
        args: dict[str, Any] = {
            "input_path": self.data.files[(source, dataset)],
            "spec": load_spec(self.data.specs[(source, dataset)]),
            "party": source,
            "match_key": self.match_key,
            "room_key": load_room_public_key(self.room_dir / "keys" / "room.pub"),
            "signing_key": load_signing_key(self.key(source, "key")),
            "out": out,
        } | overrides
        return prepare(**args)


def build_group(
    root: Path,
    *,
    persons: int,
    seed: int = 7,
    step: Callable[[str], None] = lambda _: None,
    reports: dict[str, Any] | None = None,
    retention: dict[str, Any] | None = None,
) -> Group:
    """Generate, give every party its keys, write the policy, create the room, seal.

    ``reports`` and ``retention`` are the policy's sections as they would be written in YAML.
    """
    step(f"generating {persons:,} persons across five brands")
    data = generate(root / "data", persons=persons, seed=seed)
    step("keys: a match key for the parties, a signing key per party")
    match_id = generate_match_key(root / "keys" / "match.key").key_ids["match_key_id"]
    parties = sorted({p for p, _ in data.files})
    specs: dict[str, list[DatasetSpec]] = {p: [] for p in parties}
    for party in parties:
        generate_party_keys(party, root / "keys" / party)
    for (party, _), spec_path in sorted(data.specs.items()):
        specs[party].append(load_spec(spec_path))
    roles = column_roles(json.loads((data.out / "truth" / "summary.json").read_text()))
    for (party, dataset), spec_path in data.specs.items():
        spec = load_spec(spec_path)
        table = roles.setdefault(f"{party}/{dataset}", {})
        for column, kind in spec.columns.items():
            if column in BOUNDS and kind.value in ("number", "integer"):
                table[column] = {"bounds": BOUNDS[column]}
            elif kind.value == "boolean":
                table[column] = {"domain": [True, False]}
    document = policy_document(
        "group-journeys",
        match_id,
        {p: (NAMES.get(p, p), root / "keys" / p / f"{p}.pub", specs[p]) for p in parties},
        roles=roles,
        privacy=demo_privacy(parties),
        templates={name: {"enabled": True} for name in TEMPLATES},
    )
    for party, spec in document["parties"].items():
        if party in NAMES_FA:
            spec["names"] = {"fa": NAMES_FA[party]}
    for party, dataset in NOT_ACTIVITY:  # an assignment table, not something customers do
        if dataset in document["parties"].get(party, {}).get("datasets", {}):
            document["parties"][party]["datasets"][dataset]["activity"] = False
    if reports:
        document["reports"] = reports
    if retention:
        document["retention"] = retention
    policy = write_policy(root / "policy.yaml", document)
    step("room: key pair, secret, encrypted stores, policy v1")
    room_dir = root / "room"
    init_room(room_dir, policy)
    group = Group(
        root, data, load_symmetric_key(root / "keys" / "match.key", "match-key"), room_dir
    )
    room = open_room(room_dir, warehouse=False)
    try:
        for party in parties:
            group.tokens[f"{party}_admin"] = room.users.add(
                f"{party}-admin", Role.party_admin, party
            )[1]
            group.tokens[f"{party}_analyst"] = room.users.add(
                f"{party}-analyst", Role.analyst, party
            )[1]
        for role in (Role.room_admin, Role.reviewer, Role.reporter):
            group.tokens[role.value] = room.users.add(role.value.replace("_", "-"), role)[1]
    finally:
        room.close()
    step("each party normalizes, tokenizes and seals its datasets")
    for party, dataset in sorted(data.files):
        group.bundles[(party, dataset)] = group.seal(
            party, dataset, root / "bundles" / f"{party}.{dataset}.bundle"
        )
    return group


def open_room(room_dir: Path, *, warehouse: bool = True) -> Room:
    """A room opened for a throwaway group (development settings)."""
    return Room(load_settings(room_dir, environment="development"), warehouse=warehouse)


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """The real app on a real loopback socket, served from a thread of this process."""

    def __init__(self, room: Room, port: int | None = None) -> None:
        self.room = room
        self.port = port if port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(room), host="127.0.0.1", port=self.port, log_config=None, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the room service did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
