"""The language switch: each person's choice, kept in the store and used on every page.

A choice is a column on ``users`` (not a cookie), so it follows the person
to another browser and survives sign-out; a person who never chose reads
the room's default (setting ``language``). The switch is a CSRF-checked
POST like every other change.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse, Response

from cleanroom.errors import T_, UserError
from cleanroom.i18n import LANGUAGES, language_of
from cleanroom.room.http.deps import RoomDep
from cleanroom.room.prefs import choose_language
from cleanroom.room.web.deps import SessionDep, posted
from cleanroom.room.web.errors import safe_next
from cleanroom.room.web.forms import Form
from cleanroom.room.web.render import HEADERS

router = APIRouter()
SwitchForm = Annotated[Form, Depends(posted("dashboard"))]


@router.post("/language")
def switch(room: RoomDep, session: SessionDep, form: SwitchForm) -> Response:
    """Switch the signed-in person's language and go back to the page they were on."""
    wanted = form.get("language", "")
    if wanted not in LANGUAGES:
        raise UserError(T_("language must be one of %(languages)s", languages=", ".join(LANGUAGES)))
    choose_language(room, session.user.id, language_of(wanted))
    return RedirectResponse(safe_next(form.get("next")), status_code=303, headers=HEADERS)
