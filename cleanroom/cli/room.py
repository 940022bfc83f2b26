"""Room-side commands, and the HTTP clients ``upload`` and ``match``.

``room init``, ``serve``, ``users`` and ``audit`` act on a room directory on this
machine; ``upload`` and ``match`` talk to a running room over HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from cleanroom.cli import lang
from cleanroom.cli.console import console, err_console, progress_bar
from cleanroom.contract.keys import passphrase_from_env
from cleanroom.errors import T_, UserError
from cleanroom.room.auth import Role
from cleanroom.room.config import load_settings

_room = click.option(
    "--room",
    "room_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="CLEANROOM_ROOM",
    required=True,
    help="Room directory (or CLEANROOM_ROOM).",
)


def _open(room_dir: Path, *, warehouse: bool = False) -> Any:
    from cleanroom.room.state import Room

    return Room(load_settings(room_dir), warehouse=warehouse)


@click.group("room")
def room_group() -> None:
    """Create and inspect a clean room."""


@room_group.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--policy", type=click.Path(dir_okay=False, path_type=Path), required=True)
def room_init(directory: Path, policy: Path) -> None:
    """A new room: its key pair and secret, its stores, the collaboration from POLICY."""
    from cleanroom.room.state import init_room

    ids = init_room(directory, policy, passphrase=passphrase_from_env())
    console.print(f"room created in {directory}", highlight=False)
    for name, value in ids.items():
        console.print(f"{name}: {value}", highlight=False)
    console.print(f"parties seal their bundles to {directory / 'keys' / 'room.pub'}")


@click.command("serve")
@_room
@click.option("--host", default=None, help="Listen address (default from settings).")
@click.option("--port", type=int, default=None, help="Port (default from settings).")
def serve(room_dir: Path, host: str | None, port: int | None) -> None:
    """Run the service: HTTP API (OpenAPI at /docs) for one room."""
    import uvicorn

    from cleanroom.cli.serving import check_port, refuse_if_locked
    from cleanroom.room import logs
    from cleanroom.room.http.app import create_app
    from cleanroom.room.state import Room

    settings = load_settings(room_dir, host=host, port=port)
    check_port(settings.host, settings.port)
    logs.configure(settings.room / "logs" / "service.log", settings.log_format)
    try:
        room = Room(settings)
    except Exception as err:
        refuse_if_locked(err, room_dir)
        raise
    try:
        uvicorn.run(
            create_app(room), host=settings.host, port=settings.port, log_config=None, workers=1
        )
    finally:
        room.close()


@click.group("users")
def users_group() -> None:
    """Manage the room's users and their bearer tokens."""


@users_group.command("add")
@_room
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--party", default=None, help="The party this user acts for.")
def users_add(room_dir: Path, name: str, role: str, party: str | None) -> None:
    """Add a user and print its bearer token (shown this once only)."""
    room = _open(room_dir)
    if party is not None and party not in room.active_policy().policy.parties:
        raise UserError(T_("party '%(party)s' is not in the collaboration policy", party=party))
    user, token = room.users.add(name, Role(role), party)
    # The token alone on stdout (TOKEN=$(cleanroom users add ...)); the message on stderr.
    err_console.print(
        f"added {user.name} ({user.role}{', ' + party if party else ''}); "
        "its token follows, shown this once",
        highlight=False,
    )
    click.echo(token)


@users_group.command("list")
@_room
def users_list(room_dir: Path) -> None:
    """Every user: role, party, created, revoked."""
    room = _open(room_dir)
    table = Table("name", "role", "party", "created", "revoked")
    for u in room.users.list():
        table.add_row(u.name, str(u.role), u.party or "", u.created_at, u.revoked_at or "")
    console.print(table)


@users_group.command("revoke")
@_room
@click.argument("name")
def users_revoke(room_dir: Path, name: str) -> None:
    """Revoke a user's token at once."""
    user = _open(room_dir).users.revoke(name)
    console.print(f"revoked {user.name}", highlight=False)


@click.group("audit")
def audit_group() -> None:
    """Read and verify the audit trail."""


@audit_group.command("verify")
@_room
def audit_verify(room_dir: Path) -> None:
    """Recompute the hash chain; exit 1 naming every edited, deleted or reordered entry.

    A break an operator re-anchored stays listed (with who resumed recording
    and why); the exit status is 1 only while a break is not acknowledged.
    """
    result = _open(room_dir).audit.verify()
    if result.ok:
        console.print(f"audit chain verifies: {result.entries} entries", highlight=False)
        return
    for problem in result.problems:
        mark = "[red]✗[/]" if problem in result.open_problems else "[yellow]![/]"
        console.print(f"{mark} {escape(lang.say(problem))}", highlight=False, markup=True)
    for anchor in result.reanchors:
        console.print(
            f"[yellow]![/] entry {anchor.seq}: re-anchored at {anchor.at} by "
            f"{' and '.join(anchor.by)}: {anchor.reason}",
            highlight=False,
        )
    if result.recording:
        console.print(
            f"audit chain: {len(result.problems)} acknowledged problem(s), recording resumed; "
            f"{result.entries} entries",
            highlight=False,
        )
        return
    raise UserError(
        T_(
            "audit chain broken at entry %(broken_at)s (%(count)s problem(s)): "
            "nothing more is recorded until an operator investigates and runs "
            "`cleanroom audit reanchor`",
            broken_at=result.broken_at,
            count=len(result.open_problems),
        )
    )


