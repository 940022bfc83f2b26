"""Synthetic group data: five brands' exports with messy identifiers, and the ground truth.

``generate`` is the one entry point (the CLI's ``demo`` and the tests of later
stages call it). It writes, under ``out``:

- ``<party>/<dataset>.csv`` or ``.parquet`` and ``<party>/<dataset>.spec.yaml``
  (accepted by ``cleanroom.contract.spec.load_spec``), for ``ofogh/purchases``,
  ``okala/orders``, ``filimo/views``, ``tapsi/rides``, ``ozone/payments`` and
  ``ozone/campaign``;
- ``truth/persons.parquet``: one row per person as the clean room can resolve it,
  and ``truth/summary.json``: counts, brand combinations and overlaps, row counts,
  unusable rows, campaign figures. Neither holds an identifier.

Raw identifiers exist only in the party files: the generator never prints or logs one.
"""

from cleanroom.synth.brands import DATASETS, PARTIES, Dataset
from cleanroom.synth.generator import SynthSummary, generate
from cleanroom.synth.people import PERSONAS

__all__ = ["DATASETS", "PARTIES", "PERSONAS", "Dataset", "SynthSummary", "generate"]
