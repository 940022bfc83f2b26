"""Request bodies both faces check: a query sent to the API or from the console's form.

The web console validates its form with the API's own model, so a query the page
accepts is one the API would accept too (the same limits, the same messages).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from cleanroom.room.dp import MIN_EPSILON


class QueryBody(BaseModel):
    """A query: ``sql`` or ``template`` (+ ``params``); ``dry_run`` prices it without running."""

    sql: str | None = Field(None, max_length=20_000)
    template: str | None = Field(None, max_length=100)
    params: dict[str, str] = Field(default_factory=dict, max_length=20)
    epsilon: float | None = Field(
        None,
        ge=float(MIN_EPSILON),
        le=100,
        allow_inf_nan=False,
        description=f"at least {float(MIN_EPSILON):g}: smaller ones buy only noise",
    )
    dry_run: bool = False
