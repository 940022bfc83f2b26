"""Canonical JSON and YAML reading: the bytes both sides hash, the errors both sides show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from cleanroom.contract.documents import canonical_json, format_validation_error, read_yaml
from cleanroom.errors import SpecError

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
documents = st.dictionaries(st.text(), values, max_size=6)


@given(documents)
def test_one_document_one_byte_string_whatever_the_key_order(doc: dict[str, object]) -> None:
    shuffled = dict(reversed(list(doc.items())))
    raw = canonical_json(doc)
    assert raw == canonical_json(shuffled)
    assert json.loads(raw) == doc
    assert raw.isascii()
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()


def test_canonical_json_is_compact_sorted_ascii() -> None:
    assert canonical_json({"b": 1, "a": ["ی", None]}) == b'{"a":["\\u06cc",null],"b":1}'


def test_read_yaml_returns_the_content(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("dataset: orders\ncolumns: {amount: decimal}\n", encoding="utf-8")
    assert read_yaml(path) == {"dataset": "orders", "columns": {"amount": "decimal"}}


def test_read_yaml_names_the_file_and_the_line_of_a_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("dataset: orders\ncolumns: [amount\n", encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        read_yaml(path)
    message = str(caught.value)
    assert str(path) in message and "not valid YAML" in message and "line " in message


@pytest.mark.parametrize(
    ("content", "reason"), [(None, "no such file"), (b"\xff\xfe\x00", "cannot read")]
)
def test_read_yaml_refuses_a_missing_or_unreadable_file(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "spec.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SpecError, match=reason):
        read_yaml(path)


def test_a_validation_error_reads_one_line_per_problem() -> None:
    class Spec(BaseModel):
        dataset: str
        rows: int

    with pytest.raises(ValidationError) as caught:
        Spec.model_validate({"rows": "many"})
    line = format_validation_error("orders.yaml", caught.value)
    problems = line.split("; ")
    assert len(problems) == 2
    assert problems[0].startswith("orders.yaml: dataset: ")
    assert problems[1].startswith("orders.yaml: rows: ")
