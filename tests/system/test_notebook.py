"""docs/analyst-notebook.ipynb, executed against a live room as a partner analyst runs it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from cleanroom.room.state import Room
from tests.system.world import LiveServer, World, build_world, load_and_match, open_room

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "analyst-notebook.ipynb"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, LiveServer]]:
    world = build_world(tmp_path_factory.mktemp("notebook"), persons=2_000, seed=31)
    room: Room = open_room(world.room_dir)
    load_and_match(room, world)
    try:
        with LiveServer(room) as server:
            yield world, server
    finally:
        room.close()


def _texts(cell: nbformat.NotebookNode) -> str:
    out = []
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        out += [output.get("text", ""), data.get("text/html", ""), data.get("text/plain", "")]
    return "\n".join(out)


def test_the_notebook_runs_and_shows_frames_with_bounds(
    live: tuple[World, LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    world, server = live
    monkeypatch.setenv("CLEANROOM_URL", server.url)
    monkeypatch.setenv("CLEANROOM_TOKEN", world.tokens["okala_analyst"])
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(c.get("outputs") for c in notebook.cells if c.cell_type == "code")  # kept clean
    NotebookClient(notebook, timeout=300, kernel_name="python3").execute()
    code = [c for c in notebook.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    assert "'party': 'okala'" in _texts(code[0])
    assert "such queries" in _texts(code[1])
    frame = _texts(code[2])
    assert "<table" in frame  # a DataFrame, rendered
    for column in ("city", "measure", "value", "error95", "low", "high", "flags"):
        assert f"<th>{column}</th>" in frame, column
    attrs = _texts(code[3])
    assert "'query_id'" in attrs and "'epsilon': 0.2" in attrs and "'policy_version': 1" in attrs
    assert "<table" in _texts(code[4]) and "combination" in _texts(code[4])
    assert "<table" in _texts(code[6])
    assert "person_in_output" in _texts(code[7])
