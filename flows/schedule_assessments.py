"""Schedule assessment visits for applications that need one, and give each agency its schedule."""

from __future__ import annotations

from typing import Any

import polars as pl
from prefect import flow, get_run_logger

from flows.naming import today
from tasks.calendar import is_working_day
from tasks.scheduling import (
    book_slots,
    plan_slots,
    scheduling_resources,
    waiting_applications,
    write_agency_schedules,
)


@flow(name="schedule-assessments", flow_run_name="schedule {jurisdiction}")
def schedule_assessments(jurisdiction: str, working_days_only: bool = False) -> dict[str, Any]:
    """With `working_days_only` (as scheduled daily) a run on a day off in China does nothing."""
    if working_days_only and not is_working_day(today()):
        return {"skipped": f"{today()} is not a working day"}
    apps = waiting_applications(jurisdiction)
    resources = scheduling_resources(jurisdiction)
    plan = plan_slots(apps, resources, jurisdiction)
    booked = book_slots(plan)
    files = write_agency_schedules(jurisdiction)
    for r in plan.filter(pl.col("problem").is_not_null()).iter_rows(named=True):
        get_run_logger().warning("application %s flagged: %s", r["application_id"], r["problem"])
    return {"waiting": apps.height, "scheduled": booked["booked"], "flagged": booked["flagged"], "files": files}
