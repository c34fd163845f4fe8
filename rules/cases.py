"""Worked cases: YAML files of inputs and expected outputs, each named after the clause it works through.

A case lists only what matters to it; everything else takes the defaults below, so a case reads like the
clause. `run_case` builds the frames, runs the pack's formula on them and returns the rows it produced.

Case keys: `name` (clause first), `formula` (contributions_due | eligibility | bill | assessment_fees), `period`
(bill, contributions_due; `YYYY` for a yearly pack's dues), `date` (assessment_fees), `input` (frames by
name, see `rules.inputs.SCHEMAS`; care rows may give `dates: A..B` for a run of days, contribution rows
`periods: A..B` for a run of months or years), and either `output`
(rows; each expected row must match one produced row on the keys it gives, and the counts must agree) or
`error` (a regular expression the RulesError must match). `overrides` (optional) maps parameter names to
values supplied by an operator for the case; `pack.valid_from` and `pack.valid_to` among them set the pack's dates of
effect, as an operator's override file does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from rules.engine import (
    DATES_OF_EFFECT,
    PACKS_DIR,
    VALID_FROM,
    DatedValue,
    Pack,
    Parameter,
    load_pack,
    pack_with,
    period_start,
)
from rules.formulas import resolve
from rules.inputs import SCHEMAS

DEFAULTS: dict[str, dict[str, Any]] = {
    "persons": {
        "insurance_type": "employee",
        "contribution_base_fen": 500000,
        "birth_date": "1950-01-01",
        "death_date": None,
        "work_injury_care_allowance": False,
        "student": False,
        "medical_premium_fully_subsidised": False,
        "retired_cadre": False,
        "disabled_veteran_grade": None,
        "area": "",
    },
    "providers": {"kind": "institution", "status": "active", "contract_start": "2019-01-01", "contract_end": None},
    "care": {"item_code": "", "amount_fen": 0},
    "entitlements": {"end_date": None},
    "stays": {"kind": "inpatient"},
    "contributions": {"paid_on": None},
    "assessments": {"person_id": "P1", "sequence": 1, "requested_by": "applicant"},
    "apps": {
        "person_id": "P1",
        "received_on": "2026-02-01",
        "disabled_since": "2025-01-01",
        "care_mode": "institutional",
        "published_on": "2026-02-20",
        "insurance_type": "employee",
        "birth_date": "1950-01-01",
        "student": False,
        "retired_cadre": False,
        "disabled_veteran_grade": None,
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


def _expand_periods(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A contribution row with `periods: 2027-01..2028-12` (months) or `2027..2030` (years): one row per period,
    each with the same amounts and payment date."""
    if "periods" not in row:
        return [row]
    lo, hi = str(row["periods"]).split("..")
    base = {k: v for k, v in row.items() if k != "periods"}
    if len(lo) == 4:
        return [{**base, "period": str(y)} for y in range(int(lo), int(hi) + 1)]
    first, last = (int(x[:4]) * 12 + int(x[5:7]) - 1 for x in (lo, hi))
    return [{**base, "period": f"{i // 12}-{i % 12 + 1:02d}"} for i in range(first, last + 1)]


def _coerce(value: Any, dtype: Any) -> Any:
    if value is not None and dtype == pl.Date and not isinstance(value, dt.date):
        return dt.date.fromisoformat(str(value))
    if value is not None and dtype == pl.Utf8:
        return str(value)
    return value


