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
from cleanroom.cli.demo import demo
from cleanroom.cli.keys import keys
from cleanroom.cli.party import inspect_cmd, prepare_cmd, synth_cmd
from cleanroom.cli.policy import policy_group
from cleanroom.cli.query import query
from cleanroom.cli.report import report_group
from cleanroom.cli.room import (
    audit_group,
    match,
    room_group,
    serve,
    upload,
    users_group,
)
from cleanroom.cli.upkeep import backup_cmd, expire_cmd, restore_cmd
from cleanroom.errors import CleanroomError
from cleanroom.room.i18n import N_


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


cli.add_command(keys)
cli.add_command(synth_cmd)
cli.add_command(prepare_cmd)
cli.add_command(inspect_cmd)
cli.add_command(room_group)
for upkeep in (expire_cmd, backup_cmd, restore_cmd):
    room_group.add_command(upkeep)
cli.add_command(serve)
cli.add_command(users_group)
cli.add_command(upload)
cli.add_command(match)
cli.add_command(query)
cli.add_command(policy_group)
cli.add_command(report_group)
cli.add_command(audit_group)
cli.add_command(demo)


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
