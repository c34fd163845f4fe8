"""Assessment scheduling that an agency can work from.

Each waiting application gets the earliest Chinese working day, from the pack's first-slot offset up to its
deadline, on which an agency of its area (under contract that day, with no tie to the applicant's chosen care
provider) has a free slot and enough assessors free at that time (none tied to the provider, none who assessed a
result now under objection). Load goes to the agency with the most free slots that day. The plan is stable: the
same inputs give the same schedule. The record's unique keys (agency, day, slot) and (assessor, day, time) make
double-booking impossible, whatever runs at once. An application that cannot be placed in time is flagged with
the reason and tried again on the next run, never dropped.
"""

from __future__ import annotations

import csv
import datetime as dt
from typing import Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import and_, func, select, update

from ltc.settings import get_settings
from rules.engine import Pack, load_pack
from storage import models as m
from storage.db import session_scope
from tasks.calendar import add_working_days, is_working_day
from tasks.notices import notify
from tasks.records import frame
from tasks.retrying import transient_only

DAY_START_MINUTES = 9 * 60  # first visit of a day at 09:00
VISIT_MINUTES = 90  # one visit, travel included
WHAT_TO_PREPARE = [
    "申请人有效身份证件",
    "近6个月内的病历、诊断证明等医疗资料",
    "申请人须在家或在所住机构等候评估人员上门",
]


def links(text: str | None) -> set[str]:
    """A `;`-separated list of ids (providers an agency or assessor is tied to; assessors of a visit)."""
    return {x.strip() for x in (text or "").split(";") if x.strip()}


def time_of(time_index: int) -> str:
    minutes = DAY_START_MINUTES + VISIT_MINUTES * time_index
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=transient_only)
def waiting_applications(jurisdiction: str) -> pl.DataFrame:
    """Applications that need a visit, oldest request first, with the assessors they must not get again."""
    with session_scope() as s:
        app = m.Application
        stmt = (
            select(
                app.application_id,
                app.provider_id,
                m.Person.area,
                func.coalesce(app.visit_requested_on, app.received_on),
                app.visit_reason,
            )
            .join(m.Person, m.Person.person_id == app.person_id)
            .where(app.status == "received", m.Person.jurisdiction == jurisdiction)
        )
        apps = frame(
            s,
            stmt,
            {
                "application_id": pl.Utf8,
                "provider_id": pl.Utf8,
                "area": pl.Utf8,
                "requested_on": pl.Date,
                "visit_reason": pl.Utf8,
            },
        ).sort("requested_on", "application_id")
        previous = frame(
            s,
            select(m.Assessment.application_id, m.Assessment.sequence, m.Assessment.assessor_ids).where(
                m.Assessment.application_id.in_(apps["application_id"].to_list())
            ),
            {"application_id": pl.Utf8, "sequence": pl.Int64, "assessor_ids": pl.Utf8},
        )
    history = previous.group_by("application_id").agg(
        next_sequence=(pl.col("sequence").max() + 1).cast(pl.Int64),
        assessed_by=pl.col("assessor_ids").str.join(";"),
    )
    return (
        apps.join(history, on="application_id", how="left")
        .with_columns(
            pl.col("next_sequence").fill_null(1),
            exclude=pl.when(pl.col("visit_reason").is_in(["objection", "reassessment"]))
            .then(pl.col("assessed_by"))
            .otherwise(pl.lit("")),
        )
        .drop("assessed_by")
    )


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=transient_only)
def scheduling_resources(jurisdiction: str) -> dict[str, pl.DataFrame]:
    """Agencies, assessors and what is already booked."""
    with session_scope() as s:
        ag = m.Agency
        return {
            "agencies": frame(
                s,
                select(
                    ag.agency_id, ag.area, ag.capacity_per_day, ag.contract_start, ag.contract_end, ag.linked_providers
                )
                .where(ag.jurisdiction == jurisdiction)
                .order_by(ag.agency_id),
                {
                    "agency_id": pl.Utf8,
                    "area": pl.Utf8,
                    "capacity_per_day": pl.Int64,
                    "contract_start": pl.Date,
                    "contract_end": pl.Date,
                    "linked_providers": pl.Utf8,
                },
            ),
            "assessors": frame(
                s,
                select(m.Assessor.assessor_id, m.Assessor.agency_id, m.Assessor.linked_providers)
                .join(ag, ag.agency_id == m.Assessor.agency_id)
                .where(ag.jurisdiction == jurisdiction, m.Assessor.active.is_(True))
                .order_by(m.Assessor.assessor_id),
                {"assessor_id": pl.Utf8, "agency_id": pl.Utf8, "linked_providers": pl.Utf8},
            ),
            "slots": frame(
                s,
                select(m.SlotBooking.agency_id, m.SlotBooking.day, m.SlotBooking.slot_no),
                {"agency_id": pl.Utf8, "day": pl.Date, "slot_no": pl.Int64},
            ),
            "assessor_slots": frame(
                s,
                select(m.AssessorBooking.assessor_id, m.AssessorBooking.day, m.AssessorBooking.time_index),
                {"assessor_id": pl.Utf8, "day": pl.Date, "time_index": pl.Int64},
            ),
        }


