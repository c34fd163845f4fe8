"""Schedule assessment visits for accepted applications."""

from __future__ import annotations

from typing import Any

import polars as pl
from prefect import flow, get_run_logger

from tasks.scheduling import agency_bookings, book_slots, plan_slots, waiting_applications


@flow(name="schedule-assessments", flow_run_name="schedule {jurisdiction}")
def schedule_assessments(jurisdiction: str) -> dict[str, Any]:
    apps = waiting_applications(jurisdiction)
    agencies, booked = agency_bookings(jurisdiction)
    plan = plan_slots(apps, agencies, booked, jurisdiction)
    booked_now = book_slots(plan)
    problems = plan.filter(pl.col("problem").is_not_null())
    for r in problems.iter_rows(named=True):
        get_run_logger().warning("application %s not placed: %s", r["application_id"], r["problem"])
    return {"waiting": apps.height, "scheduled": booked_now, "unplaced": problems.height}