def frame(name: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    schema = SCHEMAS[name]
    full = []
    for row in rows:
        expand = {"care": _expand_dates, "contributions": _expand_periods}.get(name)
        for r in expand(row) if expand else [row]:
            unknown = set(r) - set(schema)
            if unknown:
                raise ValueError(f"{name} has no column(s) {', '.join(sorted(unknown))}")
            merged = {**DEFAULTS.get(name, {}), **r}
            full.append({c: _coerce(merged.get(c), t) for c, t in schema.items()})
    return pl.DataFrame(full, schema=schema, orient="row") if full else pl.DataFrame(schema=schema)


def build_inputs(case: dict[str, Any]) -> dict[str, pl.DataFrame]:
    """Every frame of the contract, from the case's rows and the defaults; persons and providers named in
    care rows exist with default attributes unless the case gives them."""
    given = case.get("input", {})
    rows = {name: list(given.get(name, [])) for name in SCHEMAS}
    care = [r for row in rows["care"] for r in _expand_dates(row)]
    for name, col in (("persons", "person_id"), ("providers", "provider_id")):
        known = {r[col] for r in rows[name]}
        for r in care:
            if r[col] not in known:
                known.add(r[col])
                rows[name].append({col: r[col]})
    return {name: frame(name, rows[name]) for name in SCHEMAS}


CASE_REFERENCE = "worked case: value supplied by the operator"


def _with_overrides(pack_id: str, overrides: dict[str, Any]) -> Pack:
    """The pack with the case's operator values: a date of effect as an override file sets it (the pack's own values
    are then in force from it), every other value in force from the date of effect on, in place of the pack's."""
    start = overrides.get(VALID_FROM) or load_pack(pack_id).valid_from
    dates = {
        name: {"values": {start: {"value": value, "reference": CASE_REFERENCE, "source": "operator"}}}
        for name, value in overrides.items()
        if name in DATES_OF_EFFECT
    }
    pack = pack_with(pack_id, dates, "case") if dates else load_pack(pack_id)
    params = dict(pack.parameters)
    for name, value in overrides.items():
        if name in DATES_OF_EFFECT:
            continue
        p = pack.param(name)
        entry = DatedValue(pack.valid_from, value, CASE_REFERENCE, "operator")
        params[name] = Parameter(name, p.description, p.unit, (entry,), p.set_by)
    return dataclasses.replace(pack, parameters=params, overrides=("case",))


def run_case(pack_id: str, case: dict[str, Any]) -> list[dict[str, Any]]:
    pack = _with_overrides(pack_id, case["overrides"]) if case.get("overrides") else load_pack(pack_id)
    inputs = build_inputs(case)
    name = case["formula"]
    if name == "bill":
        period = str(case["period"])
        out = resolve(pack, name, dt.date.fromisoformat(period + "-01"))(inputs, pack, period)
    elif name == "eligibility":
        on = min(inputs["apps"]["received_on"].to_list())
        out = resolve(pack, name, on)(inputs, pack)
    elif name == "contributions_due":
        period = str(case["period"])
        long = resolve(pack, name, period_start(period, pack))(inputs["persons"], pack, period)
        return [
            {
                "person_id": pid,
                "dues": {r["payer"]: r["amount_fen"] for r in g.to_dicts()},
                "total_fen": int(g["amount_fen"].sum()),
            }
            for (pid,), g in long.sort("person_id", "payer").group_by("person_id", maintain_order=True)
        ]
    elif name == "assessment_fees":
        on = dt.date.fromisoformat(str(case["date"]))
        out = resolve(pack, name, on)(inputs["assessments"], pack, on)
    else:
        raise ValueError(f"unknown formula {name}")
    rows: list[dict[str, Any]] = out.to_dicts()
    for r in rows:
        if "exclusions" in r:
            r["exclusions"] = {e["reason"]: e["days"] for e in r["exclusions"]}
        if "excluded_ranges" in r:
            r["excluded_ranges"] = _plain(r["excluded_ranges"])
    return rows


def load_cases(pack_id: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for f in sorted((PACKS_DIR / pack_id / "tests").glob("*.yaml")):
        for case in yaml.safe_load(f.read_text(encoding="utf-8")) or []:
            out.append((f"{pack_id}/{f.stem}: {case['name']}", case))
    return out


def _plain(value: Any) -> Any:
    """Dates as YYYY-MM-DD, in lists and mappings too (a case's excluded ranges)."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def matches(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    return all(_plain(actual.get(k)) == _plain(v) for k, v in expected.items())


def case_files() -> list[Path]:
    return sorted(PACKS_DIR.glob("*/tests/*.yaml"))
