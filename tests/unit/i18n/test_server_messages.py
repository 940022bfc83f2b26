"""Server-written messages: written for the catalogs, shown in the requester's language.

An error the room raises on purpose is shown to a person (a refusal on the
console, a 4xx from the API, a failed run, a policy change's reason, an audit
problem), so its message must be a ``T_`` message whose msgid the catalogs
translate (``test_catalogs`` fails on a msgid without a Persian translation;
the scan here fails on a message written around the catalogs). The machine-
readable ``code`` and ``details`` never change with the language.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import cleanroom
from cleanroom.errors import T_, CleanroomError, InputError, InternalError, Text, UserError
from cleanroom.i18n import (
    from_accept_language,
    is_translated,
    localize,
    localize_html,
    recognize,
)
from cleanroom.room.policy import load_policy
from cleanroom.room.policy.diff import diff_policies
from cleanroom.room.query.check import QueryRejected, check_sql
from cleanroom.text import FSI, PDI

ROOT = Path(cleanroom.__file__).parent
POLICY = load_policy(Path(__file__).parents[2] / "fixtures" / "queries" / "policy.yaml")[0]
PERSIAN = re.compile(r"[\u0600-\u06FF]")
# Operator plumbing whose errors are our bugs or the environment's (500s, logged, never
# shown): the backends' internals. Everything else a person can meet.
NOT_SHOWN = ("room/backends/",)


def error_classes() -> set[str]:
    """Every error class of the product by name (the tree under CleanroomError)."""
    for module in pkgutil.walk_packages([str(ROOT)], "cleanroom."):
        if ".spark" not in module.name:
            importlib.import_module(module.name)
    found: set[str] = set()
    todo: list[type] = [CleanroomError]
    while todo:
        kind = todo.pop()
        found.add(kind.__name__)
        todo.extend(kind.__subclasses__())
    return found - {InternalError.__name__}


def untranslated(path: Path, errors: set[str]) -> list[str]:
    """Errors constructed with a message written as a plain or f-string, not a T_ message."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        if name not in errors:
            continue
        for arg in node.args:
            sentence = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            if (sentence and " " in str(arg.value)) or isinstance(arg, ast.JoinedStr):
                found.append(f"{path}:{node.lineno} {name}")
    return found


@pytest.mark.parametrize(
    "package",
    ["room", "cli", "client", "party", "contract", "demo", "errors.py"],
)
def test_every_error_a_person_meets_is_written_for_the_catalogs(package: str) -> None:
    errors = error_classes()
    assert {"QueryRejected", "BudgetExceeded", "InputError", "AuthError"} <= errors
    missing = []
    where = ROOT / package
    for path in sorted(where.rglob("*.py")) if where.is_dir() else [where]:
        if not any(part in str(path) for part in NOT_SHOWN):
            missing.extend(untranslated(path, errors))
    assert not missing, "write these messages as T_(...) and translate them:\n" + "\n".join(missing)


def test_the_scan_finds_a_message_written_around_the_catalogs(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "raise UserError(f'bad {x}')\nraise UserError('a plain sentence')\n"
        "raise UserError(T_('fine %(x)s', x=x))\n",
        encoding="utf-8",
    )
    assert len(untranslated(module, {"UserError"})) == 2


def refusal(sql: str) -> QueryRejected:
    with pytest.raises(QueryRejected) as err:
        check_sql(sql, policy=POLICY, party="okala")
    return err.value


def test_a_refusal_reads_in_persian_with_its_values_isolated_and_code_unchanged() -> None:
    err = refusal("SELECT city, COUNT(*) FROM okala.orders WHERE city = 'اصفهان' GROUP BY city")
    english, persian = localize(err, "en"), localize(err, "fa")
    assert english == str(err) and "is not a declared value" in english
    assert PERSIAN.search(persian.replace("اصفهان", "")), persian  # the sentence itself
    assert "is not a declared value" not in persian
    assert f"'{FSI}اصفهان{PDI}'" in persian  # the quoted value whole, isolated
    assert f"{FSI}city{PDI}" in persian  # a column name keeps its direction
    assert (err.code, err.rule) == ("query_rejected", "domain_value_undeclared")
    assert err.details == {"rule": "domain_value_undeclared", "clause": "city = 'اصفهان'"}


def test_numbers_in_persian_messages_are_persian_digits() -> None:
    reason = T_("%(text)s is not a number", text="12x")
    err = InputError("orders.csv", reason, row=12, field="amount")
    persian = localize(err, "fa")
    assert "سطر ۱۲" in persian and "row" not in persian
    assert err.details == {"file": "orders.csv", "row": 12, "field": "amount"}
    assert str(err) == "orders.csv: row 12: column 'amount': 12x is not a number"


def test_an_english_only_message_is_shown_as_it_is_and_marked_english() -> None:
    err = UserError("a sentence nobody put in the catalogs")
    assert localize(err, "fa") == str(err)
    assert not is_translated(err)


@pytest.mark.parametrize(
    "stored",
    [
        "entry 5 does not follow entry 4",
        "entries 3–4 are missing (acknowledged by re-anchor entry 9)",
        "interrupted: the service stopped during the run",
        "report 'weekly' slot 2026-05-01 is already done (run 7)",
    ],
)
def test_stored_english_messages_are_recognized_and_translated(stored: str) -> None:
    text = recognize(stored)
    assert isinstance(text, Text) and text.render() == stored  # read back exactly
    persian = localize(stored, "fa")
    assert PERSIAN.search(persian) and persian != stored


def test_a_stored_message_the_catalogs_do_not_know_is_left_alone() -> None:
    unknown = "something a previous release wrote"
    assert recognize(unknown) is None
    assert localize(unknown, "fa") == unknown


def test_policy_change_reasons_read_in_persian() -> None:
    looser = POLICY.model_copy(
        update={"privacy": POLICY.privacy.model_copy(update={"min_noisy_persons": 1})}
    )
    changes = diff_policies(POLICY, looser)
    assert changes, "the change is found"
    for change in changes:
        persian = localize(change.reason, "fa")
        assert is_translated(change.reason), change.reason
        assert PERSIAN.search(persian) and "smaller groups" not in persian, persian


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("fa-IR,fa;q=0.9,en;q=0.8", "fa"),
        ("en-US, fa;q=0.5", "en"),
        ("de, fa;q=0.1", "fa"),
        ("fa;q=0, en", "en"),
        ("*", None),
        ("", None),
        (None, None),
        ("fa;q=x", None),
    ],
)
def test_accept_language_picks_the_preferred_supported_language(
    header: str | None, expected: str | None
) -> None:
    assert from_accept_language(header) == expected


def test_a_page_gets_the_message_escaped_with_each_value_in_its_own_bdi() -> None:
    err = InputError("<script>x</script>.csv", T_("%(text)s is not a number", text="<b>"), row=3)
    html = str(localize_html(err, "fa"))
    assert "<script>" not in html and "<b>" not in html
    assert '<bdi class="data">&lt;script&gt;x&lt;/script&gt;.csv</bdi>' in html
    assert "سطر ۳" in html  # a number needs no isolation, only Persian digits
    assert str(localize_html(UserError("<i>not in the catalogs</i>"), "fa")).startswith("&lt;i&gt;")
