"""``cleanroom room expire | backup | restore``: the room's data life, from the command line.

``expire`` and ``backup`` talk to the serving room (``--url``, a room admin's
token), which alone holds the warehouse; with ``--room`` instead they open a
room that is not being served. ``restore`` rebuilds a room from an archive on
this machine. Lines are in the language ``CLEANROOM_LANGUAGE`` names (the
room's own setting), English by default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from cleanroom.cli.console import console
from cleanroom.errors import T_, UserError
from cleanroom.i18n import N_, direction, gettext, language_of
from cleanroom.room.config import load_settings
from cleanroom.text import isolate

_url = click.option("--url", envvar="CLEANROOM_URL", default=None, help="Serving room's URL.")
_token = click.option("--token", envvar="CLEANROOM_TOKEN", default=None, help="Room admin token.")
_room = click.option(
    "--room",
    "room_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A room directory that is not being served (instead of --url).",
)


def say(message: str, **values: object) -> None:
    """One line in the operator's language (the catalogs; values are never translated).

    In a right-to-left language each value is bidi-isolated, so a path or a
    date keeps its own direction inside the Persian sentence.
    """
    language = language_of(os.environ.get("CLEANROOM_LANGUAGE"))
    if direction(language) == "rtl":
        values = {k: isolate(str(v)) for k, v in values.items()}
    console.print(gettext(language, message) % values, highlight=False, markup=False)


def _served(url: str | None, token: str | None, room_dir: Path | None) -> bool:
    if (url is None) == (room_dir is None):
        raise UserError(T_("give either --url (a serving room) or --room (a stopped room)"))
    if url is not None and not token:
        raise UserError(T_("--url needs --token (or CLEANROOM_TOKEN): a room admin's token"))
    return url is not None


def _open(room_dir: Path) -> Any:
    from cleanroom.room.state import Room

    return Room(load_settings(room_dir))


@click.command("expire")
@_url
@_token
@_room
def expire_cmd(url: str | None, token: str | None, room_dir: Path | None) -> None:
    """Delete every dataset version and match generation past the policy's retention now."""
    if _served(url, token, room_dir):
        from cleanroom.cli.room import api_call

        done = api_call("POST", str(url), str(token), "/api/v1/room/expire")
    else:
        from cleanroom.room.expiry import expire

        room = _open(Path(str(room_dir)))
        try:
            done = expire(room, actor="operator").as_dict()
        finally:
            room.close()
    if not done["datasets"] and not done["generations"]:
        say(
            N_("nothing has outlived the retention; %(deleted)s leftover table(s) deleted"),
            deleted=done["deleted"],
        )
        return
    say(
        N_(
            "expired %(datasets)s dataset version(s) and %(generations)s match generation(s); "
            "%(deleted)s table(s) deleted (audited as data.expired)"
        ),
        datasets=len(done["datasets"]),
        generations=len(done["generations"]),
        deleted=done["deleted"],
    )
    for name in done["datasets"]:
        console.print(f"  {name}", highlight=False, markup=False)
    for generation in done["generations"]:
        say(N_("  match generation %(generation)s"), generation=generation)


@click.command("backup")
@_url
@_token
@_room
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Archive file."
)
def backup_cmd(url: str | None, token: str | None, room_dir: Path | None, out: Path) -> None:
    """Write a consistent archive of the room, sealed to its backup key, while it serves.

    The archive appears under OUT only once whole (it is written to a hidden
    temporary name first); it holds no key: restoring needs the room's key
    files and the backup private key, both kept apart from it.
    """
    from cleanroom.room.backup import write_archive

    if out.exists():  # before asking the room for anything
        raise UserError(T_("%(out)s: exists; an archive is never overwritten", out=out))
    if _served(url, token, room_dir):
        from cleanroom.client import Client

        with Client(str(url), str(token)) as client:
            size = write_archive(client.stream("GET", "/api/v1/room/backup"), out)
    else:
        from cleanroom.contract.keys import load_backup_public_key
        from cleanroom.room.backup import archive

        room = _open(Path(str(room_dir)))
        try:
            if room.settings.backup_key is None:
                raise UserError(
                    T_("this room has no backup_key setting (see `cleanroom keys backup`)")
                )
            with room.store.transaction() as tx:
                room.audit.append(tx, actor="operator", action="room.backup", target=room.key_id)
            size = write_archive(
                archive(room, load_backup_public_key(room.settings.backup_key)), out
            )
        finally:
            room.close()
    say(N_("archive written: %(path)s (%(size)s bytes)"), path=str(out), size=f"{size:,}")


@click.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--into",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="A new directory for the restored room.",
)
@click.option(
    "--keys",
    "keys_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="The room's key files (room.key, room.pub, room.secret), kept apart.",
)
@click.option(
    "--backup-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The backup private key (backup.key).",
)
def restore_cmd(archive: Path, into: Path, keys_dir: Path, backup_key: Path) -> None:
    """Rebuild a room from ARCHIVE; refuse unless its audit chain and budget ledger verify."""
    from cleanroom.room.restore import restore

    done = restore(archive, into, keys=keys_dir, backup_key=backup_key)
    say(
        N_(
            "room restored in %(room)s from the archive of %(created)s: %(tables)s table(s), "
            "%(rows)s row(s), %(files)s file(s); audit chain verified (%(entries)s entries), "
            "budget ledger consistent"
        ),
        room=str(done.room),
        created=done.created_at,
        tables=done.tables,
        rows=f"{done.rows:,}",
        files=done.files,
        entries=done.audit_entries,
    )
    say(N_("start it with `cleanroom serve --room %(room)s`"), room=str(done.room))
