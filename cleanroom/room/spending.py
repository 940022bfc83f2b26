"""What a user may see of the privacy budget: spent and left, per party, this period.

One answer for the API (``GET /api/v1/budget``) and the web UI's pages: a party-bound
user sees its party; reviewers and admins see every party. The collaboration's total
spending only to those who see every party: less a party's own, it is the other
parties' (:mod:`cleanroom.room.disclosure`).
"""

from __future__ import annotations

from typing import Any

from cleanroom.errors import T_, UserError
from cleanroom.room.auth import Role, User
from cleanroom.room.budget import Ledger
from cleanroom.room.disclosure import sees_every_party
from cleanroom.room.state import Room


def spending(room: Room, user: User, ledger: Ledger) -> list[dict[str, Any]]:
    """Each party's spending this period that ``user`` may see, as the API returns it."""
    privacy = room.active_policy().policy.privacy
    if privacy is None:
        raise UserError(T_("the active policy has no privacy budget (it allows no queries)"))
    if user.role in (Role.reviewer, Role.room_admin):
        parties = sorted(privacy.budget.shares)
    else:
        parties = [user.party or "reporter"]
    out = []
    for party in parties:
        s = ledger.status(party, privacy.budget)
        out.append(
            {
                "party": party,
                "period": s.period,
                "period_start": s.period_start,
                "period_end": s.period_end,
                "share": float(s.share),
                "spent": float(s.spent),
                "left": float(s.left),
                "collaboration_cap": float(s.cap),
            }
        )
        if sees_every_party(user):  # the sum over parties: with two, the other's spending
            out[-1]["collaboration_spent"] = float(s.spent_total)
    return out
