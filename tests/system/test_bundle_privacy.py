"""No raw identifier in a bundle: neither in the sealed file nor in the decrypted payload, in
any input spelling, normalized, or as an unkeyed SHA-256 (hex or raw)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from cleanroom.contract.bundle import open_bundle
from cleanroom.contract.spec import load_spec
from cleanroom.party.normalize import card_reference, email_reference, phone_reference
from cleanroom.party.prepare import prepare
from cleanroom.synth import generate
from tests.conftest import Keys

NORMALIZE = {"phone": phone_reference, "email": email_reference, "card": card_reference}


def test_no_identifier_in_any_form_in_bundle_or_payload(tmp_path: Path, keys: Keys) -> None:
    data = generate(tmp_path / "data", persons=1_500, seed=9, parties=["okala", "ofogh"])
    for (party, dataset), path in data.files.items():
        spec = load_spec(data.specs[(party, dataset)])
        out = tmp_path / f"{party}.bundle"
        prepare(
            input_path=path,
            spec=spec,
            party=party,
            match_key=keys.match,
            room_key=keys.room.public_key(),
            signing_key=keys.party,
            out=out,
        )
        payload = io.BytesIO()
        open_bundle(out, keys.room, payload, expected_signer=keys.party.public_key())
        haystacks = [out.read_bytes(), payload.getvalue()]
        raw = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(spec.identifiers, pa.string())
            ),
        )
        needles: set[bytes] = set()
        for column, kind in spec.identifiers.items():
            for value in raw.column(column).to_pylist():
                if not value or len(value.strip()) < 5:
                    continue
                forms = {value, value.strip()}
                normalized = NORMALIZE[kind.value](value)
                if normalized:
                    forms |= {normalized, normalized.lstrip("+")}
                for form in forms:
                    encoded = form.encode()
                    digest = hashlib.sha256(encoded)
                    needles |= {encoded, digest.digest(), digest.hexdigest().encode()}
        assert len(needles) > 1_000
        for haystack in haystacks:
            found = [n for n in needles if n in haystack]
            assert not found, f"{party}: {len(found)} identifier forms found"
