"""Ingest: a sealed bundle becomes a live dataset version, or nothing changes at all.

Order matters: structure and signature (against the key the policy registered
for the party) before anything is decrypted; policy checks (party, dataset,
uploader's party, match key, room key, schema) before any table is touched;
the payload is decrypted chunk by chunk into memory (never to disk in the
clear), every party token is re-keyed with the room secret (the native keyed
hash of ``cleanroom.contract.keyed_hash``, whole columns at a time) as it is loaded
into a staging table, and the party's tokens are discarded. The new version
goes live in one metadata transaction, together with its audit entry and the
bundle id that makes a replay impossible. A crash at any point leaves either
the old version or the new one live, never a mix; leftovers are dropped by
:func:`reconcile` at start-up.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from cleanroom.batches import in_order
from cleanroom.contract.bundle import BundleInfo, iter_payload, read_bundle
from cleanroom.contract.keyed_hash import TOKEN_VERSION, digest_expr, to_tokens
from cleanroom.contract.spec import SQL_TYPES, DatasetSpec, payload_schema
from cleanroom.errors import T_, BundleError, ConflictError, ForbiddenError, NotFoundError
from cleanroom.room import datasets, generations, suppression
from cleanroom.room.auth import Role, User
from cleanroom.room.datasets import DatasetVersion
from cleanroom.room.faults import unavailable
from cleanroom.room.match_keys import check_bundle_key, retire_quietly
from cleanroom.room.policy.models import DatasetContract
from cleanroom.room.state import Room
from cleanroom.room.suppression import DATASET as SUPPRESSION_DATASET
from cleanroom.room.suppression import KIND as SUPPRESSION
from cleanroom.room.suppression import SuppressionList
from cleanroom.room.warehouse import UNCOMPRESSED_BLOB
from cleanroom.sql import quote_column, table_sql


def live_datasets(room: Room) -> list[DatasetVersion]:
    """Every dataset's live version."""
    return datasets.live(room.store.connection())


def dataset_history(room: Room, party: str, dataset: str) -> list[DatasetVersion]:
    """All versions of one dataset, newest first."""
    return datasets.history(room.store.connection(), party, dataset)


def _check_contract(info: BundleInfo, spec: DatasetSpec) -> None:
    sent = info.header.get("spec") or {}
    problems = []
    for kind in ("identifiers", "columns"):
        want: dict[str, str] = {k: str(v) for k, v in getattr(spec, kind).items()}
        got: dict[str, str] = {k: str(v) for k, v in (sent.get(kind) or {}).items()}
        problems += [f"{kind[:-1]} '{c}' is missing" for c in want if c not in got]
        problems += [f"{kind[:-1]} '{c}' is not in the contract" for c in got if c not in want]
        problems += [
            f"{kind[:-1]} '{c}' is {got[c]}, the contract says {want[c]}"
            for c in want
            if c in got and got[c] != want[c]
        ]
    if problems:
        raise BundleError(
            T_(
                "%(bundle)s: does not match the contract for %(dataset)s: %(problems)s",
                bundle=info.name,
                dataset=spec.dataset,
                problems="; ".join(problems),
            )
        )


def _decrypt(info: BundleInfo, room: Room) -> pq.ParquetFile:
    buffer = io.BytesIO()
    for chunk in iter_payload(info, room.private_key):
        buffer.write(chunk)
    try:
        return pq.ParquetFile(pa.BufferReader(buffer.getbuffer()))
    except (pa.ArrowInvalid, OSError):
        raise BundleError(
            T_("%(info)s: payload is not a readable Parquet file", info=info.name)
        ) from None


def _rekey(table: pa.Table, spec: DatasetSpec, secret: bytes) -> pa.Table:
    """Every identifier column re-keyed with the room secret, in one native pass."""
    ids = [n for n in table.column_names if n in spec.identifiers]
    if not ids:
        return table
    frame = pl.DataFrame(table.select(ids))
    out = frame.select([digest_expr(secret, pl.col(n)).alias(n) for n in ids]).to_arrow()
    for name in ids:
        table = table.set_column(table.column_names.index(name), name, to_tokens(out.column(name)))
    return table


BATCH_ROWS = 1 << 20  # rows re-keyed and loaded at a time


def _rekeyed(
    parquet: pq.ParquetFile, expected: pa.Schema, spec: DatasetSpec, secret: bytes
) -> Iterator[pa.Table]:
    """The payload's batches re-keyed, two at a time while the caller loads the last.

    Re-keying is the longer of the two (the load writes uncompressed tokens), so
    it gets both cores' worth of workers; at most three batches wait in memory.
    """
    batches = (
        pa.Table.from_batches([b]).select(expected.names)
        for b in parquet.iter_batches(batch_size=BATCH_ROWS)
    )
    with ThreadPoolExecutor(2, thread_name_prefix="rekey") as pool:
        yield from in_order(pool, lambda t: _rekey(t, spec, secret), batches, 2)


