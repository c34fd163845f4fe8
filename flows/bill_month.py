"""Bill one month: the pooling area's persons in parts, each part read, computed and written by one task."""

from __future__ import annotations

import os
import time
from typing import Any

from prefect import flow, get_run_logger, unmapped

from flows.naming import last_month, run_name
from flows.runners import billing_runner
from tasks.billing import bill_part, plan_parts
from tasks.reports import publish_billing_report

PART_PERSONS_ENV = "LTC_BILLING_PART_PERSONS"
DEFAULT_PART_PERSONS = 100_000


def persons_per_part() -> int:
    return int(os.environ.get(PART_PERSONS_ENV) or DEFAULT_PART_PERSONS)


def _covered(intervals: list[tuple[float, float]]) -> float:
    """Seconds during which at least one of the intervals was running (tasks in parallel count once)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


@flow(name="bill-month", flow_run_name=run_name("bill {jurisdiction} {period}"), task_runner=billing_runner())
def bill_month(jurisdiction: str, period: str | None = None, part_persons: int | None = None) -> dict[str, Any]:
    """`period` (YYYY-MM) defaults to last month, as a scheduled run wants. `part_persons` (default
    `LTC_BILLING_PART_PERSONS`, else 100,000): persons per part. Parts run on the
    flow's task runner: threads on this machine, or the Dask cluster at `LTC_DASK_ADDRESS`."""
    period = period or last_month()
    t = time.time()
    parts = plan_parts(jurisdiction, period, part_persons or persons_per_part())
    planned = (t, time.time())
    done = [f.result() for f in bill_part.map(unmapped(jurisdiction), unmapped(period), parts, since=unmapped(t))]
    elsewhere = sum(d["billed_by_another_run"] for d in done)
    if elsewhere:
        get_run_logger().warning(
            "%s of %s parts were billed by another run of this month at the same time", elsewhere, len(done)
        )
    totals = {k: sum(d[k] for d in done) for k in ("claim_lines", "written", "care_days", "days_paid")}
    totals |= {k: sum(d[k] for d in done) for k in ("days_excluded", "payable_fen")}
    flags = {rule: sum(d["fraud_flags"][rule] for d in done) for rule in done[0]["fraud_flags"]} if done else {}
    for rule, n in flags.items():
        if n:
            get_run_logger().warning("%s care-day records flagged %s (table fraud_flag)", n, rule)
    report = publish_billing_report(jurisdiction, period)
    intervals = [planned, *(d["interval"] for d in done), report["interval"]]
    return totals | {
        "report": report["key"],
        "fraud_flags": flags,
        "parts": len(done),
        "parts_billed_by_another_run": elsewhere,
        "workers": sorted({d["worker"] for d in done}),
        "task_wall_seconds": round(_covered(intervals), 3),
        "task_seconds": {
            k: round(sum(d["seconds"][k] for d in done), 3) for k in ("read", "compute", "checks", "write")
        },
    }
