"""The command line's language: ``--lang``, else ``CLEANROOM_LANG``, else English.

Help texts, one-line errors and the printed results go through the same
message catalogs as the web UI (:mod:`cleanroom.i18n`); in Persian,
numbers are written in Persian digits and values are bidi-isolated. Machine
output (``--json``, files written with ``--out``) is language-neutral: it
never passes through here. Requests to a room carry the language as
``Accept-Language``, so the room's refusals come back in it too.

Help is translated before click parses anything (``--help`` is eager and is
answered before any command's callback runs), from the language found in the
arguments or the environment by :func:`resolve`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import click

from cleanroom.errors import CleanroomError, Text
from cleanroom.i18n import LANGUAGES, Language, language_of, localize, translations

ENV = "CLEANROOM_LANG"
_current: list[Language] = ["en"]


def resolve(argv: Iterable[str], environ: Mapping[str, str] = os.environ) -> Language:
    """The language asked for: ``--lang X`` / ``--lang=X`` first, then ``CLEANROOM_LANG``."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--lang" and i + 1 < len(args):
            return language_of(args[i + 1].strip().lower())
        if arg.startswith("--lang="):
            return language_of(arg.partition("=")[2].strip().lower())
    return language_of((environ.get(ENV) or "").strip().lower())


def use(language: Language) -> None:
    """Write this process's output in ``language``."""
    _current[0] = language


def current() -> Language:
    """The language output is written in."""
    return _current[0]


def say(message: Text | CleanroomError | str) -> str:
    """A message (a ``T_`` text, an error's message or a plain one) in the current language."""
    return localize(message, current())


def gettext(message: str) -> str:
    """A plain catalog message (marked ``N_`` where it is defined) in the current language."""
    return translations(current()).gettext(message)


def digits(text: str) -> str:
    """Numbers as the current language writes them (Persian digits in Persian)."""
    if current() == "fa":
        return text.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))
    return text


def help_texts(command: click.Command) -> list[str]:
    """Every help text of a command tree: each command's summary paragraph, each option's."""
    found: list[str] = []
    for cmd in _walk(command, load=True):
        if cmd.help:
            found.append(_paragraphs(cmd.help)[0])
        found.extend(p.help for p in cmd.params if isinstance(p, click.Option) and p.help)
    return found


def translate_help(command: click.Command, language: Language) -> None:
    """Put the command tree's help in ``language`` (the summary paragraph and each option's).

    A command's further paragraphs (examples, notes for operators) stay as
    written; the summary is what ``--help`` lists and what a reader needs. Commands
    not imported yet (:class:`cleanroom.cli.lazy.LazyGroup`) are translated as they load.
    """
    if language == "en":
        return
    catalog = translations(language)
    _click_speaks(language)
    for cmd in _walk(command):
        if cmd.help:
            first, *rest = _paragraphs(cmd.help)
            cmd.help = "\n\n".join([catalog.gettext(first), *rest])
            cmd.short_help = catalog.gettext(first).split("\n")[0]
        for param in cmd.params:
            if isinstance(param, click.Option) and param.help:
                param.help = catalog.gettext(param.help)


def _click_speaks(language: Language) -> None:
    """Click's own words (Usage:, Options, its usage errors) from the catalogs.

    Click translates them with the standard ``gettext``, imported into each of
    its modules as ``_``; only the words listed in :mod:`cleanroom.cli.help_text`
    are answered, anything else stays as click wrote it.
    """
    import click.core
    import click.decorators
    import click.exceptions
    import click.formatting
    import click.parser

    from cleanroom.cli.help_text import CLICK

    known = frozenset(CLICK)
    catalog = translations(language)

    def gettext(message: str) -> str:
        return catalog.gettext(message) if message in known else message

    for module in (click.core, click.decorators, click.exceptions, click.formatting, click.parser):
        module.__dict__["_"] = gettext  # click looks its words up as the global `_`


def _paragraphs(text: str) -> list[str]:
    import inspect

    return [p.strip() for p in inspect.cleandoc(text).split("\n\n") if p.strip()] or [""]


def _walk(command: click.Command, *, load: bool = False) -> list[click.Command]:
    """The command tree: its imported commands, or with ``load`` every one (imported if lazy)."""
    found = [command]
    if isinstance(command, click.Group):
        if load:
            ctx = click.Context(command)
            subs = [command.get_command(ctx, name) for name in command.list_commands(ctx)]
        else:
            subs = [command.commands[name] for name in sorted(command.commands)]
        for sub in subs:
            if sub is not None:
                found.extend(_walk(sub, load=load))
    return found


def choices() -> tuple[str, ...]:
    """The languages ``--lang`` takes."""
    return tuple(LANGUAGES)
