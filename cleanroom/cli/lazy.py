"""A command group that imports a command's module only when that command is run.

The command line serves both sides of the trust boundary: a party engineer runs
``cleanroom prepare`` on a machine that holds raw customer data, and the room's
operators run ``cleanroom serve``. Importing every command up front would load the
room's service (and its dependencies) into the party's process; here a room command
is a name and a loader until click resolves it (click's documented pattern for
lazily loaded subcommands).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import click

from cleanroom.cli import lang

Loader = Callable[[], click.Command]


class LazyGroup(click.Group):
    """A group whose ``lazy_commands`` are imported on first use, then kept."""

    def __init__(
        self, *args: Any, lazy_commands: Mapping[str, Loader] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, Loader] = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, loaded or not (``--help`` lists them all)."""
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, importing its module the first time it is asked for."""
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            self.load(cmd_name)
        return self.commands.get(cmd_name)

    def load(self, name: str) -> click.Command:
        """Import one command; its help is put in the command line's language as it arrives."""
        command = self.lazy_commands[name]()
        lang.translate_help(command, lang.current())
        self.add_command(command, name)
        return command
