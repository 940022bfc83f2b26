"""``cleanroom query``: ask, price, list and re-open queries, and write results to files.

Talks to a running room through :mod:`cleanroom.client`. Every number is shown
with its 95% error bound; a dry run speaks in the analyst's terms (the cost,
what is left, about how many such queries), never in raw keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from cleanroom.cli import lang
from cleanroom.cli.console import console, err_console
from cleanroom.cli.room import _token, _url
from cleanroom.errors import T_, UserError
from cleanroom.i18n import N_, released
from cleanroom.i18n.cut import sentence

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".json": "json", ".xlsx": "xlsx"}


DRY_RUN = N_("dry run:")


def _number(cell: dict[str, Any]) -> str:
    """Rounded to its bound, shares as %, † if mostly noise; a range or the rule if that is all."""
    return released.text(cell, lang.current())


def _shown(value: Any) -> str:
    if isinstance(value, dict) and "value" in value:
        return _number(value)
    if isinstance(value, dict):
        return ", ".join(
            f"{k} {_shown(v)}" for k, v in value.items() if k not in ("evidence", "note")
        )
    if isinstance(value, list):
        return "; ".join(_shown(v) for v in value)
    return lang.digits(str(value)) if isinstance(value, int | float) else str(value)


def bounds_line(bounds: dict[str, Any] | None) -> str | None:
    """Which per-person bounds applied, and whether a match chose them from the data."""
    if not bounds:
        return None
    how = (
        T_(
            "chosen from the data at match time (to cover %(quantile)s of persons)",
            quantile=lang.digits(f"{bounds['quantile']:.4g}"),
        )
        if bounds.get("adaptive")
        else T_("fixed by the policy")
    )
    if bounds.get("pairs"):
        said = T_(
            "per-person bounds: %(rows)s rows, %(groups)s groups, %(pairs)s transition pairs, "
            "%(how)s",
            rows=bounds["rows"],
            groups=bounds["groups"],
            pairs=bounds["pairs"],
            how=lang.say(how),
        )
    else:
        said = T_(
            "per-person bounds: %(rows)s rows, %(groups)s groups, %(how)s",
            rows=bounds["rows"],
            groups=bounds["groups"],
            how=lang.say(how),
        )
    return lang.say(said)


def print_price(price: dict[str, Any]) -> None:
    """A dry run in the analyst's terms: the cost, the budget, and each number's accuracy."""
    budget = price.get("budget")
    if budget:
        summary = lang.say(budget["summary"])  # recognized and translated in Persian
        console.print(f"{lang.gettext(DRY_RUN)} {summary}", highlight=False)
    else:
        cost = lang.digits(f"{price['epsilon_float']:.4g}")
        console.print(lang.say(T_("dry run: this query costs epsilon %(cost)s", cost=cost)))
    console.print(
        lang.say(
            T_(
                "%(groups)s group(s); each number would be within, 95%% of the time:",
                groups=price["groups"],
            )
        ),
        highlight=False,
    )
    if line := bounds_line(price.get("bounds")):
        console.print(f"  ({line})", highlight=False)
    for name, errors in price["aggregates"].items():
        if errors.get("error95") is not None:
            shown = lang.digits(f"{errors['error95']:,}")
            console.print(f"  {name}: ± {shown}", highlight=False)
        elif errors.get("sum_error95") is not None:
            text = T_(
                "an average; its total ± %(sum)s over a count ± %(count)s",
                sum=lang.digits(f"{errors['sum_error95']:,}"),
                count=lang.digits(f"{errors.get('count_error95', 0):,}"),
            )
            console.print(f"  {name}: {lang.say(text)}", highlight=False)
    if price.get("threshold_error95") is not None and price.get("min_noisy_persons"):
        text = T_(
            "groups under about %(persons)s persons are withheld (their noisy size is ± %(error)s)",
            persons=price["min_noisy_persons"],
            error=lang.digits(f"{price['threshold_error95']:,}"),
        )
        console.print(lang.say(text), highlight=False)
    cut = price.get("cut") or {}
    if cut.get("possible"):
        text = T_(
            "%(share)s of the epsilon measures what the per-person bound of %(bound)s %(unit)s "
            "cuts (± %(error)s)",
            share=lang.digits(str(cut["epsilon_share"])),
            bound=cut["bound"],
            unit=cut["unit"],
            error=lang.digits(f"{cut['cut_error95']:,}"),
        )
        console.print(lang.say(text), highlight=False)


def print_result(result: dict[str, Any]) -> None:
    """A released table: every number with its 95% error bound, then the template's figures.

    Under the table: what the marks mean (rounding, † mostly noise, ranges),
    what a lift's interval says, and each rule that withheld or narrowed cells.
    """
    if result.get("dry_run"):
        print_price(result)
        return
    title = lang.say(T_("query %(query_id)s", query_id=result["query_id"]))
    table = Table(*result["columns"], title=title)
    for row in result["rows"]:
        table.add_row(*(_shown(row.get(column)) for column in result["columns"]))
    console.print(table)
    from cleanroom.client import Result

    for key, value in Result(result).extras().items():
        console.print(f"{key}: {_shown(value)}", highlight=False)
        said = (
            released.evidence(value.get("evidence"), lang.current())
            if isinstance(value, dict)
            else None
        )
        if said:
            console.print(said, highlight=False)
    noise, ranges = released.marks(released.cells_in(result))
    for line in released.legend(lang.current(), noise=noise, ranges=ranges):
        console.print(line, highlight=False, style="dim")
    for entry in result.get("rules") or []:
        console.print(f"! {released.rule(entry, lang.current())}", highlight=False)
    if result.get("cut"):
        console.print(sentence(result["cut"], lang.current()), highlight=False)
    spent = lang.digits(f"{0 if result['cached'] else result['epsilon_float']:g}")
    summary = T_(
        "epsilon spent: %(spent)s%(cached)s; groups withheld (under the minimum size): "
        "%(withheld)s; policy v%(policy)s, match generation %(generation)s",
        spent=spent,
        cached=T_(" (cached answer)") if result["cached"] else "",
        withheld=result["suppressed_groups"],
        policy=result["policy_version"],
        generation=result["generation"],
    )
    console.print(lang.say(summary), highlight=False)
    if said_bounds := bounds_line(result.get("bounds")):
        console.print(said_bounds, highlight=False)
    if result.get("suppression_applied"):
        text = T_("customers who opted out were left out of these numbers at every brand")
        console.print(lang.say(text), highlight=False)


def _format_of(out: Path) -> str:
    fmt = SUFFIXES.get(out.suffix.lower())
    if fmt is None:
        raise UserError(
            T_("--out %(out)s: name the file .csv, .parquet, .json or .xlsx", out=out.name)
        )
    return fmt


def _write(url: str, token: str, query_id: str, out: Path) -> None:
    from cleanroom.client import Client

    fmt = _format_of(out)
    with Client(url, token, language=lang.current()) as client:
        data = client.download(query_id, fmt)
    out.write_bytes(data)
    err_console.print(f"query {query_id} written to {out} ({fmt})", highlight=False)


_out = click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the result to FILE (.csv, .parquet, .json, .xlsx): one line per "
    "number with its bounds and flags.",
)


@click.group("query", invoke_without_command=True)
@click.option("--url", envvar="CLEANROOM_URL", default=None, help="Room URL (or CLEANROOM_URL).")
@click.option("--token", envvar="CLEANROOM_TOKEN", default=None, help="Bearer token.")
@click.option("--sql", default=None, help="Restricted SQL (aggregates only).")
@click.option("--template", default=None, help="A template approved in the policy (e.g. overlap).")
@click.option("--param", "params", multiple=True, help="Template parameter k=v (repeatable).")
@click.option("--epsilon", type=float, default=None, help="Privacy budget to spend.")
@click.option("--dry-run", is_flag=True, help="Price the query; spend nothing, read nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw result as JSON.")
@_out
@click.pass_context
def query(
    ctx: click.Context,
    url: str | None,
    token: str | None,
    sql: str | None,
    template: str | None,
    params: tuple[str, ...],
    epsilon: float | None,
    dry_run: bool,
    as_json: bool,
    out: Path | None,
) -> None:
    """Run a query and print the result table with error bounds (or: history, show)."""
    if ctx.invoked_subcommand is not None:
        return
    if url is None or token is None:
        raise UserError(T_("give --url and --token (or CLEANROOM_URL and CLEANROOM_TOKEN)"))
    if (sql is None) == (template is None):
        raise UserError(T_("give --sql or --template"))
    if out is not None:
        _format_of(out)  # a wrong suffix is refused before anything is spent
        if dry_run:
            raise UserError(T_("--out writes a result; a dry run has none"))
    parsed = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(T_("--param %(item)s: expected key=value", item=repr(item)))
        parsed[key] = value
    from cleanroom.client import Client

    with Client(url, token, language=lang.current()) as client:
        body = {"sql": sql, "template": template, "params": parsed, "epsilon": epsilon}
        result = client.call("POST", "/api/v1/queries", json={**body, "dry_run": dry_run})
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        print_result(result)
    if out is not None:
        _write(url, token, result["query_id"], out)


@query.command("history")
@_url
@_token
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def history(url: str, token: str, limit: int, as_json: bool) -> None:
    """Your party's queries, newest first."""
    from cleanroom.client import Client

    with Client(url, token, language=lang.current()) as client:
        found = client.history(limit)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    table = Table("id", "when", "who", "what", "epsilon", "status")
    for q in found:
        what = q["template"] or (q["sql"] or "")[:60]
        status = q["status"] + (" (cached)" if q["cached"] else "")
        table.add_row(q["query_id"], q["created_at"], q["user"], what, f"{q['epsilon']:g}", status)
    console.print(table)


@query.command("show")
@click.argument("query_id")
@_url
@_token
@click.option("--json", "as_json", is_flag=True, help="Print the raw result as JSON.")
@_out
def show(query_id: str, url: str, token: str, as_json: bool, out: Path | None) -> None:
    """Re-open a past result of your party (nothing is spent)."""
    from cleanroom.client import Client

    if out is not None:
        _format_of(out)
    with Client(url, token, language=lang.current()) as client:
        result = client.result(query_id).raw
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif result.get("status", "done") != "done":
        console.print(f"query {query_id} is {result['status']}: no result", highlight=False)
    else:
        print_result(result)
    if out is not None:
        _write(url, token, query_id, out)
