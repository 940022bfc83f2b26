"""``cleanroom demo``: the whole flow on generated group data, offline, on one machine."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.table import Table

from cleanroom.bundle import read_bundle
from cleanroom.cli.console import console
from cleanroom.keys import (
    generate_match_key,
    generate_party_keys,
    generate_room_keys,
    load_room_public_key,
    load_signing_key,
    load_symmetric_key,
    load_verify_key,
)
from cleanroom.party.prepare import prepare
from cleanroom.spec import load_spec


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-out"), show_default=True)
@click.option(
    "--persons", type=click.IntRange(1_000, 20_000_000), default=50_000, show_default=True
)
@click.option("--seed", type=int, default=7, show_default=True)
def demo(out: Path, persons: int, seed: int) -> None:
    """Generate five parties, give each its keys, and seal every dataset for the room."""
    from cleanroom.synth import generate

    start = time.perf_counter()
    console.print(f"[bold]1. generating {persons:,} persons across five brands[/] → {out}/data")
    data = generate(out / "data", persons=persons, seed=seed, fmt="csv")
    keys = out / "keys"
    console.print("[bold]2. keys[/]: room key pair + secret, one signing key per party, match key")
    generate_room_keys(keys / "room", force=True)
    generate_match_key(keys / "match.key", force=True)
    parties = sorted({party for party, _ in data.files})
    for party in parties:
        generate_party_keys(party, keys / party, force=True)
    room_pub = load_room_public_key(keys / "room" / "room.pub")
    match_key = load_symmetric_key(keys / "match.key", "match-key")
    console.print("[bold]3. each party normalizes, tokenizes and seals its datasets[/]")
    table = Table("party", "dataset", "rows read", "sealed", "rejected", "MB", "signature")
    for (party, dataset), path in sorted(data.files.items()):
        bundle = out / "bundles" / f"{party}.{dataset}.bundle"
        result = prepare(
            input_path=path,
            spec=load_spec(path.with_name(f"{dataset}.spec.yaml")),
            party=party,
            match_key=match_key,
            room_key=room_pub,
            signing_key=load_signing_key(keys / party / f"{party}.key"),
            out=bundle,
        )
        info = read_bundle(bundle, expected_signer=load_verify_key(keys / party / f"{party}.pub"))
        s = result.summary
        table.add_row(
            party,
            dataset,
            f"{s.rows_read:,}",
            f"{s.rows_written:,}",
            f"{s.rows_read - s.rows_written:,}",
            f"{bundle.stat().st_size / 1e6:.1f}",
            f"ok ({info.header['signer_key_id'][:12]}…)",
        )
    console.print(table)
    console.print(
        f"done in {time.perf_counter() - start:.1f}s; bundles in {out / 'bundles'}, "
        f"ground truth in {out / 'data' / 'truth'}",
        highlight=False,
    )
