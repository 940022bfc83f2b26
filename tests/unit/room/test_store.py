"""The metadata store's migrations, run on the committed room of an earlier release.

The room in ``tests/fixtures/rooms/schema-10`` was made by that release's code
(``make_room.py``); rows its code would have written in the old formats — a
report run's charge as ``report:<name>:<run id>``, a match's bounds charge as
``match-bounds:<generation>``, a report section's release named only by the
audit's ``paid_by`` text — are added to a copy, which is then opened by today's
store.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from cleanroom.room.store import MIGRATIONS, MetaStore

ROOMS = Path(__file__).parents[2] / "fixtures" / "rooms"
FIXTURE = ROOMS / "schema-10" / "meta.sqlite"
RUN = "0123456789abcdef"
SECTION = "feedfacecafebeef"


def _old_rows(path: Path) -> None:
    """What the previous release wrote for one report run and one adaptive-bounds match."""
    db = sqlite3.connect(path)
    with db:
        assert db.execute("SELECT max(version) FROM schema_version").fetchone()[0] == 10
        db.execute(
            "INSERT INTO report_runs (id, report, slot, trigger, actor, status, policy_version,"
            " generation, epsilon, charge_id, inputs, started_at, finished_at) VALUES"
            " (?, 'overlap-weekly', 'manual:x', 'manual', 'scheduler', 'done', 1, 1, '1/10', 2,"
            " '{}', '2026-11-02T09:10:00+00:00', '2026-11-02T09:10:05+00:00')",
            (RUN,),
        )
        charges = [
            (2, "reporter", f"report:overlap-weekly:{RUN}"),
            (3, "reporter", "match-bounds:1"),
            (4, "reporter", "report:gone:fedcba9876543210"),  # its run row was never written
        ]
        for charge_id, party, query_id in charges:
            db.execute(
                "INSERT INTO budget_charges (id, party, period, epsilon_num, epsilon_den,"
                " query_id, charged_at) VALUES (?, ?, '2026-11', 1, 10, ?, ?)",
                (charge_id, party, query_id, "2026-11-02T09:10:00+00:00"),
            )
        db.execute(
            "INSERT INTO queries (id, party, user_name, kind, request, cache_key, policy_version,"
            " generation, epsilon, status, created_at) VALUES (?, 'reporter', 'scheduler',"
            " 'template', '{}', 'k', 1, 1, '1/20', 'done', '2026-11-02T09:10:01+00:00')",
            (SECTION,),
        )
        details = {"query_id": SECTION, "paid_by": f"report run {RUN} (charge 2)"}
        db.execute(
            "INSERT INTO audit (at, actor, action, target, outcome, details, prev_hash, hash)"
            " VALUES ('2026-11-02T09:10:02+00:00', 'scheduler', 'query.run', 'reporter', 'ok',"
            " ?, '', '')",
            (json.dumps(details),),
        )
    db.close()


@pytest.fixture
def migrated(tmp_path: Path) -> sqlite3.Connection:
    path = tmp_path / "meta.sqlite"
    shutil.copyfile(FIXTURE, path)
    _old_rows(path)
    MetaStore(path).close()
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    return db


def test_the_previous_release_s_room_reaches_the_newest_schema(
    migrated: sqlite3.Connection,
) -> None:
    versions = [r[0] for r in migrated.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == list(range(1, len(MIGRATIONS) + 1))


def test_charge_ids_spelled_in_strings_become_columns(migrated: sqlite3.Connection) -> None:
    rows = {
        r["id"]: (r["query_id"], r["report_run"], r["generation"])
        for r in migrated.execute("SELECT * FROM budget_charges")
    }
    made = json.loads((ROOMS / "schema-10.json").read_text())
    assert rows == {
        1: (made["query_id"], None, None),  # the fixture's own query, untouched
        2: (None, RUN, None),
        3: (None, None, 1),
        # No run row to match: the text after the prefix is kept, so the ledger check
        # still names the charge whose run is missing, as it did before.
        4: (None, "gone:fedcba9876543210", None),
    }
    assert not migrated.execute(
        "SELECT count(*) FROM budget_charges WHERE query_id LIKE 'report:%' "
        "OR query_id LIKE 'match-bounds:%'"
    ).fetchone()[0]


def test_a_report_section_s_release_names_its_run(migrated: sqlite3.Connection) -> None:
    named = dict(migrated.execute("SELECT id, report_run FROM queries").fetchall())
    assert named.pop(SECTION) == RUN
    assert set(named.values()) == {None}  # an analyst's own query belongs to no run


@pytest.mark.parametrize(
    ("query_id", "report_run", "generation"),
    [(None, None, None), ("q", "r", None), ("q", None, 1), (None, "r", 1)],
)
def test_a_charge_pays_for_exactly_one_thing(
    migrated: sqlite3.Connection,
    query_id: str | None,
    report_run: str | None,
    generation: int | None,
) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        migrated.execute(
            "INSERT INTO budget_charges (party, period, epsilon_num, epsilon_den, query_id,"
            " report_run, generation, charged_at) VALUES ('acme', '2026-11', 1, 10, ?, ?, ?,"
            " '2026-11-02T09:00:00+00:00')",
            (query_id, report_run, generation),
        )