class _Book:
    """What is taken so far while planning: the record's bookings plus the plan's own."""

    def __init__(self, resources: dict[str, pl.DataFrame]) -> None:
        self.slots: set[tuple[str, dt.date, int]] = set(resources["slots"].iter_rows())
        self.assessor_slots: set[tuple[str, dt.date, int]] = set(resources["assessor_slots"].iter_rows())
        self.load: dict[tuple[str, dt.date], int] = {}
        for assessor, day, _ in self.assessor_slots:
            self.load[(assessor, day)] = self.load.get((assessor, day), 0) + 1


def _place(
    app: dict[str, Any],
    day: dt.date,
    agencies: list[dict[str, Any]],
    staff: dict[str, list[dict[str, Any]]],
    book: _Book,
    per_visit: int,
) -> dict[str, Any] | None:
    provider = app["provider_id"] or ""
    excluded = links(app["exclude"])
    options = []
    for a in agencies:
        if a["contract_start"] and day < a["contract_start"]:
            continue
        if a["contract_end"] and day > a["contract_end"]:
            continue
        if provider in links(a["linked_providers"]):
            continue
        free = [n for n in range(1, a["capacity_per_day"] + 1) if (a["agency_id"], day, n) not in book.slots]
        if free:
            options.append((-len(free), a["agency_id"], a, free))
    for _, _, a, free in sorted(options, key=lambda o: (o[0], o[1])):
        eligible = [
            x["assessor_id"]
            for x in staff.get(a["agency_id"], [])
            if provider not in links(x["linked_providers"]) and x["assessor_id"] not in excluded
        ]
        teams = max(len(staff.get(a["agency_id"], [])) // per_visit, 1)
        for slot_no in free:
            time_index = (slot_no - 1) // teams
            ready = [x for x in eligible if (x, day, time_index) not in book.assessor_slots]
            if len(ready) < per_visit:
                continue
            team = sorted(ready, key=lambda x: (book.load.get((x, day), 0), x))[:per_visit]
            book.slots.add((a["agency_id"], day, slot_no))
            for x in team:
                book.assessor_slots.add((x, day, time_index))
                book.load[(x, day)] = book.load.get((x, day), 0) + 1
            return {
                "agency_id": a["agency_id"],
                "day": day,
                "slot_no": slot_no,
                "time_index": time_index,
                "assessor_ids": ";".join(sorted(team)),
            }
    return None


@task(cache_policy=NO_CACHE)
def plan_slots(apps: pl.DataFrame, resources: dict[str, pl.DataFrame], jurisdiction: str) -> pl.DataFrame:
    """The schedule for the waiting applications, in order of request, each on its earliest possible slot."""
    pack = load_pack(jurisdiction)
    book = _Book(resources)
    by_area: dict[str, list[dict[str, Any]]] = {}
    for a in resources["agencies"].iter_rows(named=True):
        by_area.setdefault(a["area"], []).append(a)
    staff: dict[str, list[dict[str, Any]]] = {}
    for x in resources["assessors"].iter_rows(named=True):
        staff.setdefault(x["agency_id"], []).append(x)
    out = []
    for app in apps.iter_rows(named=True):
        asked = app["requested_on"]
        per_visit, first, deadline = _window(pack, asked)
        placed, day = None, first
        while day <= deadline and placed is None:
            if is_working_day(day):
                placed = _place(app, day, by_area.get(app["area"], []), staff, book, per_visit)
            day += dt.timedelta(days=1)
        problem = None
        if placed is None:
            problem = (
                f"no agency of area {app['area']} had a free slot with {per_visit} assessors free of ties to "
                f"provider {app['provider_id'] or '-'} by the deadline {deadline.isoformat()}"
            )
        out.append(
            {
                "application_id": app["application_id"],
                "sequence": app["next_sequence"],
                "visit_reason": app["visit_reason"],
                "deadline": deadline,
                **(
                    placed
                    or {"agency_id": None, "day": None, "slot_no": None, "time_index": None, "assessor_ids": None}
                ),
                "problem": problem,
            }
        )
    return pl.DataFrame(
        out,
        schema={
            "application_id": pl.Utf8,
            "sequence": pl.Int64,
            "visit_reason": pl.Utf8,
            "deadline": pl.Date,
            "agency_id": pl.Utf8,
            "day": pl.Date,
            "slot_no": pl.Int64,
            "time_index": pl.Int64,
            "assessor_ids": pl.Utf8,
            "problem": pl.Utf8,
        },
    )


def _window(pack: Pack, asked: dt.date) -> tuple[int, dt.date, dt.date]:
    """Assessors per visit, the first day a visit may be set and the deadline, by the pack on the request day."""
    per_visit = int(pack.param("assessment.assessors_per_visit").at(asked))
    offset = int(pack.param("assessment.first_slot_after_working_days").at(asked))
    deadline = add_working_days(asked, int(pack.param("assessment.deadline_working_days").at(asked)))
    return per_visit, add_working_days(asked, offset), deadline


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=transient_only)
def book_slots(plan: pl.DataFrame) -> dict[str, int]:
    """Book each planned visit with its slot and assessors, and write its notices, in one transaction per visit;
    flag what could not be placed."""
    booked = flagged = 0
    for r in plan.iter_rows(named=True):
        with session_scope() as s:
            app = s.get(m.Application, r["application_id"])
            if app is None or app.status != "received":
                continue
            if r["agency_id"] is None:
                app.problem = r["problem"]
                flagged += 1
                continue
            visit = m.Assessment(
                application_id=app.application_id,
                sequence=r["sequence"],
                agency_id=r["agency_id"],
                scheduled_on=r["day"],
                slot_no=r["slot_no"],
                starts_at=time_of(r["time_index"]),
                assessor_ids=r["assessor_ids"],
                kind=r["visit_reason"],
                requested_by="bureau" if r["visit_reason"] == "periodic" else "applicant",
                status="scheduled",
            )
            s.add(visit)
            s.flush()
            s.add(m.SlotBooking(agency_id=r["agency_id"], day=r["day"], slot_no=r["slot_no"], assessment_id=visit.id))
            s.add_all(
                m.AssessorBooking(assessor_id=x, day=r["day"], time_index=r["time_index"], assessment_id=visit.id)
                for x in sorted(links(r["assessor_ids"]))
            )
            app.status, app.problem = "scheduled", None
            _notify_visit(s, app, visit)
            booked += 1
    return {"booked": booked, "flagged": flagged}