class Ingest:
    """One upload being turned into a dataset version."""

    def __init__(self, room: Room, path: Path, user: User, name: str | None = None) -> None:
        self.room, self.path, self.user = room, path, user
        self.name = name or str(path)

    def run(self) -> DatasetVersion | SuppressionList:
        """Check, load, swap in; refuse with a reason and change nothing on any failure."""
        self.room.audit.require_intact()  # a new version must be recorded: refuse up front
        info = read_bundle(self.path, name=self.name)
        party, dataset = str(info.header.get("party")), str(info.header.get("dataset"))
        try:
            version = self._run(info, party, dataset)
        except Exception as err:
            refusal = unavailable(err)  # a full disk or a locked store, said as such
            self.room.audit.record_refusal(
                actor=self.user.name,
                action="dataset.upload",
                target=f"{party}.{dataset}",
                outcome="rejected",
                details={
                    "bundle_id": info.bundle_id,
                    "reason": getattr(refusal or err, "code", "internal"),
                },
            )
            if refusal is not None and refusal is not err:
                raise refusal from None
            raise
        retire_quietly(self.room, self.user.name)
        return version

    def _run(self, info: BundleInfo, party: str, dataset: str) -> DatasetVersion | SuppressionList:
        active = self.room.active_policy()
        policy = active.policy
        if party not in policy.parties:
            raise NotFoundError(
                T_(
                    "%(self)s: party '%(party)s' is not in the collaboration",
                    self=self.name,
                    party=party,
                )
            )
        if self.user.role is not Role.party_admin or self.user.party != party:
            raise ForbiddenError(
                T_(
                    "user '%(user)s' may not upload for party '%(party)s' (needs the "
                    "party_admin role of that party)",
                    user=self.user.name,
                    party=party,
                )
            )
        kind = info.header.get("kind", "dataset")
        if kind not in ("dataset", SUPPRESSION):
            raise BundleError(
                T_(
                    "%(self)s: unknown bundle kind %(kind)s",
                    self=self.name,
                    kind=repr(str(kind)[:40]),
                )
            )
        contract = policy.contract(party, dataset) if kind == "dataset" else None
        if kind == "dataset" and contract is None:
            raise NotFoundError(
                T_(
                    "%(self)s: party '%(party)s' has no dataset '%(dataset)s' in the policy",
                    self=self.name,
                    party=party,
                    dataset=dataset,
                )
            )
        info.verify_signer(policy.parties[party].verify_key)
        self.match_key_id = check_bundle_key(
            self.name, info.header.get("match_key_id"), policy, self.room.store.connection()
        )
        if info.header.get("token_version", 1) != TOKEN_VERSION:
            raise BundleError(
                T_(
                    "%(self)s: its tokens follow token definition version %(get)s; this room "
                    "reads version %(token_version)s only (prepare the export again with "
                    "this release)",
                    self=self.name,
                    get=info.header.get("token_version", 1),
                    token_version=TOKEN_VERSION,
                )
            )
        if info.header.get("room_key_id") != self.room.key_id:
            raise BundleError(
                T_(
                    "%(self)s: sealed to another room key (%(get)s; this room is %(key_id)s)",
                    self=self.name,
                    get=info.header.get("room_key_id"),
                    key_id=self.room.key_id,
                )
            )
        if contract is None:
            spec = suppression_spec(info)
            key = (party, f"{SUPPRESSION} list")
        else:
            spec = contract.as_spec(dataset)
            _check_contract(info, spec)
            self.contract = contract
            key = (party, dataset)
        self._refuse_replay(info)
        busy = ConflictError(
            T_(
                "an upload of %(party)s.%(dataset)s is already in progress",
                party=party,
                dataset=key[1],
            )
        )
        with self.room.busy.only_one(("upload", *key), busy):
            if contract is None:
                loaded: DatasetVersion | SuppressionList = self._load_list(
                    info, spec, party, active.version
                )
            else:
                loaded = self._load_and_swap(info, spec, party, active.version)
        return loaded

    def _refuse_replay(self, info: BundleInfo) -> None:
        db = self.room.store.connection()
        found = datasets.by_bundle(db, info.bundle_id)
        listed = suppression.by_bundle(db, info.bundle_id)
        seen: dict[str, object] | None = None
        if found is not None:
            seen = {"party": found.party, "dataset": found.dataset, "version": found.version}
        elif listed is not None:
            seen = {"party": listed.party, "dataset": "suppression", "version": listed.version}
        if seen is not None:
            raise ConflictError(
                T_(
                    "%(self)s: bundle %(bundle_id)s was already ingested as "
                    "%(seen)s.%(seen2)s v%(seen3)s (replay refused)",
                    self=self.name,
                    bundle_id=info.bundle_id,
                    seen=seen["party"],
                    seen2=seen["dataset"],
                    seen3=seen["version"],
                )
            )

    def _load_and_swap(
        self, info: BundleInfo, spec: DatasetSpec, party: str, policy_version: int
    ) -> DatasetVersion:
        parquet = _decrypt(info, self.room)
        expected = payload_schema(spec)
        got = {f.name: f.type for f in parquet.schema_arrow}
        if got != {f.name: f.type for f in expected}:
            raise BundleError(
                T_("%(self)s: payload columns or types differ from its header", self=self.name)
            )
        rows = parquet.metadata.num_rows
        if rows != info.manifest.get("rows"):
            raise BundleError(
                T_(
                    "%(self)s: payload has %(rows)s rows, the manifest says otherwise",
                    self=self.name,
                    rows=rows,
                )
            )
        wh = self.room.wh
        secret = self.room.rekey_secret
        stage = f"stage_{party}__{spec.dataset}__{info.bundle_id[:16]}"
        cur = wh.cursor()
        columns = ", ".join(
            [f"{quote_column(c)} {UNCOMPRESSED_BLOB}" for c in spec.identifiers]
            + [f"{quote_column(c)} {SQL_TYPES[k]}" for c, k in spec.columns.items()]
        )
        cur.execute(f"DROP TABLE IF EXISTS {table_sql(stage)}")
        cur.execute(f"CREATE TABLE {table_sql(stage)} ({columns})")
        try:
            # The party's tokens are replaced here and never stored.
            for table in _rekeyed(parquet, expected, spec, secret):
                # External access is locked off, so the batch is registered explicitly.
                cur.register("incoming", table)
                cur.execute(f"INSERT INTO {table_sql(stage)} SELECT * FROM incoming")  # noqa: S608
                cur.unregister("incoming")
            loaded = cur.execute(f"SELECT count(*) FROM {table_sql(stage)}").fetchall()[0][0]  # noqa: S608
            if loaded != rows:
                raise BundleError(
                    T_(
                        "%(self)s: loaded %(loaded)s of %(rows)s rows",
                        self=self.name,
                        loaded=loaded,
                        rows=rows,
                    )
                )
            outside = out_of_domain(cur, stage, self.contract)
            return self._swap(info, spec, party, stage, rows, policy_version, outside)
        finally:
            cur.execute(f"DROP TABLE IF EXISTS {table_sql(stage)}")

    def _swap(
        self,
        info: BundleInfo,
        spec: DatasetSpec,
        party: str,
        stage: str,
        rows: int,
        policy_version: int,
        outside: dict[str, int],
    ) -> DatasetVersion:
        db = self.room.store.connection()
        version = datasets.latest_version(db, party, spec.dataset) + 1
        table = f"d_{party}__{spec.dataset}__v{version}"
        wh = self.room.wh
        cur = wh.cursor()
        cur.execute(f"ALTER TABLE {table_sql(stage)} RENAME TO {quote_column(table)}")
        columns = {**{c: str(t) for c, t in spec.identifiers.items()}, **spec.columns}
        try:
            wh.checkpoint()  # inside: a full disk here must not leave the renamed table behind
            with self.room.store.transaction() as tx:
                old = datasets.publish(
                    tx,
                    party=party,
                    dataset=spec.dataset,
                    version=version,
                    bundle_id=info.bundle_id,
                    table_name=table,
                    rows=rows,
                    columns={k: str(v) for k, v in columns.items()},
                    uploaded_by=self.user.name,
                    out_of_domain=outside,
                    token_version=TOKEN_VERSION,
                    match_key_id=self.match_key_id,
                )
                self.room.audit.append(
                    tx,
                    actor=self.user.name,
                    action="dataset.upload",
                    target=f"{party}.{spec.dataset}",
                    details={
                        "version": version,
                        "rows": rows,
                        "bundle_id": info.bundle_id,
                        "policy_version": policy_version,
                        "signer_key_id": info.header.get("signer_key_id"),
                        "match_key_id": self.match_key_id,
                    },
                )
        except Exception:
            wh.drop(table)
            raise
        if old is not None:  # a match reading it keeps it until it has finished
            self.room.drop_when_unread(old)
        loaded = datasets.get(db, party, spec.dataset, version)
        assert loaded is not None  # committed above
        return loaded

    def _load_list(
        self, info: BundleInfo, spec: DatasetSpec, party: str, policy_version: int
    ) -> SuppressionList:
        """A suppression list: re-keyed tokens in one column, then live in one transaction.

        No count is kept or recorded: how many customers objected is the
        party's own business, and no one else may learn it from the room.
        """
        parquet = _decrypt(info, self.room)
        expected = payload_schema(spec)
        if {f.name: f.type for f in parquet.schema_arrow} != {f.name: f.type for f in expected}:
            raise BundleError(
                T_("%(self)s: payload columns or types differ from its header", self=self.name)
            )
        if parquet.metadata.num_rows != info.manifest.get("rows"):
            raise BundleError(T_("%(self)s: payload rows differ from its manifest", self=self.name))
        db = self.room.store.connection()
        version = suppression.latest_version(db, party) + 1
        table = f"s_{party}__v{version}"
        cur = self.room.wh.cursor()
        cur.execute(f"DROP TABLE IF EXISTS {table_sql(table)}")
        cur.execute(f"CREATE TABLE {table_sql(table)} (token {UNCOMPRESSED_BLOB})")
        try:
            for rekeyed in _rekeyed(parquet, expected, spec, self.room.rekey_secret):
                tokens = pa.concat_arrays(
                    [c.combine_chunks().cast(pa.binary()) for c in rekeyed.columns]
                ).drop_null()
                cur.register("incoming", pa.table({"token": tokens}))
                cur.execute(
                    f"INSERT INTO {table_sql(table)} SELECT DISTINCT token FROM incoming "  # noqa: S608
                    f"EXCEPT SELECT token FROM {table_sql(table)}"
                )
                cur.unregister("incoming")
            self.room.wh.checkpoint()
            with self.room.store.transaction() as tx:
                old = suppression.publish(
                    tx,
                    party=party,
                    version=version,
                    bundle_id=info.bundle_id,
                    table_name=table,
                    match_key_id=self.match_key_id,
                    token_version=TOKEN_VERSION,
                    uploaded_by=self.user.name,
                )
                self.room.audit.append(
                    tx,
                    actor=self.user.name,
                    action="suppression.upload",
                    target=party,
                    details={
                        "version": version,
                        "bundle_id": info.bundle_id,
                        "policy_version": policy_version,
                        "signer_key_id": info.header.get("signer_key_id"),
                        "match_key_id": self.match_key_id,
                    },
                )
        except Exception:
            self.room.wh.drop(table)
            raise
        if old is not None:  # a match reading it keeps it until it has finished
            self.room.drop_when_unread(old)
        loaded = suppression.get(db, party, version)
        assert loaded is not None  # committed above
        return loaded


