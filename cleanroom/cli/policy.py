"""``cleanroom policy``: the compliance reviewers' side of policy versions, over HTTP.

Propose, approve, reject and roll back go through the running room (never its
files), so every step passes the same role checks and lands in the same audit
trail as in the web UI. Diffs print as a table with loosening changes first
and in red: those are the ones a reviewer must not wave through.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml
from rich.table import Table
from rich.text import Text

from cleanroom.cli import lang
from cleanroom.cli.console import console
from cleanroom.cli.room import _token, _url, api_call
from cleanroom.contract.documents import read_yaml
from cleanroom.room.policy.load import inline_key_files

_STYLE = {"loosens": "bold red", "tightens": "green", "neutral": "dim"}
_MARK = {"loosens": "▲ loosens", "tightens": "▼ tightens", "neutral": "· neutral"}
_ORDER = {"loosens": 0, "tightens": 1, "neutral": 2}
MAX_CELL = 60


@click.group("policy")
def policy_group() -> None:
    """Propose, review and compare collaboration policy versions (reviewers)."""


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def print_changes(result: dict[str, Any], title: str) -> None:
    """The classified changes as a table, loosening ones first and highlighted."""
    changes = sorted(result["changes"], key=lambda c: _ORDER.get(c["privacy"], 0))
    if not changes:
        console.print(f"{title}: no changes", highlight=False)
        return
    table = Table("privacy", title=title)
    table.add_column("path", overflow="fold")  # a path cut short could name another field
    for column in ("change", "old", "new", "why"):
        table.add_column(column)
    for c in changes:
        style = _STYLE.get(c["privacy"], "bold red")
        table.add_row(
            Text(_MARK.get(c["privacy"], c["privacy"]), style=style),
            Text(c["path"], style=style if c["privacy"] == "loosens" else ""),
            c["kind"],
            Text(_cell(c["old"])),
            Text(_cell(c["new"])),
            Text(lang.say(c["reason"])),
        )
    console.print(table)
    s = result["summary"]
    line = Text(f"{s['loosens']} loosening", style="bold red" if s["loosens"] else "")
    line.append(f", {s['tightens']} tightening, {s['neutral']} neutral change(s)", style="")
    console.print(line)


def _status_line(v: dict[str, Any]) -> str:
    line = f"version {v['version']}: {v['status']}"
    if v["status"] == "proposed" and v["approvals_required"]:
        line += f", approvals {len(v['approvals'])}/{v['approvals_required']}"
    if v["status"] == "active":
        line += f", active since {v['activated_at']}"
    return line


@policy_group.command("propose")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--comment", default="", help="Why this version is proposed.")
@_url
@_token
def propose(file: Path, comment: str, url: str, token: str) -> None:
    """Propose FILE (a whole policy) as a new version; prints its changes from the active one.

    ``public_key_file`` entries are read here and sent inline: the room cannot
    read this machine's files.
    """
    data = read_yaml(file)
    if isinstance(data, dict):
        inline_key_files(data, file.parent, str(file))
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    result = api_call(
        "POST", url, token, "/api/v1/policies", json={"yaml": text, "comment": comment}
    )
    console.print(
        f"proposed version {result['version']} against version {result['base_version']}; "
        f"it needs {result['approvals_required']} approval(s) from reviewers other than you",
        highlight=False,
    )
    print_changes(result, f"changes from version {result['base_version']}")


@policy_group.command("approve")
@click.argument("version", type=int)
@click.option("--comment", default="", help="Optional note kept with the approval.")
@_url
@_token
def approve(version: int, comment: str, url: str, token: str) -> None:
    """Approve VERSION; the approval that reaches the required count activates it."""
    result = api_call(
        "POST", url, token, f"/api/v1/policies/{version}/approve", json={"comment": comment}
    )
    console.print(_status_line(result), highlight=False)


@policy_group.command("reject")
@click.argument("version", type=int)
@click.option("--comment", required=True, help="Why (required).")
@_url
@_token
def reject(version: int, comment: str, url: str, token: str) -> None:
    """Reject VERSION with a comment; the proposal is closed."""
    result = api_call(
        "POST", url, token, f"/api/v1/policies/{version}/reject", json={"comment": comment}
    )
    console.print(_status_line(result), highlight=False)


@policy_group.command("rollback")
@click.argument("version", type=int)
@click.option("--comment", default="", help="Why.")
@_url
@_token
def rollback(version: int, comment: str, url: str, token: str) -> None:
    """Propose an earlier VERSION's text again (it needs approvals like any proposal)."""
    result = api_call(
        "POST", url, token, f"/api/v1/policies/{version}/rollback", json={"comment": comment}
    )
    console.print(
        f"proposed version {result['version']} (the text of version {version})", highlight=False
    )
    print_changes(result, f"changes from version {result['base_version']}")


@policy_group.command("history")
@_url
@_token
def history(url: str, token: str) -> None:
    """Every version: status, author, base, approvals."""
    table = Table("version", "status", "author", "created", "base", "approvals", "comment")
    for v in api_call("GET", url, token, "/api/v1/policies"):
        needed = f"/{v['approvals_required']}" if v["approvals_required"] else ""
        table.add_row(
            str(v["version"]),
            v["status"],
            v["author"],
            v["created_at"],
            str(v["base_version"] or "—"),
            f"{len(v['approvals'])}{needed} {', '.join(v['approvals'])}".strip(),
            v["comment"] or "",
        )
    console.print(table)


@policy_group.command("show")
@click.argument("version", type=int)
@_url
@_token
def show(version: int, url: str, token: str) -> None:
    """One version's status, decisions and YAML."""
    v = api_call("GET", url, token, f"/api/v1/policies/{version}")
    console.print(_status_line(v), highlight=False)
    console.print(f"author: {v['author']}; comment: {v['comment'] or '—'}", highlight=False)
    for d in v["decisions"]:
        console.print(
            f"{d['decision']} by {d['reviewer']} at {d['at']}: {d['comment'] or '—'}",
            highlight=False,
        )
    click.echo(v["yaml"])


@policy_group.command("diff")
@click.argument("old", type=int)
@click.argument("new", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the raw changes as JSON.")
@_url
@_token
def diff(old: int, new: int, as_json: bool, url: str, token: str) -> None:
    """The changes from version OLD to version NEW, loosening ones highlighted."""
    result = api_call("GET", url, token, "/api/v1/policies/diff", params={"from": old, "to": new})
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print_changes(result, f"version {old} → version {new}")
