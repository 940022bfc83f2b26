"""Datasets: upload a sealed bundle, list datasets, show one dataset's versions."""

from __future__ import annotations

import os
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from cleanroom.errors import T_, NotFoundError, TooLargeError, UserError
from cleanroom.room import metrics
from cleanroom.room.api.models import DatasetOut, DatasetVersionOut
from cleanroom.room.auth import Role, User
from cleanroom.room.disclosure import dataset_for, history_for
from cleanroom.room.http.deps import RoomDep, UserDep, roles
from cleanroom.room.ingest import dataset_history, ingest, live_datasets

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])


@router.post(
    "", status_code=201, response_model=DatasetVersionOut, response_model_exclude_unset=True
)
async def upload(
    request: Request,
    room: RoomDep,
    user: Annotated[User, Depends(roles(Role.party_admin))],
) -> dict[str, Any]:
    """Upload a sealed bundle (the raw file as the request body); 201 once it is live."""
    limit = room.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        metrics.UPLOADS.labels("too_large").inc()
        raise TooLargeError(
            T_(
                "upload of %(declared)s bytes is over the %(limit)s-byte limit",
                declared=declared,
                limit=limit,
            )
        )
    room.audit.require_intact()  # refused before a byte is received when it cannot be recorded
    room.paths.uploads.mkdir(parents=True, exist_ok=True)
    path = room.paths.uploads / f"{secrets.token_hex(8)}.bundle"
    received = 0
    try:
        with path.open("wb") as fh:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    metrics.UPLOADS.labels("too_large").inc()
                    raise TooLargeError(T_("upload is over the %(limit)s-byte limit", limit=limit))
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        if received == 0:
            raise UserError(T_("empty upload: send the bundle file as the request body"))
        try:
            version = await run_in_threadpool(ingest, room, path, user, "uploaded bundle")
        except Exception:
            metrics.UPLOADS.labels("rejected").inc()
            raise
    finally:
        path.unlink(missing_ok=True)
    metrics.UPLOADS.labels("accepted").inc()
    return version.public()


@router.get("", response_model=list[DatasetVersionOut], response_model_exclude_unset=True)
def list_datasets(room: RoomDep, user: UserDep) -> list[dict[str, Any]]:
    """The live version of every dataset: who sent what, when, how many rows.

    Rows, versions and uploader only for the dataset's own party and for
    reviewers and room admins; others see that it exists and how fresh it is
    (``cleanroom.room.disclosure``).
    """
    return [dataset_for(user, d) for d in live_datasets(room)]


@router.get("/{party}/{dataset}", response_model=DatasetOut, response_model_exclude_unset=True)
def show(party: str, dataset: str, room: RoomDep, user: UserDep) -> dict[str, Any]:
    """One dataset: its contract status and every version, newest first (to whom may see it)."""
    versions = dataset_history(room, party, dataset)
    contract = room.active_policy().policy.contract(party, dataset)
    if not versions and contract is None:
        raise NotFoundError(T_("no dataset %(party)s.%(dataset)s", party=party, dataset=dataset))
    return history_for(user, party, dataset, versions, in_policy=contract is not None)
