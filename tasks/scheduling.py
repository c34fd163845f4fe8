"""Assessment scheduling: each accepted application gets the earliest working-day slot with an agency of its
area that has free capacity; load goes to the agency with the most room that day."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import func, select, update

from rules.engine import load_pack
from storage import models as m
from storage.db import session_scope
from tasks.calendar import add_working_days, is_working_day
from tasks.notices import notify
from tasks.records import frame

MAX_SEARCH_DAYS = 366
WHAT_TO_PREPARE = [
    "申请人有效身份证件",
    "近6个月内的病历、诊断证明等医疗资料",
    "申请人须在家或在所住机构等候评估人员上门",
]


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def waiting_applications(jurisdiction: str) -> pl.DataFrame:
    with session_scope() as s:
        stmt = (
            select(m.Application.application_id, m.Application.received_on, m.Person.area)
            .join(m.Person, m.Person.person_id == m.Application.person_id)
            .where(m.Application.status == "received", m.Person.jurisdiction == jurisdiction)
            .order_by(m.Application.received_on, m.Application.application_id)
        )
        return frame(s, stmt, {"application_id": pl.Utf8, "received_on": pl.Date, "area": pl.Utf8})


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def agency_bookings(jurisdiction: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    with session_scope() as s:
        agencies = frame(
            s,
            select(m.Agency.agency_id, m.Agency.area, m.Agency.capacity_per_day)
            .where(m.Agency.jurisdiction == jurisdiction)
            .order_by(m.Agency.agency_id),
            {"agency_id": pl.Utf8, "area": pl.Utf8, "capacity_per_day": pl.Int64},
        )
        booked = frame(
            s,
            select(m.Assessment.agency_id, m.Assessment.scheduled_on, func.count())
            .where(m.Assessment.status != "cancelled")
            .group_by(m.Assessment.agency_id, m.Assessment.scheduled_on),
            {"agency_id": pl.Utf8, "scheduled_on": pl.Date, "booked": pl.Int64},
        )
    return agencies, booked


@task(cache_policy=NO_CACHE)
def plan_slots(apps: pl.DataFrame, agencies: pl.DataFrame, booked: pl.DataFrame, jurisdiction: str) -> pl.DataFrame:
    """A stable plan: applications in order of receipt, each on the first working day with room."""
    pack = load_pack(jurisdiction)
    used: dict[tuple[str, dt.date], int] = {
        (r["agency_id"], r["scheduled_on"]): r["booked"] for r in booked.iter_rows(named=True)
    }
    by_area: dict[str, list[dict[str, Any]]] = {}
    for a in agencies.iter_rows(named=True):
        by_area.setdefault(a["area"], []).append(a)
    out = []
    for app in apps.iter_rows(named=True):
        offset = pack.param("assessment.first_slot_after_working_days").at(app["received_on"])
        day = add_working_days(app["received_on"], int(offset))
        placed = None
        for _ in range(MAX_SEARCH_DAYS):
            if is_working_day(day):
                room = [
                    (a["capacity_per_day"] - used.get((a["agency_id"], day), 0), a["agency_id"])
                    for a in by_area.get(app["area"], [])
                ]
                room = [r for r in room if r[0] > 0]
                if room:
                    best = min(room, key=lambda r: (-r[0], r[1]))
                    placed = (best[1], day)
                    break
            day += dt.timedelta(days=1)
        if placed:
            used[placed] = used.get(placed, 0) + 1
        out.append(
            {
                "application_id": app["application_id"],
                "agency_id": placed[0] if placed else None,
                "scheduled_on": placed[1] if placed else None,
                "problem": None if placed else f"no agency with free capacity in area {app['area']}",
            }
        )
    return pl.DataFrame(
        out,
        schema={"application_id": pl.Utf8, "agency_id": pl.Utf8, "scheduled_on": pl.Date, "problem": pl.Utf8},
    )


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def book_slots(plan: pl.DataFrame) -> int:
    """Book the planned slots and write each applicant's notice in the same transaction."""
    placed = plan.filter(pl.col("agency_id").is_not_null())
    n = 0
    with session_scope() as s:
        for r in placed.iter_rows(named=True):
            app = s.get(m.Application, r["application_id"])
            if app is None or app.status != "received":
                continue
            person = s.get(m.Person, app.person_id)
            agency = s.get(m.Agency, r["agency_id"])
            assert person is not None and agency is not None
            s.add(
                m.Assessment(
                    application_id=app.application_id,
                    sequence=1,
                    agency_id=agency.agency_id,
                    scheduled_on=r["scheduled_on"],
                    status="scheduled",
                )
            )
            s.execute(
                update(m.Application)
                .where(m.Application.application_id == app.application_id)
                .values(status="scheduled")
            )
            notify(
                s,
                person,
                kind="assessment_scheduled",
                dedupe_key=f"assessment_scheduled:{app.application_id}:1",
                context={
                    "person_name": person.name,
                    "id_number": person.id_number,
                    "application_id": app.application_id,
                    "agency_name": agency.name,
                    "scheduled_on": r["scheduled_on"],
                    "what_to_prepare": WHAT_TO_PREPARE,
                },
            )
            n += 1
    return n
