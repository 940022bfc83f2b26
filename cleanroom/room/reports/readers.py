"""Who may read a report's runs: the recipients the policy names, and the group-wide roles.

Reviewers (who approved the report), room admins (who run the room) and
reporters (who produce it) read every report. A party's analysts read a report
only when the policy lists their party among its recipients; to everyone else
the report does not exist (404, so its name and schedule do not leak either).
"""

from __future__ import annotations

from cleanroom.room.auth import Role, User
from cleanroom.room.policy.reports import ReportPolicy

READ_ALWAYS = frozenset({Role.reviewer, Role.room_admin, Role.reporter})
MAY_TRIGGER = frozenset({Role.reporter, Role.room_admin})


def may_read(user: User, report: ReportPolicy) -> bool:
    """Whether ``user`` may see this report's definition, runs and files."""
    if user.role in READ_ALWAYS:
        return True
    return user.role is Role.analyst and user.party is not None and user.party in report.recipients
