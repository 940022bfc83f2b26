"""A small group world for system tests: five parties' data, keys, bundles, a room, a server."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from cleanroom.config import load_settings
from cleanroom.keys import (
    SymmetricKey,
    generate_match_key,
    generate_party_keys,
    load_room_public_key,
    load_signing_key,
    load_symmetric_key,
)
from cleanroom.party.prepare import prepare
from cleanroom.room.api.app import create_app
from cleanroom.room.auth import Role
from cleanroom.room.policy.build import policy_document, write_policy
from cleanroom.room.room import Room, init_room
from cleanroom.spec import load_spec
from cleanroom.synth import generate
from cleanroom.synth.generator import SynthSummary

NAMES = {
    "ofogh": "Ofogh grocery stores",
    "okala": "Okala online grocery",
    "filimo": "Filimo streaming",
    "tapsi": "Tapsi rides",
    "ozone": "Ozone payments",
}


@dataclass
class World:
    root: Path
    data: SynthSummary
    match_key: SymmetricKey
    room_dir: Path
    bundles: dict[tuple[str, str], Path] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def key(self, party: str, suffix: str) -> Path:
        return self.root / "keys" / party / f"{party}.{suffix}"

    def seal(self, source: str, dataset: str, out: Path, **overrides: object) -> Path:
        """Prepare ``source``'s dataset as its party would, with any argument overridden."""
        args: dict[str, object] = {
            "input_path": self.data.files[(source, dataset)],
            "spec": load_spec(self.data.specs[(source, dataset)]),
            "party": source,
            "match_key": self.match_key,
            "room_key": load_room_public_key(self.room_dir / "keys" / "room.pub"),
            "signing_key": load_signing_key(self.key(source, "key")),
            "out": out,
        } | overrides
        prepare(**args)  # type: ignore[arg-type]
        return out


def build_world(root: Path, *, persons: int = 2_000, seed: int = 11) -> World:
    data = generate(root / "data", persons=persons, seed=seed)
    match_written = generate_match_key(root / "keys" / "match.key")
    parties = sorted({p for p, _ in data.files})
    for party in parties:
        generate_party_keys(party, root / "keys" / party)
    specs: dict[str, list] = {p: [] for p in parties}
    for (party, _dataset), spec_path in data.specs.items():
        specs[party].append(load_spec(spec_path))
    document = policy_document(
        "group-journeys",
        match_written.key_ids["match_key_id"],
        {p: (NAMES[p], root / "keys" / p / f"{p}.pub", specs[p]) for p in parties},
    )
    policy = write_policy(root / "policy.yaml", document)
    room_dir = root / "room"
    init_room(room_dir, policy)
    world = World(
        root, data, load_symmetric_key(root / "keys" / "match.key", "match-key"), room_dir
    )
    for party, dataset in data.files:
        world.bundles[(party, dataset)] = world.seal(
            party, dataset, root / "bundles" / f"{party}.{dataset}.bundle"
        )
    room = open_room(room_dir, warehouse=False)
    for party in parties:
        world.tokens[f"{party}_admin"] = room.users.add(f"{party}-admin", Role.party_admin, party)[
            1
        ]
        world.tokens[f"{party}_analyst"] = room.users.add(f"{party}-analyst", Role.analyst, party)[
            1
        ]
    for role in (Role.room_admin, Role.reviewer, Role.reporter):
        world.tokens[role.value] = room.users.add(role.value.replace("_", "-"), role)[1]
    room.close()
    return world


def open_room(room_dir: Path, **kwargs: object) -> Room:
    return Room(load_settings(room_dir, environment="development"), **kwargs)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """The real app on a real socket, in a thread of the test process."""

    def __init__(self, room: Room) -> None:
        self.room = room
        self.port = free_port()
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
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
