"""The OpenAPI document: every operation answers a typed body, every error its details."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from cleanroom.room.api.models import ErrorBody, QueryPrice, QueryResult
from cleanroom.room.http.app import create_app

DOC = create_app(mock.MagicMock()).openapi()  # the document does not read the room
SCHEMAS = DOC["components"]["schemas"]
OPERATIONS = [
    (method.upper(), path, op)
    for path, ops in DOC["paths"].items()
    for method, op in ops.items()
    if method in ("get", "post", "put", "patch", "delete")
]
BINARY = {"type": "string", "format": "binary"}


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def objects(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The object schemas a response can be (through refs, unions and arrays)."""
    schema = resolve(schema)
    if "anyOf" in schema or "oneOf" in schema:
        return [o for s in schema.get("anyOf", schema.get("oneOf")) for o in objects(s)]
    if schema.get("type") == "array":
        return objects(schema["items"])
    return [schema]


def test_the_api_has_its_operations() -> None:
    paths = {(m, p) for m, p, _ in OPERATIONS}
    assert ("GET", "/api/v1/queries") in paths and ("GET", "/api/v1/queries/{query_id}") in paths
    assert len(OPERATIONS) >= 27


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=lambda x: str(x)[:40])
def test_every_operation_answers_a_typed_body(method: str, path: str, op: dict[str, Any]) -> None:
    ok = [op["responses"][c] for c in op["responses"] if c.startswith("2")]
    assert len(ok) == 1, f"{method} {path}: one success answer"
    content = ok[0].get("content")
    assert content, f"{method} {path}: the success answer has no documented body"
    for media, body in content.items():
        schema = body.get("schema")
        assert schema, f"{method} {path} {media}: no schema"
        if media != "application/json" or schema == BINARY:
            assert schema == BINARY, f"{method} {path}: a file is documented as binary"
            continue
        for shape in objects(schema):
            assert shape.get("type") == "object", f"{method} {path}: {shape}"
            assert shape.get("properties"), f"{method} {path}: a bare object"


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=lambda x: str(x)[:40])
def test_every_error_answer_carries_its_details(method: str, path: str, op: dict[str, Any]) -> None:
    errors = {c: r for c, r in op["responses"].items() if c[0] in "45"}
    assert {"401", "422", "500"} <= errors.keys() or path.endswith(("/health", "/ready"))
    for code, answer in errors.items():
        (shape,) = objects(answer["content"]["application/json"]["schema"])
        error = resolve(shape["properties"]["error"])
        assert set(error["required"]) == {"code", "message", "request_id", "details"}, code
        details = resolve(error["properties"]["details"])
        assert {"rule", "clause", "budget_left", "resets_at", "retry_after"} <= set(
            details["properties"]
        ), code


def test_a_429_says_when_to_come_back() -> None:
    answers = DOC["paths"]["/api/v1/queries"]["post"]["responses"]
    assert "Retry-After" in answers["429"]["description"]


def test_query_answers_are_documented_with_their_bounds() -> None:
    number = resolve(SCHEMAS["Number"])
    assert {"value", "error95", "low", "high"} <= set(number["properties"])
    result = QueryResult.model_validate(
        {
            "query_id": "ab12",
            "columns": ["city", "orders"],
            "rows": [{"city": "Tehran", "orders": {"value": 12, "error95": 3.1}}],
            "epsilon": "1/2",
            "epsilon_float": 0.5,
            "cached": False,
            "policy_version": 1,
            "pairwise": [{"a": "x"}],  # a template's figure stays
        }
    )
    dumped = result.model_dump(mode="json")
    orders = dumped["rows"][0]["orders"]
    assert {k: orders[k] for k in ("value", "error95", "low", "high")} == {
        "value": 12,
        "error95": 3.1,
        "low": None,
        "high": None,
    }
    assert orders["mostly_noise"] is None  # never invented: the room sets it, the model keeps it
    assert result.model_dump(exclude_unset=True)["rows"][0]["orders"] == {
        "value": 12,
        "error95": 3.1,
    }
    assert dumped["pairwise"] == [{"a": "x"}]
    with pytest.raises(ValueError, match="dry_run"):
        QueryPrice.model_validate({"dry_run": False})


def test_the_error_body_is_what_the_handler_writes() -> None:
    body = ErrorBody.model_validate(
        {
            "error": {
                "code": "query_rejected",
                "message": "SELECT person: ...",
                "request_id": "r1",
                "details": {"rule": "person_in_output", "clause": "SELECT person"},
            }
        }
    )
    assert body.error.details.rule == "person_in_output"
