"""The ``cleanroom`` command line: thin wrappers; the work happens in the domain modules.

Every command exits non-zero with a one-line reason on bad input (a
:class:`~cleanroom.errors.CleanroomError`); anything else is a bug and shows
its traceback.
"""

from __future__ import annotations

import logging
import sys

import click

import cleanroom
from cleanroom.cli import lang
from cleanroom.cli.console import err_console
from cleanroom.cli.keys import keys
from cleanroom.cli.lazy import LazyGroup
from cleanroom.cli.party import inspect_cmd, prepare_cmd, synth_cmd
from cleanroom.errors import CleanroomError
from cleanroom.i18n import N_

# The party's commands are imported here; the room's, the API client's and the demo's
# only when one of them is run (see cleanroom.cli.lazy): `cleanroom prepare` on a
# party's machine loads no room code (tests/unit/cli/test_boundary.py).


def _room() -> click.Command:
    from cleanroom.cli.room import room_group
    from cleanroom.cli.upkeep import backup_cmd, expire_cmd, restore_cmd

    for upkeep in (expire_cmd, backup_cmd, restore_cmd):
        room_group.add_command(upkeep)
    return room_group


def _serve() -> click.Command:
    from cleanroom.cli.room import serve

    return serve


def _users() -> click.Command:
    from cleanroom.cli.room import users_group

    return users_group


def _upload() -> click.Command:
    from cleanroom.cli.room import upload

    return upload


def _match() -> click.Command:
    from cleanroom.cli.room import match

    return match


def _audit() -> click.Command:
    from cleanroom.cli.room import audit_group

    return audit_group


def _query() -> click.Command:
    from cleanroom.cli.query import query

    return query


def _policy() -> click.Command:
    from cleanroom.cli.policy import policy_group

    return policy_group


def _report() -> click.Command:
    from cleanroom.cli.report import report_group

    return report_group


def _demo() -> click.Command:
    from cleanroom.demo.command import demo

    return demo


ROOM_COMMANDS = {
    "room": _room,
    "serve": _serve,
    "users": _users,
    "upload": _upload,
    "match": _match,
    "query": _query,
    "policy": _policy,
    "report": _report,
    "audit": _audit,
    "demo": _demo,
}


@click.group(
    cls=LazyGroup,
    lazy_commands=ROOM_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(cleanroom.__version__, prog_name="cleanroom")
@click.option(
    "--lang",
    "language",
    type=click.Choice(lang.choices()),
    default=None,
    help="Language of help, messages and printed results (default: CLEANROOM_LANG, else en); "
    "--json output is the same in every language.",
)
def cli(language: str | None) -> None:
    """Privacy-preserving data clean room: party toolkit and room service."""


for party_command in (keys, synth_cmd, prepare_cmd, inspect_cmd):
    cli.add_command(party_command)


ERROR = N_("error: %(message)s")
ABORTED = N_("aborted")


def main() -> None:
    """Console-script entry point."""
    language = lang.resolve(sys.argv[1:])
    lang.use(language)
    lang.translate_help(cli, language)
    # Log records of a command (not of `serve`, which installs its own handlers) stay out
    # of the terminal: its one-line error says what went wrong.
    logging.getLogger("cleanroom").addHandler(logging.NullHandler())
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print(lang.gettext(ABORTED))
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except CleanroomError as err:
        line = lang.gettext(ERROR) % {"message": lang.say(err)}
        err_console.print(line, highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)
