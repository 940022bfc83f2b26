"""A party re-uploading while the room matches: the match finishes on its snapshot.

Parties upload on their own schedule and matches run on the room's, so a new
version can go live while a match is still reading the old one. The upload
must not pull the old version's table from under the match; that table goes
when the match ends. The upload is made to land mid-match by running it
inside the match's own call to identity resolution, before resolution reads
anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cleanroom.room.backends import duckdb as duckdb_backend
from cleanroom.room.config import load_settings
from cleanroom.room.datasets import DatasetVersion
from cleanroom.room.ingest import ingest, live_datasets
from cleanroom.room.matching import run_match
from cleanroom.room.state import Room
from tests.system.world import build_world, load_and_match


def test_an_upload_during_a_match_neither_fails_it_nor_outlives_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = build_world(tmp_path / "world", persons=300, seed=5)
    room = Room(load_settings(world.room_dir, environment="development"))
    try:
        load_and_match(room, world)
        old = next(d for d in live_datasets(room) if d.party == "tapsi")
        fresh = world.seal("tapsi", old.dataset, tmp_path / "fresh.bundle")
        uploaded: list[DatasetVersion] = []
        resolve = duckdb_backend.resolve

        def upload_then_resolve(*args: Any, **kwargs: Any) -> Any:
            uploaded.append(ingest(room, fresh, room.users.get("tapsi-admin")))
            assert old.table_name in room.wh.tables()  # replaced, still readable
            return resolve(*args, **kwargs)

        monkeypatch.setattr(duckdb_backend, "resolve", upload_then_resolve)
        generation = run_match(room, room.users.get("room-admin"))
        monkeypatch.undo()

        new = uploaded[0]
        assert new.version == old.version + 1
        assert generation.inputs[f"tapsi.{old.dataset}"] == old.version  # the match's snapshot
        tapsi = {t for t in room.wh.tables() if t.startswith(f"d_tapsi__{old.dataset}")}
        assert tapsi == {new.table_name}  # the old version went when the match ended
        following = run_match(room, room.users.get("room-admin"))
        assert following.inputs[f"tapsi.{old.dataset}"] == new.version
    finally:
        room.close()
