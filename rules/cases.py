"""Worked cases: YAML files of inputs and expected outputs, each named after the clause it works through.

A case lists only what matters to it; everything else takes the defaults below, so a case reads like the
clause. `run_case` builds the frames, runs the pack's formula on them and returns the rows it produced.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from rules.engine import PACKS_DIR, load_pack
from rules.formulas import resolve
from rules.inputs import SCHEMAS

DEFAULTS: dict[str, dict[str, Any]] = {
    "persons": {
        "insurance_type": "employee",
        "contribution_base_fen": 500000,
        "work_injury_care_allowance": False,
        "death_date": None,
    },
    "providers": {"status": "active", "contract_start": "2024-01-01", "contract_end": None},
    "care": {"item_code": "", "amount_fen": 0},
    "entitlements": {"end_date": None},
    "apps": {
        "person_id": "P1",
        "received_on": "2026-02-01",
        "disabled_since": "2025-01-01",
        "published_on": "2026-02-20",
        "insurance_type": "employee",
        "work_injury_care_allowance": False,
        "death_date": None,
        "full_contribution_months": 24,
        "already_beneficiary": False,
    },
}


def _expand_dates(row: dict[str, Any]) -> list[dict[str, Any]]:
    if "dates" not in row:
        return [row]
    lo, hi = (dt.date.fromisoformat(x) for x in str(row["dates"]).split(".."))
    base = {k: v for k, v in row.items() if k != "dates"}
    return [{**base, "care_date": lo + dt.timedelta(days=i)} for i in range((hi - lo).days + 1)]


def _frame(name: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    schema = SCHEMAS[name]
    full = []
    for row in rows:
        for r in _expand_dates(row) if name == "care" else [row]:
            merged = {**DEFAULTS.get(name, {}), **r}
            full.append({c: _coerce(merged.get(c), t) for c, t in schema.items()})
    return pl.DataFrame(full, schema=schema, orient="row") if full else pl.DataFrame(schema=schema)


def _coerce(value: Any, dtype: Any) -> Any:
    if value is not None and dtype == pl.Date and not isinstance(value, dt.date):
        return dt.date.fromisoformat(str(value))
    return value


def build_inputs(case: dict[str, Any]) -> dict[str, pl.DataFrame]:
    given = case.get("input", {})
    frames = {name: _frame(name, given.get(name, [])) for name in given}
    if case["formula"] == "bill":
        care = frames["care"]
        people = care.select("person_id").unique().to_series().to_list()
        known = {r["person_id"] for r in given.get("persons", [])}
        extra = [{"person_id": p} for p in people if p not in known]
        frames["persons"] = _frame("persons", given.get("persons", []) + extra)
        provs = care.select("provider_id").unique().to_series().to_list()
        pknown = {r["provider_id"] for r in given.get("providers", [])}
        pextra = [{"provider_id": p} for p in provs if p not in pknown]
        frames["providers"] = _frame("providers", given.get("providers", []) + pextra)
        frames.setdefault("stays", _frame("stays", []))
        frames.setdefault("entitlements", _frame("entitlements", []))
    return frames


def run_case(pack_id: str, case: dict[str, Any]) -> list[dict[str, Any]]:
    pack = load_pack(pack_id)
    frames = build_inputs(case)
    name = case["formula"]
    if name == "bill":
        period = str(case["period"])
        first = dt.date.fromisoformat(period + "-01")
        fn = resolve(pack, name, first)
        out = fn(
            frames["care"],
            frames["entitlements"],
            frames["persons"],
            frames["stays"],
            frames["providers"],
            pack,
            period,
        )
    elif name == "eligibility":
        on = min(frames["apps"]["received_on"].to_list())
        out = resolve(pack, name, on)(frames["apps"], pack)
    elif name == "contributions_due":
        period = str(case["period"])
        fn = resolve(pack, name, dt.date.fromisoformat(period + "-01"))
        out = fn(frames["persons"], pack, period)
    else:
        raise ValueError(f"unknown formula {name}")
    rows: list[dict[str, Any]] = out.to_dicts()
    for r in rows:
        if "exclusions" in r:
            r["exclusions"] = {e["reason"]: e["days"] for e in r["exclusions"]}
    return rows


def load_cases(pack_id: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for f in sorted((PACKS_DIR / pack_id / "tests").glob("*.yaml")):
        for case in yaml.safe_load(f.read_text(encoding="utf-8")) or []:
            out.append((f"{pack_id}/{f.stem}: {case['name']}", case))
    return out


def matches(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    for k, v in expected.items():
        a = actual.get(k)
        if isinstance(a, dt.date):
            a = a.isoformat()
        if isinstance(v, dt.date):
            v = v.isoformat()
        if a != v:
            return False
    return True


def case_files() -> list[Path]:
    return sorted(PACKS_DIR.glob("*/tests/*.yaml"))
