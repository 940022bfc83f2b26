"""The client's exceptions mirror the API's error codes and keep the details."""

from __future__ import annotations

import pytest

from cleanroom.client import (
    BadRequest,
    BudgetExhausted,
    Conflict,
    Forbidden,
    NotFound,
    QueryRefused,
    RoomError,
    RoomInternal,
    Unauthorized,
    Unavailable,
    checked_url,
)
from cleanroom.client.errors import from_answer
from cleanroom.errors import AuthError, ConflictError, UnavailableError, UserError


def answer(code: str, **details: object) -> dict[str, object]:
    return {"error": {"code": code, "message": "m", "request_id": "r9", "details": details}}


@pytest.mark.parametrize(
    ("status", "code", "kind", "family"),
    [
        (400, "query_rejected", QueryRefused, UserError),
        (429, "budget_exhausted", BudgetExhausted, ConflictError),
        (401, "unauthorized", Unauthorized, AuthError),
        (403, "forbidden", Forbidden, UserError),
        (404, "not_found", NotFound, UserError),
        (409, "report_running", Conflict, ConflictError),
        (503, "store_busy", Unavailable, UnavailableError),
        (422, "invalid_request", BadRequest, UserError),
        (400, "bad_bundle", BadRequest, UserError),
        (500, "internal", RoomInternal, RoomError),
        (409, "some_new_conflict", Conflict, ConflictError),  # unknown code: by status
    ],
)
def test_each_code_has_its_exception(
    status: int, code: str, kind: type[RoomError], family: type[Exception]
) -> None:
    err = from_answer(status, answer(code))
    assert type(err) is kind and isinstance(err, family)
    assert (err.status, err.code, err.request_id) == (status, code, "r9")


def test_refusals_carry_the_rule_and_the_reset() -> None:
    refused = from_answer(400, answer("query_rejected", rule="select_star", clause="SELECT *"))
    assert isinstance(refused, QueryRefused)
    assert (refused.rule, refused.clause) == ("select_star", "SELECT *")
    assert "rule select_star" in str(refused)
    broke = from_answer(
        429,
        answer(
            "budget_exhausted",
            budget_left=0.1,
            resets_at="2027-01-01T00:00:00+00:00",
            retry_after=60,
        ),
    )
    assert isinstance(broke, BudgetExhausted)
    assert (broke.budget_left, broke.resets_at, broke.retry_after) == (
        0.1, "2027-01-01T00:00:00+00:00", 60
    )  # fmt: skip


def test_an_answer_without_an_error_body_still_maps() -> None:
    assert isinstance(from_answer(502, "<html>bad gateway</html>"), RoomInternal)
    assert isinstance(from_answer(404, None), NotFound)


@pytest.mark.parametrize("url", ["room.example", "localhost:8000", "ftp://x", "https://"])
def test_a_url_without_its_scheme_says_how_to_write_it(url: str) -> None:
    with pytest.raises(UserError, match="https://"):
        checked_url(url)


def test_a_full_url_is_kept() -> None:
    assert checked_url(" http://127.0.0.1:8000/ ") == "http://127.0.0.1:8000"
