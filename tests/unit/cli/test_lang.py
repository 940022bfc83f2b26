"""The command line in Persian and English: the language setting, help, errors, digits."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cleanroom.cli import cli
from cleanroom.cli import lang as cli_lang
from cleanroom.cli.help_text import CLICK, HELP
from cleanroom.i18n import gettext


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["--lang", "fa", "query"], {}, "fa"),
        (["--lang=fa", "query"], {"CLEANROOM_LANG": "en"}, "fa"),
        (["query"], {"CLEANROOM_LANG": "fa"}, "fa"),
        (["query"], {"CLEANROOM_LANG": " FA "}, "fa"),
        (["--lang", "en"], {"CLEANROOM_LANG": "fa"}, "en"),
        (["query"], {}, "en"),
        (["query"], {"CLEANROOM_LANG": "de"}, "en"),
        (["query", "--", "--lang", "fa"], {}, "en"),  # after --, an argument, not the option
    ],
)
def test_the_language_comes_from_the_option_then_the_environment(
    argv: list[str], env: dict[str, str], expected: str
) -> None:
    assert cli_lang.resolve(argv, env) == expected


def test_every_help_text_is_listed_for_the_catalogs_and_translated() -> None:
    texts = cli_lang.help_texts(cli)
    assert len(texts) > 50
    unlisted = sorted(set(texts) - set(HELP))
    assert not unlisted, f"add to cleanroom/cli/help_text.py and translate: {unlisted}"
    untranslated = [t for t in (*HELP, *CLICK) if gettext("fa", t) == t]
    assert not untranslated, untranslated


BASE_ENV = {k: v for k, v in os.environ.items() if k != cli_lang.ENV}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cleanroom", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**BASE_ENV, "COLUMNS": "120", **(env or {})},
        check=False,
    )


def test_help_reads_in_persian_by_option_or_environment() -> None:
    persian = run("--lang", "fa", "query", "--help")
    assert persian.returncode == 0, persian.stderr
    assert "کاربرد:" in persian.stdout and "گزینه‌ها:" in persian.stdout
    assert "پرسشی اجرا کن" in persian.stdout  # the command's summary
    assert "بودجهٔ حریم خصوصی برای خرج کردن." in persian.stdout  # an option's help
    assert "Privacy budget to spend." not in persian.stdout
    by_env = run("query", "--help", env={"CLEANROOM_LANG": "fa"})
    assert by_env.stdout == persian.stdout
    english = run("query", "--help")
    assert "Usage:" in english.stdout and "Privacy budget to spend." in english.stdout


def test_a_one_line_error_reads_in_persian_with_the_value_isolated() -> None:
    done = run("--lang", "fa", "query", "--url", "http://127.0.0.1:9", "--token", "t", "--sql", "x")
    assert done.returncode == 1
    line = done.stderr.strip()
    assert "\n" not in line
    assert line.startswith("خطا: به اتاق در") and "\u2068http://127.0.0.1:9\u2069" in line
    english = run("query", "--url", "http://127.0.0.1:9", "--token", "t", "--sql", "x")
    assert english.stderr.strip().startswith("error: cannot reach the room at http://127.0.0.1:9")


def test_persian_digits_and_isolation_in_printed_text() -> None:
    cli_lang.use("fa")
    try:
        assert cli_lang.digits("1,234 ± 5") == "۱,۲۳۴ ± ۵"
    finally:
        cli_lang.use("en")
    assert cli_lang.digits("1,234") == "1,234"
