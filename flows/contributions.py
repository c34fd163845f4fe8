"""Contribution dues for one period, by person and payer."""

from __future__ import annotations

from typing import Any

import polars as pl
from prefect import flow

from tasks.contributions import compute_dues, insured_persons, write_dues


@flow(name="contributions", flow_run_name="dues {jurisdiction} {period}")
def contributions(jurisdiction: str, period: str) -> dict[str, Any]:
    persons = insured_persons(jurisdiction)
    dues = compute_dues(persons, jurisdiction, period)
    written = write_dues(dues, jurisdiction, period)
    by_payer = {str(k): int(v) for k, v in dues.group_by("payer").agg(pl.col("amount_fen").sum()).iter_rows()}
    return {"persons": dues["person_id"].n_unique(), "rows": written, "by_payer_fen": by_payer}
