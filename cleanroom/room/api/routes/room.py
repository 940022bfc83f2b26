"""The room's own upkeep over HTTP: expire data past its retention, stream a backup.

Both are for room admins and act inside the serving process, which alone holds
the warehouse: ``cleanroom room expire`` and ``cleanroom room backup`` call
them while the room serves.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from cleanroom.contract.keys import load_backup_public_key, public_key_id
from cleanroom.errors import T_, ConflictError
from cleanroom.room.api.models import ExpiryOut
from cleanroom.room.auth import Role, User
from cleanroom.room.backup import archive
from cleanroom.room.expiry import expire
from cleanroom.room.http.deps import RoomDep, roles
from cleanroom.room.state import Room

router = APIRouter(prefix="/api/v1/room", tags=["room"])
Admin = Annotated[User, Depends(roles(Role.room_admin))]


@router.post("/expire", response_model=ExpiryOut)
async def expire_now(room: RoomDep, user: Admin) -> dict[str, Any]:
    """Delete every dataset version and match generation past the policy's retention now.

    The service does the same every ``scheduler_interval`` seconds; this runs a
    pass at once (audited as ``data.expired`` when anything expired).
    """
    done = await run_in_threadpool(expire, room, actor=user.name)
    return done.as_dict()


@router.get(
    "/backup",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "the sealed archive (cleanroom-backup/1), streamed",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
def backup(room: RoomDep, user: Admin) -> StreamingResponse:
    """A consistent archive of the room, sealed to the backup key (setting ``backup_key``).

    Streamed as it is read; the room goes on serving meanwhile. Audited as
    ``room.backup`` (the archive holds its own entry).
    """
    if room.settings.backup_key is None:
        raise ConflictError(
            T_(
                "this room has no backup key: set backup_key in room.yaml to the operator's "
                "backup.pub (`cleanroom keys backup`) and restart the service"
            )
        )
    key = load_backup_public_key(room.settings.backup_key)
    room.audit.require_intact()  # an archive whose chain does not verify could not be restored
    with room.store.transaction() as tx:
        room.audit.append(
            tx,
            actor=user.name,
            action="room.backup",
            target=room.key_id,
            details={"backup_key_id": public_key_id(key)},
        )
    return StreamingResponse(
        _stream(room, key),
        media_type="application/octet-stream",
        headers={"Content-Disposition": 'attachment; filename="room.backup"'},
    )


def _stream(room: Room, key: Any) -> Iterator[bytes]:
    chunks: Generator[bytes, None, None] = archive(room, key)
    try:
        yield from chunks
    finally:
        chunks.close()  # a client gone mid-way: the pins go now, not at garbage collection
