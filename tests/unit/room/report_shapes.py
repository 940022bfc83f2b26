"""Hand-built released results in the shape of every template (for rendering tests)."""

from __future__ import annotations

from typing import Any

BRANDS = ["filimo", "ofogh", "okala", "ozone", "tapsi"]


def count(value: int, error: float = 29.96) -> dict[str, Any]:
    return {"value": value, "error95": error}


def ratio(value: float, low: float, high: float) -> dict[str, Any]:
    return {
        "value": value,
        "low": low,
        "high": high,
        "error95": round(max(value - low, high - value), 4),
    }


def released(columns: list[str], rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "query_id": "q" + str(abs(hash(tuple(columns))) % 10_000),
        "columns": columns,
        "rows": rows,
        "suppressed_groups": 2,
        "epsilon": "1/2",
        "epsilon_float": 0.5,
        "delta": 0.0,
        "mechanism": "laplace",
        "cached": False,
        "policy_version": 1,
        "generation": 1,
        **extra,
    }


def overlap() -> dict[str, Any]:
    combos = ["okala", "ofogh", "okala+ofogh", "okala+tapsi", "ofogh+okala+tapsi", "tapsi"]
    rows = [{"combination": c, "persons": count(900 - 120 * i)} for i, c in enumerate(combos)]
    pairwise = [
        {"pair": "ofogh+okala", "both": count(700, 42.4), "rate": 0.41},
        {"pair": "okala+tapsi", "both": count(400, 42.4), "rate": 0.33},
    ]
    return released(["combination", "persons"], rows, pairwise=pairwise)


def transitions() -> dict[str, Any]:
    rows = [
        {"from": a, "to": b, "persons": count(50 + 37 * i + 11 * j)}
        for i, a in enumerate(BRANDS[:4])
        for j, b in enumerate(BRANDS[:4])
        if a != b
    ]
    return released(["from", "to", "persons"], rows)


def funnel() -> dict[str, Any]:
    steps = ["okala", "ofogh", "tapsi"]
    rows = [
        {
            "step": i + 1,
            "label": s,
            "persons": count(1000 // (i + 1)),
            "conversion": ratio(round(1 / (i + 1), 4), 0.3, 0.7) if i else None,
        }
        for i, s in enumerate(steps)
    ]
    return released(["step", "label", "persons", "conversion"], rows, window_days=30)


def time_to_cross() -> dict[str, Any]:
    bins = ["0-1", "2-7", "8-14", "15-30", "31-60", "61+"]
    rows = [{"bin": b, "persons": count(300 - 40 * i)} for i, b in enumerate(bins)]
    return released(["bin", "persons"], rows)


def retention() -> dict[str, Any]:
    rows = []
    for brand in ("okala", "ofogh"):
        for c, cohort in enumerate(["2026-01", "2026-02", "2026-03"]):
            rows.append(  # month 0: the cohort itself, no share
                {"cohort": cohort, "brand": brand, "month": 0, "persons": count(250), "share": None}
            )
            for month in range(1, 4 - c):
                share = round(0.6 - 0.1 * month, 2)
                rows.append(
                    {
                        "cohort": cohort,
                        "brand": brand,
                        "month": month,
                        "persons": count(200 - 30 * month),
                        "share": ratio(share, share - 0.05, share + 0.05),
                    }
                )
    return released(["cohort", "brand", "month", "persons", "share"], rows)


def segments() -> dict[str, Any]:
    names = ["new", "active", "loyal", "at_risk", "lapsed"]
    rows = [
        {"brand": b, "segment": s, "persons": count(100 + 25 * i + 7 * j)}
        for i, b in enumerate(BRANDS[:3])
        for j, s in enumerate(names)
    ]
    return released(["brand", "segment", "persons"], rows)


def lift() -> dict[str, Any]:
    rows = [
        {
            "arm": "treatment",
            "persons": count(1200),
            "converted": count(420),
            "rate": ratio(0.35, 0.32, 0.38),
            "spend_per_person": ratio(182000.0, 170000.0, 195000.0),
        },
        {
            "arm": "control",
            "persons": count(1180),
            "converted": count(330),
            "rate": ratio(0.28, 0.25, 0.31),
            "spend_per_person": ratio(150000.0, 139000.0, 161000.0),
        },
    ]
    effect = {"difference": ratio(0.07, 0.03, 0.11), "relative": ratio(0.25, 0.1, 0.41), "x": None}
    return released(["arm", "persons", "converted", "rate", "spend_per_person"], rows, lift=effect)


def app_to_store() -> dict[str, Any]:
    rows = [
        {"customers": "new", "persons": count(900), "share": None},
        {"customers": "after_origin", "persons": count(240), "share": ratio(0.27, 0.22, 0.32)},
    ]
    return released(["customers", "persons", "share"], rows, window_days=14)


def unknown() -> dict[str, Any]:
    rows = [{"city": c, "orders": count(500 - 50 * i)} for i, c in enumerate(["Tehran", "Qom"])]
    return released(["city", "orders"], rows, extra_table=[{"k": "a", "v": count(3)}])


SHAPES = {
    "overlap": overlap,
    "transitions": transitions,
    "funnel": funnel,
    "time_to_cross": time_to_cross,
    "retention": retention,
    "segments": segments,
    "lift": lift,
    "app_to_store": app_to_store,
    "city_counts": unknown,
}
