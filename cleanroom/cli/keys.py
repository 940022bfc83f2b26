"""``cleanroom keys``: key generation. Prints paths and key ids, never key material."""

from __future__ import annotations

from pathlib import Path

import click

from cleanroom.cli.console import console
from cleanroom.contract.keys import (
    WrittenKeys,
    generate_backup_keys,
    generate_match_key,
    generate_party_keys,
    generate_room_keys,
)
from cleanroom.contract.spec import NAME

_passphrase = click.option(
    "--passphrase",
    is_flag=True,
    help="Ask for a passphrase and encrypt the private key(s) with it.",
)
_force = click.option("--force", is_flag=True, help="Overwrite existing key files.")


def _ask(enabled: bool) -> bytes | None:
    if not enabled:
        return None
    value: str = click.prompt("Passphrase", hide_input=True, confirmation_prompt=True)
    return value.encode()


def _report(written: WrittenKeys) -> None:
    for path in written.files:
        console.print(f"wrote {path}", highlight=False)
    for name, key_id in written.key_ids.items():
        console.print(f"{name}: {key_id}", highlight=False)


@click.group()
def keys() -> None:
    """Generate room, party and group match keys."""


@keys.command("room")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Directory.")
@_passphrase
@_force
def room_keys(out: Path, passphrase: bool, force: bool) -> None:
    """Room key pair (HPKE X25519) and the room's re-keying secret."""
    _report(generate_room_keys(out, passphrase=_ask(passphrase), force=force))


@keys.command("party")
@click.argument("party")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Directory.")
@_passphrase
@_force
def party_keys(party: str, out: Path, passphrase: bool, force: bool) -> None:
    """A party's Ed25519 signing key pair (PARTY.key, PARTY.pub)."""
    if not NAME.match(party):
        raise click.BadParameter("lower-case letters, digits and '_'", param_hint="PARTY")
    _report(generate_party_keys(party, out, passphrase=_ask(passphrase), force=force))


@keys.command("match-key")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Key file.")
@_passphrase
@_force
def match_key(out: Path, passphrase: bool, force: bool) -> None:
    """A new group match key (32 random bytes), shared by the parties, never the room."""
    _report(generate_match_key(out, passphrase=_ask(passphrase), force=force))


@keys.command("backup")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Directory.")
@_passphrase
@_force
def backup_keys(out: Path, passphrase: bool, force: bool) -> None:
    """The operator's backup key pair: backup.pub for the room, backup.key kept off it."""
    _report(generate_backup_keys(out, passphrase=_ask(passphrase), force=force))
