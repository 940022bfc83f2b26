"""What every journey template shares: declared cells, bounded exact counts, one noisy vector each.

A template names, from its parameters alone, the cells it releases (brand
pairs, funnel steps, bins, cohorts…): a cell with no one in it is a noisy
zero, so absence is not a signal. Its SQL bounds each person's contribution
and computes exact per-cell counts; each vector is then released with the
sensitivity derived from that bound by :mod:`cleanroom.room.sensitivity`
(``l1``/``l2``: how much one person can move the whole vector), through the
one release pipeline (:mod:`cleanroom.room.pipeline`: the epsilon split, the
noise, the cut disclosed). A template whose bound can remove something
(``transitions``: pairs over ``max_transitions``) declares a :meth:`Journey.cut`
and reports its exact figures under :data:`CUT`. Everything after the noise
is post-processing.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sqlglot import exp

from cleanroom.room import dp, pipeline
from cleanroom.room.policy.privacy import PrivacyPolicy
from cleanroom.room.query.release import Released
from cleanroom.room.sensitivity import Contribution

Cell = tuple[Any, ...]
# Where a template's exact answer carries its cut: cells ("kept",), ("cut",), ("persons",).
CUT = "_cut"


@dataclass(frozen=True, eq=False)
class Vector:
    """One released vector: its declared cells and one person's maximal effect on it."""

    name: str
    cells: tuple[Cell, ...]
    contribution: Contribution

    @property
    def l1(self) -> float:
        """See :mod:`cleanroom.room.sensitivity`."""
        return self.contribution.l1

    @property
    def l2(self) -> float:
        """See :mod:`cleanroom.room.sensitivity`: not √L1 unless each cell moves by one."""
        return self.contribution.l2


def sum_error95(error95: float, n: int) -> float:
    """A conservative 95% bound for a sum of ``n`` independent noisy cells.

    √n times one cell's bound: exact for Gaussian noise, and above the true
    quantile for Laplace noise (whose sums are lighter-tailed than one draw).
    """
    return error95 * math.sqrt(max(1, n))


def count(value: int, error95: float) -> dict[str, Any]:
    """A released count (never negative: clamping is post-processing)."""
    return {"value": max(0, value), "error95": round(error95, 2)}


class Journey(ABC):
    """A checked journey template: cells, bounded exact counts, then the release."""

    name: str
    canonical: str

    @abstractmethod
    def vectors(self) -> list[Vector]:
        """What is released, with sensitivities, decided before any data is read."""

    @abstractmethod
    def exact(self, cursor: Any, tables: dict[str, str]) -> dict[str, dict[Cell, int]]:
        """Per vector, exact bounded counts per cell (cells with no one may be absent)."""

    @abstractmethod
    def answer(
        self, noisy: dict[str, dp.Release], privacy: PrivacyPolicy
    ) -> tuple[list[str], list[dict[str, Any]], int, dict[str, Any]]:
        """Columns, rows, groups withheld under the minimum, derived extras."""

    def cut(self) -> pipeline.Cut | None:
        """What the template's per-person bound can remove (None: nothing, by construction)."""
        return None

    def preview(self, epsilon: Fraction, privacy: PrivacyPolicy) -> dict[str, Any]:
        """Cost and expected error per vector, from the parameters alone."""
        vectors = self.vectors()
        errors, cut = pipeline.preview(vectors, self.cut(), epsilon=epsilon, privacy=privacy)
        return {
            "epsilon": str(epsilon),
            "epsilon_float": float(epsilon),
            "delta": privacy.delta or 0.0,
            "mechanism": privacy.mechanism,
            "groups": sum(len(v.cells) for v in vectors),
            "aggregates": {
                v.name: {"error95": round(errors[v], 2), "cells": len(v.cells), "sensitivity": v.l1}
                for v in vectors
            },
            "min_noisy_persons": privacy.min_noisy_persons,
            "cut": cut,
        }

    def execute(
        self, cursor: Any, tables: dict[str, str], epsilon: Fraction, privacy: PrivacyPolicy
    ) -> Released:
        """Exact counts on the declared cells, one noisy vector each, then the answer."""
        return self.release(self.exact(cursor, tables), epsilon, privacy)

    def release(
        self, exact: dict[str, dict[Cell, int]], epsilon: Fraction, privacy: PrivacyPolicy
    ) -> Released:
        """Noise each declared vector of ``exact`` to its sensitivity; the rest is post-processing.

        Apart from :meth:`execute` so that an audit can release one exact answer many times.
        """
        vectors = self.vectors()
        answer = {v: [int(exact.get(v.name, {}).get(c, 0)) for c in v.cells] for v in vectors}
        cut = self.cut()
        counts = cut_counts(exact.get(CUT, {})) if cut is not None else None
        noisy = pipeline.release(answer, cut, counts, epsilon=epsilon, privacy=privacy)
        columns, rows, suppressed, extra = self.answer({v.name: noisy[v] for v in vectors}, privacy)
        return Released(
            columns,
            rows,
            suppressed,
            noisy.epsilon,
            noisy.delta,
            {"template": self.name, **extra},
            cut=noisy.cut,
        )


def cut_counts(found: dict[Cell, int]) -> pipeline.CutCounts:
    """A template's exact cut figures (see :data:`CUT`); absent ones are zero."""
    return pipeline.CutCounts(
        int(found.get(("kept",), 0)), int(found.get(("cut",), 0)), int(found.get(("persons",), 0))
    )


def person_rows(
    labels: list[dict[str, Any]], r: dp.Release, privacy: PrivacyPolicy
) -> tuple[list[dict[str, Any]], int]:
    """One row per cell (its labels and its noisy persons); cells under the minimum withheld."""
    rows, suppressed = [], 0
    for label, value in zip(labels, r.values, strict=True):
        if value < privacy.min_noisy_persons:
            suppressed += 1
            continue
        rows.append({**label, "persons": count(value, r.error95)})
    return rows, suppressed


def cells_of(cursor: Any, query: exp.Query, keys: int) -> dict[Cell, int]:
    """Run a ``SELECT key1, …, keyN, count`` and index its counts by key tuple.

    ``query`` is a statement tree (:func:`cleanroom.sql.statement`), values
    and all: the backend writes it in its dialect, parsing nothing.
    """
    return {tuple(r[:keys]): int(r[keys]) for r in cursor.execute(query).fetchall()}
