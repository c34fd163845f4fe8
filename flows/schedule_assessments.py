"""Schedule assessment visits for applications that need one, and give each agency its schedule."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
from prefect import flow, get_run_logger

from flows.naming import today
from tasks.calendar import is_working_day, known_year
from tasks.scheduling import (
    book_slots,
    capacity_warnings,
    plan_slots,
    scheduling_resources,
    visits_outside_hours,
    waiting_applications,
    write_agency_schedules,
)

PLAN_ATTEMPTS = 3  # a plan whose slots another run took meanwhile is made again, at most this many times


@flow(name="schedule-assessments", flow_run_name="schedule {jurisdiction}")
def schedule_assessments(jurisdiction: str, working_days_only: bool = False) -> dict[str, Any]:
    """With `working_days_only` (as scheduled daily) a run on a day off in China does nothing."""
    if working_days_only and not is_working_day(today()):
        return {"skipped": f"{today()} is not a working day"}
    log = get_run_logger()
    waiting = scheduled = flagged = 0
    problems: dict[str, str] = {}
    warnings: list[str] = []
    guessed: set[int] = set()  # years whose working days are the fallback, Monday to Friday
    for attempt in range(PLAN_ATTEMPTS):
        apps = waiting_applications(jurisdiction)
        resources = scheduling_resources(jurisdiction)
        if attempt == 0:
            waiting = apps.height
            warnings = capacity_warnings(resources, jurisdiction, today())
            for w in warnings:
                log.warning("%s", w)
        plan = plan_slots(apps, resources, jurisdiction)
        booked = book_slots(plan)
        scheduled += booked["booked"]
        flagged = booked["flagged"]
        problems = {
            r["application_id"]: r["problem"]
            for r in plan.filter(pl.col("problem").is_not_null()).iter_rows(named=True)
        }
        for year in sorted({d.year for d in plan["day"].drop_nulls().to_list()} - guessed):
            if not known_year(dt.date(year, 1, 1)):
                guessed.add(year)
                log.warning("visits in %d are set on Monday to Friday: its holidays are not yet known", year)
        if not booked["conflicts"]:
            break
        log.warning("%d planned visit(s) were taken by another run meanwhile; planning again", booked["conflicts"])
    files = write_agency_schedules(jurisdiction)
    for application_id, problem in problems.items():
        log.warning("application %s flagged: %s", application_id, problem)
    outside = visits_outside_hours(jurisdiction)
    for v in outside:
        log.warning("%s", v)
    return {
        "waiting": waiting,
        "scheduled": scheduled,
        "flagged": flagged,
        "capacity": warnings,
        "outside_hours": outside,
        "calendar_assumed": sorted(guessed),
        "files": files,
    }
