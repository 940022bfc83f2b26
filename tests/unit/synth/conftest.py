"""Small generated data sets shared by the synth tests (generated once per session)."""

from __future__ import annotations

import pytest
from synth_support import CHUNK, PERSONS

from cleanroom.synth import SynthSummary, generate


@pytest.fixture(scope="session")
def csv_run(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return generate(tmp_path_factory.mktemp("csv"), persons=PERSONS, chunk_persons=CHUNK)


@pytest.fixture(scope="session")
def parquet_run(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    out = tmp_path_factory.mktemp("parquet")
    return generate(out, persons=PERSONS, chunk_persons=CHUNK, fmt="parquet")
