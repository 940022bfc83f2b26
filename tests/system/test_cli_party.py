"""The party toolkit driven like a party's data engineer drives it: through the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import leftovers
from tests.system.world import run_cli

SPEC = """\
dataset: orders
identifiers:
  mobile: phone
  mail: email
columns:
  ordered_at: timestamp
  city: category
  amount: number
time: ordered_at
"""
CSV = (
    "mobile,mail,ordered_at,city,amount\n"
    "0912 345 6789,Ali@Gmail.com,2026-01-02 10:00:00,Tehran,120000\n"
    "+98 935 111 2233,,2026-01-04 11:00:00,Shiraz,5000\n"
)


cleanroom = run_cli


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keys made once through the CLI; each test works on its own copy."""
    base = tmp_path_factory.mktemp("keys")
    for args in (
        ("keys", "room", "--out", "room"),
        ("keys", "party", "okala", "--out", "okala"),
        ("keys", "party", "ofogh", "--out", "ofogh"),
        ("keys", "match-key", "--out", "match.key"),
    ):
        result = cleanroom(*args, cwd=base)
        assert result.returncode == 0, result.stderr
    return base


@pytest.fixture
def party_dir(key_dir: Path, tmp_path: Path) -> Path:
    work = tmp_path / "party"
    shutil.copytree(key_dir, work)
    (work / "orders.spec.yaml").write_text(SPEC)
    (work / "orders.csv").write_text(CSV)
    return work


def prepare_args(**overrides: str) -> list[str]:
    args = {
        "--party": "okala",
        "--dataset": "orders",
        "--input": "orders.csv",
        "--spec": "orders.spec.yaml",
        "--match-key": "match.key",
        "--room-key": "room/room.pub",
        "--signing-key": "okala/okala.key",
        "--out": "orders.bundle",
    } | overrides
    return ["prepare", *[x for pair in args.items() for x in pair]]


def test_every_command_has_help(tmp_path: Path) -> None:
    for command in (
        ["--help"],
        ["keys", "--help"],
        ["keys", "room", "--help"],
        ["prepare", "--help"],
        ["inspect", "--help"],
        ["synth", "--help"],
        ["demo", "--help"],
    ):
        result = cleanroom(*command, cwd=tmp_path)
        assert result.returncode == 0 and "Usage:" in result.stdout


def test_keys_print_ids_not_secrets(party_dir: Path) -> None:
    result = cleanroom("keys", "match-key", "--out", "m2.key", cwd=party_dir)
    secret = json.loads((party_dir / "m2.key").read_text())["key"]
    assert "match_key_id:" in result.stdout
    assert secret not in result.stdout + result.stderr


def test_prepare_then_inspect(party_dir: Path) -> None:
    result = cleanroom(*prepare_args(), "--json", cwd=party_dir)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows_written"] == 2
    shown = cleanroom(
        "inspect", "orders.bundle", "--signer-key", "okala/okala.pub", "--json", cwd=party_dir
    )
    assert shown.returncode == 0, shown.stderr
    header = json.loads(shown.stdout)
    assert header["party"] == "okala" and header["rows"] == 2
    assert header["signature"] == "valid (registered key)"
    assert "wrapped_key" not in header


def test_inspect_refuses_another_partys_signature(party_dir: Path) -> None:
    assert cleanroom(*prepare_args(), cwd=party_dir).returncode == 0
    result = cleanroom("inspect", "orders.bundle", "--signer-key", "ofogh/ofogh.pub", cwd=party_dir)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "not signed by party 'okala'" in result.stderr


def test_tampered_bundle_fails_inspect(party_dir: Path) -> None:
    assert cleanroom(*prepare_args(), cwd=party_dir).returncode == 0
    data = bytearray((party_dir / "orders.bundle").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (party_dir / "orders.bundle").write_bytes(bytes(data))
    result = cleanroom("inspect", "orders.bundle", cwd=party_dir)
    assert result.returncode == 1 and "error:" in result.stderr


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"--input": "missing.csv"}, "missing.csv: no such file"),
        ({"--dataset": "rides"}, "describes dataset 'orders', not 'rides'"),
        ({"--match-key": "room/room.pub"}, "room/room.pub: not a cleanroom key file"),
        ({"--room-key": "okala/okala.pub"}, "is not a room (X25519) public key"),
        ({"--signing-key": "room/room.key"}, "is not a party (Ed25519) signing key"),
        ({"--spec": "bad.spec.yaml"}, "bad.spec.yaml: columns.amount"),
        ({"--input": "ragged.csv"}, "ragged.csv: row 1: has 6 fields"),
        ({"--signing-key": "cut.key"}, "cut.key: not a readable private key"),
    ],
)
def test_bad_input_exits_nonzero_with_one_line(
    party_dir: Path, overrides: dict[str, str], fragment: str
) -> None:
    (party_dir / "bad.spec.yaml").write_text(SPEC.replace("amount: number", "amount: money"))
    (party_dir / "ragged.csv").write_text(
        CSV.splitlines()[0] + "\n0912 345 6789,a@b.ir,2026-01-01,Qom,1,EXTRA\n"
    )
    key = (party_dir / "okala" / "okala.key").read_bytes()
    (party_dir / "cut.key").write_bytes(key[: len(key) // 2])
    result = cleanroom(*prepare_args(**overrides), cwd=party_dir)
    assert result.returncode != 0
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert "0912" not in result.stderr
    assert leftovers(party_dir) == []


def test_passphrase_protected_keys_via_environment(party_dir: Path) -> None:
    env = {"CLEANROOM_KEY_PASSPHRASE": "s3cret pass"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cleanroom",
            "keys",
            "party",
            "tapsi",
            "--out",
            "tapsi",
            "--passphrase",
        ],
        cwd=party_dir,
        input="s3cret pass\ns3cret pass\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    locked = cleanroom(
        *prepare_args(**{"--signing-key": "tapsi/tapsi.key", "--party": "tapsi"}), cwd=party_dir
    )
    assert locked.returncode == 1 and "CLEANROOM_KEY_PASSPHRASE" in locked.stderr
    ok = cleanroom(
        *prepare_args(**{"--signing-key": "tapsi/tapsi.key", "--party": "tapsi"}),
        cwd=party_dir,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr


def test_prepare_never_overwrites_a_bundle_unless_told(party_dir: Path) -> None:
    assert cleanroom(*prepare_args(), cwd=party_dir).returncode == 0
    first = (party_dir / "orders.bundle").read_bytes()
    again = cleanroom(*prepare_args(), cwd=party_dir)
    assert again.returncode == 1 and "already there" in again.stderr and "--force" in again.stderr
    assert (party_dir / "orders.bundle").read_bytes() == first
    forced = cleanroom(*prepare_args(), "--force", cwd=party_dir)
    assert forced.returncode == 0, forced.stderr
    assert (party_dir / "orders.bundle").read_bytes() != first  # a new bundle, new id and key