@audit_group.command("reanchor")
@_room
@click.option("--reason", required=True, help="What the investigation found (recorded).")
@click.option("--by", "by", required=True, help="Room admin or reviewer who investigated.")
@click.option(
    "--second",
    default=None,
    help="A second room admin or reviewer (required when the policy asks for two approvals).",
)
def audit_reanchor(room_dir: Path, reason: str, by: str, second: str | None) -> None:
    """Record an investigated break and resume recording; the break stays in `audit verify`."""
    from cleanroom.room.reanchor import reanchor
    from cleanroom.room.recovery import pending

    room = _open(room_dir)
    entry = reanchor(room, by=by, second=second, reason=reason)
    console.print(
        f"audit chain re-anchored at entry {entry.seq} (break at entry "
        f"{entry.details['broken_at']}, by {' and '.join(entry.details['by'])}); "
        "recording resumes",
        highlight=False,
    )
    left = {kind: n for kind, n in pending(room).items() if n}
    if left:
        listed = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(left.items()))
        console.print(
            f"left for start-up recovery: {listed}; restart the service to settle them",
            highlight=False,
        )


@audit_group.command("list")
@_room
@click.option("--action", default=None)
@click.option("--limit", type=int, default=50)
def audit_list(room_dir: Path, action: str | None, limit: int) -> None:
    """The latest entries."""
    table = Table("seq", "at", "actor", "action", "target", "outcome")
    audit = _open(room_dir).audit
    entries: list[Any] = []
    page = audit.entries(action=action, limit=1000)
    while page:
        entries = (entries + page)[-limit:]
        page = audit.entries(action=action, after_seq=page[-1].seq, limit=1000)
    for e in entries:
        table.add_row(str(e.seq), e.at, e.actor, e.action, e.target or "", e.outcome)
    console.print(table)


def api_call(method: str, url: str, token: str, path: str, **kwargs: Any) -> Any:
    """One API request through the Python client; a refusal is its one-line error."""
    from cleanroom.client import Client

    with Client(url, token, language=lang.current()) as client:
        return client.call(method, path, **kwargs)


_token = click.option(
    "--token", envvar="CLEANROOM_TOKEN", required=True, help="Bearer token (or CLEANROOM_TOKEN)."
)
_url = click.option(
    "--url", envvar="CLEANROOM_URL", required=True, help="Room URL (or CLEANROOM_URL)."
)


@click.command("upload")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_url
@_token
def upload(bundle: Path, url: str, token: str) -> None:
    """Send a sealed bundle to the room; prints the dataset version once it is live."""
    size = bundle.stat().st_size

    with progress_bar(f"uploading {bundle.name}", unit="bytes") as update:

        def body() -> Any:
            sent = 0
            with bundle.open("rb") as fh:
                while chunk := fh.read(1024 * 1024):
                    sent += len(chunk)
                    update(sent, size)
                    yield chunk

        result = api_call("POST", url, token, "/api/v1/datasets", content=body())
    if result.get("kind") == "suppression":
        console.print(
            f"{result['party']}'s suppression list v{result['version']} is live "
            f"(bundle {result['bundle_id']}); it replaces the previous one and applies "
            "from the next match",
            highlight=False,
        )
        return
    console.print(
        f"{result['party']}.{result['dataset']} v{result['version']} is live: "
        f"{result['rows']:,} rows (bundle {result['bundle_id']})",
        highlight=False,
    )
    for column, rows in sorted((result.get("out_of_domain") or {}).items()):
        if rows:
            console.print(
                f"  {column}: {rows:,} rows hold a value outside the policy's domain "
                "(no query counts them in a group)",
                highlight=False,
            )


@click.command("match")
@_url
@_token
@click.option(
    "--latest",
    is_flag=True,
    help="show the live match instead of running one (any user): its inputs and the links"
    " the identity limits withheld (in full for reviewers, your party's own count otherwise)",
)
def match(url: str, token: str, latest: bool) -> None:
    """Resolve persons across all live datasets (room admins), or show the live match."""
    if latest:
        result = api_call("GET", url, token, "/api/v1/matches/latest")
    else:
        result = api_call("POST", url, token, "/api/v1/matches")
    click.echo(json.dumps(result, indent=2))
