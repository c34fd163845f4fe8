"""Bill one month: care days become claim lines."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.billing import billing_inputs, compute_claims, write_claims


@flow(name="bill-month", flow_run_name="bill {jurisdiction} {period}")
def bill_month(jurisdiction: str, period: str) -> dict[str, Any]:
    inputs = billing_inputs(jurisdiction, period)
    claims = compute_claims(inputs, jurisdiction, period)
    written = write_claims(claims, jurisdiction, period)
    return {
        "claim_lines": claims.height,
        "written": written,
        "days_paid": int(claims["days_paid"].sum()),
        "days_excluded": int(claims["days_excluded"].sum()),
        "payable_fen": int(claims["payable_fen"].sum()),
    }
