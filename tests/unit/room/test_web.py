"""Web UI pieces that need no server: charts, formatting, redirects, sessions, settings."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cleanroom.errors import SpecError
from cleanroom.room.audit import AuditLog
from cleanroom.room.auth import Role, Users
from cleanroom.room.config import load_settings
from cleanroom.room.store import MetaStore
from cleanroom.room.web.errors import safe_next
from cleanroom.room.web.render import age, number, when
from cleanroom.room.web.result_chart import chart
from cleanroom.room.web.session import Sessions, csrf_matches, csrf_token

SQL_RESULT = {
    "columns": ["city", "buyers", "avg_amount"],
    "rows": [
        {
            "city": "Tehran",
            "buyers": {"value": 138, "error95": 90.0},
            "avg_amount": {"value": 1975.5, "low": 0, "high": 5413.4, "error95": 3437.9},
        },
        {
            "city": "<script>x</script>",
            "buyers": {"value": 5, "error95": 9.0},
            "avg_amount": None,
        },
    ],
}


def test_the_result_chart_is_an_svg_image_with_its_text_escaped() -> None:
    img = str(chart(SQL_RESULT, "en"))
    assert img.startswith('<img class="chart" ') and 'src="data:image/svg+xml;base64,' in img
    assert 'alt="buyers per group"' in img
    data = re.search(r"base64,([^\"]+)", img)
    assert data is not None
    svg = base64.b64decode(data.group(1))
    assert svg.startswith(b"<?xml") and b"<svg" in svg and b"<script" not in svg
    cell = {"value": 1, "error95": 2}
    odd = {"columns": ["k", "<b>n</b>"], "rows": [{"k": "a", "<b>n</b>": cell}]}
    assert 'alt="&lt;b&gt;n&lt;/b&gt; per group"' in str(chart(odd, "en"))


def test_a_drawn_chart_is_kept_per_answer_and_language() -> None:
    first = chart(SQL_RESULT, "en")
    assert chart(SQL_RESULT, "en") is first  # not drawn again
    assert chart({**SQL_RESULT, "cached": True, "seconds": 0.01}, "en") is first  # a replay
    persian = chart(SQL_RESULT, "fa")
    assert persian is not None and persian != first and "در هر گروه" in persian
    changed = {**SQL_RESULT, "rows": SQL_RESULT["rows"][:1]}
    assert chart(changed, "en") != first


def test_a_dry_run_or_a_result_without_numbers_has_no_chart() -> None:
    assert chart({**SQL_RESULT, "dry_run": True}, "en") is None
    assert chart({"columns": ["a"], "rows": [{"a": "x"}]}, "en") is None
    assert chart({"columns": [], "rows": []}, "en") is None


def test_numbers_and_times_read_well() -> None:
    assert number(20_000_000.0) == "20,000,000"
    assert number(197566.1256) == "197,566.1"
    assert number(0.36363) == "0.3636"
    assert number(True) == "True"
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert age("2026-11-22T09:00:00+00:00", now) == "3 hours ago"
    assert age("2026-11-21T12:00:00+00:00", now) == "1 day ago"
    assert age(None, now) == "never"
    assert when("2026-12-01T00:00:00+00:00") == "2026-12-01 00:00 UTC"
    assert when("2026-12-01T03:30:00+03:30") == "2026-12-01 00:00 UTC"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/ui/console?x=1", "/ui/console?x=1"),
        ("//evil.example/ui/", "/ui/"),
        ("https://evil.example/ui/", "/ui/"),
        ("/ui/\\evil", "/ui/"),
        ("/api/v1/me", "/ui/"),
        (None, "/ui/"),
    ],
)
def test_sign_in_returns_only_to_a_page_of_the_ui(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_sessions_store_only_a_hash_and_derive_the_csrf_token(
    store: MetaStore, audit: AuditLog
) -> None:
    users = Users(store, audit)
    user, _ = users.add("ana", Role.reviewer)
    sessions = Sessions(store, audit, users)
    session_id, session = sessions.start(user, client="127.0.0.1")
    assert session.csrf == csrf_token(session_id) and re.fullmatch(r"[0-9a-f]{64}", session.csrf)
    assert csrf_matches(session.csrf, session.csrf)
    assert not csrf_matches(session.csrf, None) and not csrf_matches(session.csrf, "0" * 64)
    stored = store.connection().execute("SELECT id_hash FROM web_sessions").fetchone()[0]
    assert session_id.encode() not in bytes(stored) and len(stored) == 32
    assert sessions.get(session_id) is not None
    assert sessions.get(session_id + "x") is None and sessions.get(None) is None
    sessions.end(session_id, user)
    assert sessions.get(session_id) is None
    actions = [e.action for e in audit.entries(limit=100)]
    assert actions[-2:] == ["web.signin", "web.signout"]


def test_plain_http_cookies_only_in_development(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="web_secure_cookies may be false only"):
        load_settings(tmp_path, web_secure_cookies=False)
    settings = load_settings(tmp_path, web_secure_cookies=False, environment="development")
    assert settings.web_secure_cookies is False
    assert load_settings(tmp_path).web_secure_cookies is True
