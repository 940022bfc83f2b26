"""Starting a room service from the command line: clear one-line refusals, a kept URL.

``cleanroom serve`` and ``cleanroom demo --serve`` check, before any work,
that the port is free and that no other process has the room open; either
would otherwise end in a traceback from the socket or from DuckDB's lock.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path

import duckdb

from cleanroom.errors import ConflictError

# User-facing sentences, in one place for the message catalogs.
PORT_TAKEN = (
    "port {port} on {host} is already in use (is a room already served there?); "
    "stop it, or choose another port with --port"
)
ROOM_OPEN = (
    "the room in {room} is already open in another process (a running `cleanroom serve`?); "
    "stop that process first, or talk to it over its URL"
)


def port_taken(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port`` (another room, another program).

    Binds as the server will (SO_REUSEADDR, as uvicorn sets it), so connections
    of a stopped server still in TIME_WAIT do not count as a listener.
    """
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


class AlreadyServed(ConflictError):
    """The port is taken or the room is open elsewhere: nothing was started."""

    code = "already_served"


def check_port(host: str, port: int) -> None:
    """Refuse a port something already listens on."""
    if port_taken(host, port):
        raise AlreadyServed(PORT_TAKEN.format(host=host, port=port))


def room_locked(err: BaseException) -> bool:
    """Whether an error opening the room is DuckDB's lock held by another process."""
    return isinstance(err, duckdb.Error) and "lock" in str(err).lower()


def refuse_if_locked(err: BaseException, room_dir: Path) -> None:
    """Turn the warehouse lock error into the one-line refusal; re-raise anything else."""
    if room_locked(err):
        raise AlreadyServed(ROOM_OPEN.format(room=room_dir)) from None


def write_tokens(path: Path, tokens: Mapping[str, str], url: str) -> Path:
    """A token per role, readable by the owner only (0600 from creation, never widened)."""
    lines = [f"# cleanroom demo tokens for {url} — sign in at {url}/ui/signin", ""]
    lines += [f"{who}\t{token}" for who, token in sorted(tokens.items())]
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path