def suppression_spec(info: BundleInfo) -> DatasetSpec:
    """The identifiers a suppression bundle declares: identifiers only, no other column."""
    sent = info.header.get("spec") or {}
    try:
        spec = DatasetSpec.model_validate({**sent, "dataset": SUPPRESSION_DATASET})
    except ValueError:
        raise BundleError(
            T_("%(info)s: its header does not describe a suppression list", info=info.name)
        ) from None
    if spec.columns:
        raise BundleError(
            T_(
                "%(info)s: a suppression list holds identifiers only, not columns (%(columns)s)",
                info=info.name,
                columns=", ".join(sorted(spec.columns)),
            )
        )
    return spec


def out_of_domain(cur: Any, table: str, contract: DatasetContract) -> dict[str, int]:
    """Per dimension, the rows whose (non-null) value the policy's domain does not hold.

    Queries release only declared domain values, so such rows can never be
    counted in a group; saying how many there are at upload lets the party
    fix its export or ask for the domain to change, instead of losing them
    unseen. Category values were normalized by the party with the rule the
    domain was normalized with, so only real differences count.
    """
    dimensions = {n: c.domain for n, c in contract.columns.items() if c.domain is not None}
    if not dimensions:
        return {}
    parts, params = [], []
    for name, domain in dimensions.items():
        marks = ", ".join("?" for _ in domain)
        column = quote_column(name)
        parts.append(f"count(*) FILTER (WHERE {column} IS NOT NULL AND {column} NOT IN ({marks}))")
        params.extend(domain)
    counts = cur.execute(f"SELECT {', '.join(parts)} FROM {table_sql(table)}", params).fetchall()[0]  # noqa: S608
    return {name: int(n) for name, n in zip(dimensions, counts, strict=True)}


def ingest(
    room: Room, path: Path, user: User, name: str | None = None
) -> DatasetVersion | SuppressionList:
    """Turn an uploaded bundle file into the live version of its dataset (or suppression list)."""
    return Ingest(room, path, user, name).run()


def reconcile(room: Room) -> list[str]:
    """At start-up: drop every warehouse table no live dataset or match refers to."""
    db = room.store.connection()
    keep = {d.table_name for d in datasets.live(db)}
    keep |= {s.table_name for s in suppression.live_lists(db)}
    live = generations.live(db)
    if live is not None:
        keep |= set(live.tables.values())
    dropped = sorted(room.wh.tables() - keep)
    for name in dropped:
        room.wh.drop(name)
    for leftover in room.paths.uploads.glob("*.bundle"):
        leftover.unlink()  # never acknowledged; the client retries
    return dropped
