"""A party's past queries: what was asked, when, by whom, at what cost — to re-open later.

Analysts and reporters see their own party's queries (the same rule as reading
one result); reviewers and room admins see every party's. The listing carries
no numbers: a result is re-opened by its id through the engine, which applies
the same visibility rule.
"""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

from cleanroom.room.auth import Role, User
from cleanroom.room.query import records
from cleanroom.room.store import MetaStore

MAX_LISTED = 500


def history(
    store: MetaStore, user: User, party: str | None, *, limit: int = 50, before: str | None = None
) -> list[dict[str, Any]]:
    """Newest first; ``before`` (a query id) pages back. ``party`` None: every party."""
    if user.role not in (Role.reviewer, Role.room_admin) and party is None:
        return []
    rows = records.page(
        store.connection(), party, limit=min(max(limit, 1), MAX_LISTED), before=before
    )
    out = []
    for row in rows:
        request = json.loads(row.request)
        out.append(
            {
                "query_id": row.id,
                "kind": row.kind,
                "template": request.get("template"),
                "sql": request.get("sql"),
                "params": request.get("params") or {},
                "status": row.status,
                "user": row.user_name,
                "epsilon": float(Fraction(row.epsilon)),
                "cached": row.cached_from is not None,
                "policy_version": row.policy_version,
                "created_at": row.created_at,
                "finished_at": row.finished_at,
            }
        )
    return out
