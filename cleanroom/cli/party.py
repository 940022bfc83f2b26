"""Party-side commands: ``synth``, ``prepare``, ``inspect``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from cleanroom.cli import lang
from cleanroom.cli.console import console, phased_bar, progress_bar
from cleanroom.contract.bundle import BundleInfo, read_bundle
from cleanroom.contract.keys import (
    load_room_public_key,
    load_signing_key,
    load_symmetric_key,
    load_verify_key,
    passphrase_from_env,
)
from cleanroom.contract.spec import NAME, load_spec
from cleanroom.errors import T_, SpecError, UserError
from cleanroom.party.prepare import BundleKind, PrepareResult, prepare

SUPPRESSION = "suppression"  # the dataset name a suppression bundle carries
_file = click.Path(exists=False, dir_okay=False, path_type=Path)


@click.command("synth")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output directory.")
@click.option(
    "--persons", type=click.IntRange(1_000, 20_000_000), default=20_000, show_default=True
)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True
)
@click.option("--party", "parties", multiple=True, help="Only these parties (repeatable).")
def synth_cmd(out: Path, persons: int, seed: int, fmt: str, parties: tuple[str, ...]) -> None:
    """Generate the group's five parties with messy identifiers, plus a ground truth."""
    from cleanroom.synth import generate

    with progress_bar("generating", unit="persons") as update:
        done = 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            update(done, persons)

        summary = generate(
            out,
            persons=persons,
            seed=seed,
            fmt="parquet" if fmt == "parquet" else "csv",
            parties=list(parties) or None,
            progress=step,
        )
    table = Table("party", "dataset", "rows", "file", title=f"{persons:,} persons → {out}")
    for (party, dataset), rows in sorted(summary.rows.items()):
        table.add_row(party, dataset, f"{rows:,}", str(summary.files[(party, dataset)]))
    console.print(table)


def print_summary(result: PrepareResult) -> None:
    """Counts by reason; never a value. In the CLI's language, numbers in its digits."""
    s = result.summary
    say = lang.say

    def n(number: int) -> str:
        return lang.digits(f"{number:,}")

    title = say(
        T_("sealed %(path)s (bundle %(bundle)s)", path=result.path, bundle=result.bundle_id)
    )
    table = Table("", say(T_("rows")), title=title)
    table.add_row(say(T_("read")), n(s.rows_read))
    table.add_row(say(T_("written")), n(s.rows_written))
    table.add_row(say(T_("rejected")), n(s.rows_read - s.rows_written))
    for reason, count in sorted(s.rejected.items()):
        rows = s.rejected_rows.get(reason, [])
        more = f", … (+{n(count - len(rows))})" if count > len(rows) else ""
        listed = lang.digits(", ".join(map(str, rows))) + more
        table.add_row(
            f"  {reason}", say(T_("%(count)s (rows %(rows)s)", count=n(count), rows=listed))
        )
    for column, (low, high) in sorted(s.time_ranges.items()):
        table.add_row(say(T_("time range %(column)s", column=column)), f"{low} … {high}")
    for column, counts in s.identifiers.items():
        table.add_row(
            say(T_("identifier %(column)s", column=column)),
            say(
                T_(
                    "%(tokens)s tokens, %(invalid)s invalid, %(empty)s empty",
                    tokens=n(counts["tokens"]),
                    invalid=n(counts["invalid"]),
                    empty=n(counts["empty"]),
                )
            ),
        )
    if s.undeclared_columns:
        table.add_row(say(T_("undeclared columns dropped")), n(s.undeclared_columns))
    console.print(table)


