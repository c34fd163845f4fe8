"""Bill one month: care days become claim lines, computed in parts of whole persons, written in bulk."""

from __future__ import annotations

import os
from typing import Any

from prefect import flow, unmapped

from tasks.billing import billing_inputs, combine_claims, compute_claims, partition_inputs, write_claims

SHARDS_ENV = "LTC_BILLING_SHARDS"


@flow(name="bill-month", flow_run_name="bill {jurisdiction} {period}")
def bill_month(jurisdiction: str, period: str, shards: int | None = None) -> dict[str, Any]:
    """`shards` (default `LTC_BILLING_SHARDS`, else 1): parts the month is billed in, one task each."""
    inputs = billing_inputs(jurisdiction, period)
    parts = partition_inputs(inputs, shards or int(os.environ.get(SHARDS_ENV, "1")))
    computed = compute_claims.map(parts, unmapped(jurisdiction), unmapped(period))
    claims = combine_claims([f.result() for f in computed])
    written = write_claims(claims, jurisdiction, period)
    return {
        "claim_lines": claims.height,
        "written": written,
        "days_paid": int(claims["days_paid"].sum()),
        "days_excluded": int(claims["days_excluded"].sum()),
        "payable_fen": int(claims["payable_fen"].sum()),
    }