def _notify_visit(s: Any, app: m.Application, visit: m.Assessment) -> None:
    """The applicant is told of every visit; the agency of every visit that changes an earlier plan."""
    person = s.get(m.Person, app.person_id)
    agency = s.get(m.Agency, visit.agency_id)
    notify(
        s,
        person,
        kind="assessment_scheduled",
        dedupe_key=f"assessment_scheduled:{app.application_id}:{visit.sequence}",
        context={
            "person_name": person.name,
            "id_number": person.id_number,
            "application_id": app.application_id,
            "agency_name": agency.name,
            "scheduled_on": visit.scheduled_on,
            "what_to_prepare": WHAT_TO_PREPARE,
        },
    )
    if visit.kind != "initial":
        notify(
            s,
            agency,
            kind="agency_visit",
            dedupe_key=f"agency_visit:{app.application_id}:{visit.sequence}",
            context={
                "agency_name": agency.name,
                "application_id": app.application_id,
                "person_name": person.name,
                "id_number": person.id_number,
                "scheduled_on": visit.scheduled_on,
                "starts_at": visit.starts_at,
                "assessors": sorted(links(visit.assessor_ids)),
                "reason": visit.kind,
            },
        )


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=transient_only)
def write_agency_schedules(jurisdiction: str) -> list[str]:
    """Each agency's coming visits as a CSV and an iCalendar file it can import, rewritten from the record."""
    from icalendar import Calendar, Event

    folder = get_settings().home / "schedules"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with session_scope() as s:
        rows = s.execute(
            select(m.Assessment, m.Person.name, m.Person.area, m.Agency.name)
            .join(m.Application, m.Application.application_id == m.Assessment.application_id)
            .join(m.Person, m.Person.person_id == m.Application.person_id)
            .join(m.Agency, m.Agency.agency_id == m.Assessment.agency_id)
            .where(and_(m.Person.jurisdiction == jurisdiction, m.Assessment.status == "scheduled"))
            .order_by(m.Assessment.agency_id, m.Assessment.scheduled_on, m.Assessment.slot_no)
        ).all()
        by_agency: dict[str, list[Any]] = {}
        for row in rows:
            by_agency.setdefault(row[0].agency_id, []).append(row)
        for agency_id, visits in sorted(by_agency.items()):
            path = folder / f"{agency_id}.csv"
            with path.open("w", encoding="utf-8", newline="") as f:
                w = csv.writer(f)
                w.writerow(["date", "time", "slot", "application_id", "person", "area", "assessors", "reason"])
                for v, person, area, _ in visits:
                    w.writerow(
                        [v.scheduled_on, v.starts_at, v.slot_no, v.application_id, person, area, v.assessor_ids, v.kind]
                    )
            cal = Calendar()
            cal.add("prodid", "-//ltc-claims//assessment schedule//ZH")
            cal.add("version", "2.0")
            cal.add("x-wr-calname", f"{visits[0][3]} 失能评估排期")
            for v, person, area, _ in visits:
                hh, mm = (int(x) for x in (v.starts_at or "09:00").split(":"))
                start = dt.datetime.combine(v.scheduled_on, dt.time(hh, mm))
                ev = Event()
                ev.add("uid", f"{v.application_id}-{v.sequence}@ltc-claims")
                ev.add("dtstamp", dt.datetime.combine(v.scheduled_on, dt.time(0, 0)))
                ev.add("dtstart", start)
                ev.add("dtend", start + dt.timedelta(minutes=VISIT_MINUTES))
                ev.add("summary", f"失能评估 {v.application_id} {person}")
                ev.add("location", area)
                ev.add("description", f"评估人员: {v.assessor_ids}; 类型: {v.kind}")
                cal.add_component(ev)
            ics = folder / f"{agency_id}.ics"
            ics.write_bytes(cal.to_ical())
            written += [str(path), str(ics)]
    return written


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=transient_only)
def enqueue_reminders(jurisdiction: str, as_of: dt.date) -> int:
    """A reminder to each applicant whose visit is on the next working day after `as_of`."""
    day = add_working_days(as_of, 1)
    n = 0
    with session_scope() as s:
        visits = s.execute(
            select(m.Assessment, m.Person, m.Agency)
            .join(m.Application, m.Application.application_id == m.Assessment.application_id)
            .join(m.Person, m.Person.person_id == m.Application.person_id)
            .join(m.Agency, m.Agency.agency_id == m.Assessment.agency_id)
            .where(
                m.Person.jurisdiction == jurisdiction,
                m.Assessment.status == "scheduled",
                m.Assessment.scheduled_on == day,
            )
        ).all()
        for visit, person, agency in visits:
            notify(
                s,
                person,
                kind="assessment_reminder",
                dedupe_key=f"assessment_reminder:{visit.application_id}:{visit.sequence}",
                context={
                    "person_name": person.name,
                    "id_number": person.id_number,
                    "application_id": visit.application_id,
                    "agency_name": agency.name,
                    "scheduled_on": visit.scheduled_on,
                    "starts_at": visit.starts_at or "",
                    "what_to_prepare": WHAT_TO_PREPARE,
                },
            )
            n += 1
    return n


def release(s: Any, visit: m.Assessment, status: str) -> None:
    """Free a visit's slot and assessors (a cancellation or a no-show) and mark it."""
    s.execute(update(m.Assessment).where(m.Assessment.id == visit.id).values(status=status))
    for model in (m.SlotBooking, m.AssessorBooking):
        for b in s.scalars(select(model).where(model.assessment_id == visit.id)):
            s.delete(b)
