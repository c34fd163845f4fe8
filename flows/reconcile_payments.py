"""Reconcile a period's payments: load the bank's return file, match it with the batches, post, perhaps close."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.intake import load
from tasks.reconcile import reconcile


@flow(name="reconcile-payments", flow_run_name="reconcile {jurisdiction} {period}")
def reconcile_payments(
    jurisdiction: str, period: str, bank_return: str | None = None, encoding: str = "utf-8"
) -> dict[str, Any]:
    loaded = load("bank_returns", bank_return, encoding) if bank_return else None
    result = reconcile(jurisdiction, period)
    for b in result["breaks"]:
        get_run_logger().warning("break %s %s: %s", b["kind"], b["batch_ref"], b["detail"])
    if loaded is not None:
        result["bank_return"] = {k: loaded[k] for k in ("received", "accepted", "quarantined")}
    return result
