"""The catalogs: every string the web UI and the reports mark is translated into Persian.

The messages are extracted from the source exactly as ``make messages`` does
(Babel's extractors over babel.cfg), so a new string in a template or a chart
that nobody translated fails here, before any page is rendered.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from cleanroom.i18n import LANGUAGES, N_, gettext, po_path, translations
from cleanroom.i18n.labels import TEMPLATE_TEXT, WORDS, label
from cleanroom.room.analyses import TEMPLATES
from cleanroom.room.analyses.schema import SCHEMAS

ROOT = Path(__file__).resolve().parents[3]
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def extracted() -> Catalog:
    """Every marked string of the source tree, as ``make messages`` extracts it."""
    method_map = [
        ("cleanroom/**.py", "python"),
        ("cleanroom/room/web/templates/**.html", "jinja2"),
        ("cleanroom/room/reports/html/**.j2", "jinja2"),
    ]
    options = {
        "cleanroom/room/web/templates/**.html": {
            "extensions": "jinja2.ext.i18n",
            "newstyle_gettext": "true",
        },
        "cleanroom/room/reports/html/**.j2": {
            "extensions": "jinja2.ext.i18n",
            "newstyle_gettext": "true",
        },
    }
    catalog = Catalog()
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "T_": None}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        ROOT, method_map, options, keywords=keywords
    ):
        catalog.add(message, None, [(filename, lineno)])
    return catalog


@pytest.fixture(scope="module")
def source() -> Catalog:
    return extracted()


@pytest.fixture(scope="module")
def persian() -> Catalog:
    with po_path("fa").open("rb") as po:
        return read_po(po, locale="fa")


def test_the_source_marks_the_interface(source: Catalog) -> None:
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in source if m.id}
    # One string from each place that must go through the catalog.
    for expected in (
        "Query console",
        "Chain verified",
        "persons reaching the step",
        "nothing released",
    ):
        assert expected in ids
    assert len(ids) > 300


def test_every_marked_string_has_a_persian_translation(source: Catalog, persian: Catalog) -> None:
    missing = []
    for message in source:
        if not message.id:
            continue
        found = persian.get(message.id)
        strings = found.string if found is not None else None
        forms = strings if isinstance(strings, tuple) else (strings,)
        if found is None or not all(forms) or found.fuzzy:
            missing.append(message.id)
    assert not missing, f"run `make messages` and translate in {po_path('fa')}: {missing}"


def test_translations_keep_every_placeholder(persian: Catalog) -> None:
    for message in persian:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for text in strings:
            assert set(PLACEHOLDER.findall(text)) == wanted, (message.id, text)


def test_persian_translations_are_persian(persian: Catalog) -> None:
    # A msgstr copied from the msgid (or left in English) is not a translation.
    arabic_script = re.compile(r"[\u0600-\u06FF]")
    keep = {  # the language's own name, and a path of policy keys, are not translated
        "SQL",
        "%(source)s: reports.%(name)s.sections.%(i)s: %(rule)s: %(err)s",
    }
    for message in persian:
        if not message.id or message.id in keep:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        if not re.search(r"[A-Za-z]", PLACEHOLDER.sub("", ids[0])):
            continue  # only placeholders and punctuation ("%(file)s: %(reason)s")
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in strings:
            assert arabic_script.search(text), (message.id, text)


def test_english_is_the_source_language() -> None:
    for language in LANGUAGES:
        assert po_path(language).exists()
    assert gettext("en", "Query console") == "Query console"
    assert gettext("fa", "Query console") == "میز پرسش"
    assert (
        translations("fa").ngettext("%(num)d day ago", "%(num)d days ago", 3) == "%(num)d روز پیش"
    )


def test_template_summaries_and_parameter_help_are_in_the_catalog() -> None:
    # Docstrings and schema help are not extracted; labels.TEMPLATE_TEXT lists them.
    listed = set(TEMPLATE_TEXT)
    for name, prepare in TEMPLATES.items():
        doc = (sys.modules[prepare.__module__].__doc__ or "").strip()
        summary = doc.splitlines()[0].split(": ", 1)[-1]
        assert summary in listed, name
        assert gettext("fa", summary) != summary
    for params in SCHEMAS.values():
        for param in params:
            assert param.help in listed, param.help
            assert gettext("fa", param.help) != param.help


def test_stored_words_are_shown_translated_and_unknown_ones_as_stored() -> None:
    assert label("active", "fa") == "فعال"
    assert label("party_admin", "en") == "party admin"
    assert label("a-status-added-later", "fa") == "a-status-added-later"
    assert all(gettext("fa", text) != text for text in WORDS.values() if text != "SQL")
    assert N_("x") == "x"