@click.command("prepare")
@click.option("--party", required=True, help="This party's id, as in the collaboration policy.")
@click.option(
    "--kind",
    type=click.Choice(["dataset", "suppression"]),
    default="dataset",
    show_default=True,
    help="'suppression': the input lists customers who opted out (identifiers only); the "
    "room leaves them out at every brand from the next match, replacing this party's "
    "previous list (an empty list withdraws every objection).",
)
@click.option("--dataset", help="Dataset name; must match the spec (not for a suppression list).")
@click.option("--input", "input_path", type=_file, required=True, help="CSV or Parquet export.")
@click.option("--spec", type=_file, required=True, help="Dataset spec (YAML).")
@click.option("--match-key", type=_file, required=True, help="Group match key file.")
@click.option("--room-key", type=_file, required=True, help="The room's public key (room.pub).")
@click.option("--signing-key", type=_file, required=True, help="This party's private key.")
@click.option("--out", type=_file, required=True, help="Bundle to write.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--force", is_flag=True, help="Replace an existing bundle at --out.")
def prepare_cmd(
    party: str,
    kind: BundleKind,
    dataset: str | None,
    input_path: Path,
    spec: Path,
    match_key: Path,
    room_key: Path,
    signing_key: Path,
    out: Path,
    as_json: bool,
    force: bool,
) -> None:
    """Normalize identifiers, tokenize them with the match key, and seal a bundle."""
    if out.exists() and not force:
        raise UserError(
            T_(
                "%(out)s: a bundle is already there; choose another --out, or add "
                "--force to replace it (a room refuses a replayed bundle anyway)",
                out=out,
            )
        )
    if not NAME.match(party):
        raise click.BadParameter("lower-case letters, digits and '_'", param_hint="--party")
    dataset_spec = load_spec(spec)
    if kind == "suppression":
        if dataset not in (None, SUPPRESSION):
            raise click.BadParameter(
                lang.say(T_("a suppression list has no dataset name; leave --dataset out")),
                param_hint="--dataset",
            )
        if dataset_spec.columns:
            raise SpecError(
                T_(
                    "%(spec)s: a suppression list holds identifiers only; remove its columns "
                    "(%(columns)s)",
                    spec=spec,
                    columns=", ".join(sorted(dataset_spec.columns)),
                )
            )
        dataset_spec = dataset_spec.model_copy(update={"dataset": SUPPRESSION, "time": None})
    elif dataset is None:
        raise click.BadParameter(
            lang.say(T_("required for --kind dataset")), param_hint="--dataset"
        )
    elif dataset_spec.dataset != dataset:
        raise SpecError(
            T_(
                "%(spec)s: describes dataset '%(dataset)s', not '%(dataset2)s'",
                spec=spec,
                dataset=dataset_spec.dataset,
                dataset2=dataset,
            )
        )
    passphrase = passphrase_from_env()
    matching = load_symmetric_key(match_key, "match-key", passphrase=passphrase)
    room_public = load_room_public_key(room_key)
    signing = load_signing_key(signing_key, passphrase)
    with phased_bar(f"sealing {input_path.name}") as bar:
        result = prepare(
            input_path=input_path,
            spec=dataset_spec,
            party=party,
            match_key=matching,
            room_key=room_public,
            signing_key=signing,
            out=out,
            progress=bar.update,
            phase=bar.phase,
            kind=kind,
        )
    if as_json:
        click.echo(
            json.dumps(
                {"bundle": str(out), "bundle_id": result.bundle_id, **result.summary.as_dict()},
                indent=2,
            )
        )
    else:
        print_summary(result)


def describe(info: BundleInfo, *, signer_checked: bool) -> dict[str, Any]:
    """The header and manifest fields worth showing; no wrapped key, no signer key bytes."""
    h, m = info.header, info.manifest
    return {
        "bundle_id": h["bundle_id"],
        "party": h["party"],
        "dataset": h["dataset"],
        "kind": h.get("kind", "dataset"),
        "created_at": h["created_at"],
        "rows": m.get("rows"),
        "columns": h.get("payload_schema"),
        "match_key_id": h.get("match_key_id"),
        "room_key_id": h["room_key_id"],
        "signer_key_id": h["signer_key_id"],
        "signature": "valid (registered key)" if signer_checked else "valid (embedded key)",
        "payload_bytes": m.get("payload_bytes"),
        "chunks": m.get("chunks"),
        "summary": m.get("summary"),
    }


@click.command("inspect")
@click.argument("bundle", type=_file)
@click.option("--signer-key", type=_file, help="Require the signature of this party key (.pub).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def inspect_cmd(bundle: Path, signer_key: Path | None, as_json: bool) -> None:
    """Show a bundle's header and check its signature, without decrypting it."""
    expected = load_verify_key(signer_key) if signer_key else None
    info = read_bundle(bundle, expected_signer=expected)
    doc = describe(info, signer_checked=expected is not None)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    table = Table("field", "value", title=str(bundle))
    for key, value in doc.items():
        shown = json.dumps(value) if isinstance(value, dict) else str(value)
        table.add_row(key, shown)
    console.print(table)
