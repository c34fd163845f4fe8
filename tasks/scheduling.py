"""Assessment scheduling that an agency can work from.

Each waiting application gets the earliest Chinese working day, from the pack's first-slot offset up to its
deadline, on which an agency of its area (under contract that day, with no tie to the applicant's chosen care
provider) has a free slot and enough assessors free at that time (none tied to the provider, none who assessed a
result now under objection). Load goes to the agency with the most free slots that day. A visit starts and ends
within the agency's working hours (`tasks.calendar.WorkingHours`: its own, or the stated defaults); a capacity
its assessors cannot make within them is cut to what they can, and the run names the agency. The plan is
stable: the same inputs give the same schedule.

A run's visits are booked in one transaction, with bulk statements, each with its notice. The record's unique
keys (agency, day, slot) and (assessor, day, time) make double-booking impossible, whatever runs at once; the
booking locks what it books first and reads the bookings again, so a plan that another run overtook books only
what is still free, and the rest waits for the next plan. An application that cannot be placed in time is
flagged with the reason and tried again on the next run, never dropped.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import functools
import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
from icalendar import Calendar, Timezone, vDatetime, vText
from icalendar.parser import Contentline
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import and_, bindparam, func, insert, or_, select, update

from common.settings import get_settings
from rules.engine import Pack, load_pack
from storage import models as m
from storage.db import session_scope
from tasks.calendar import WorkingHours, add_working_days, working_days
from tasks.notices import Outbox, notify
from tasks.records import frame
from tasks.retrying import RETRY_TRANSIENT

TIME_ZONE = "Asia/Shanghai"  # visit times are China's
# An operator setting: how long a visit that was cancelled, or not made, stays in its agency's calendar file
# (as cancelled, so that a calendar that imported it drops it) after the change.
CANCELLED_KEPT_DAYS = 30
WHAT_TO_PREPARE = [
    "申请人有效身份证件",
    "近6个月内的病历、诊断证明等医疗资料",
    "申请人须在家或在所住机构等候评估人员上门",
]


def links(text: str | None) -> set[str]:
    """A `;`-separated list of ids (providers an agency or assessor is tied to; assessors of a visit)."""
    return {x.strip() for x in (text or "").split(";") if x.strip()}


@task(cache_policy=NO_CACHE, **RETRY_TRANSIENT)
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


@task(cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def scheduling_resources(jurisdiction: str) -> dict[str, pl.DataFrame]:
    """Agencies, assessors and what is already booked."""
    with session_scope() as s:
        ag = m.Agency
        return {
            "agencies": frame(
                s,
                select(
                    ag.agency_id,
                    ag.area,
                    ag.capacity_per_day,
                    ag.contract_start,
                    ag.contract_end,
                    ag.linked_providers,
                    ag.day_starts_at,
                    ag.day_ends_at,
                    ag.visit_minutes,
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
                    "day_starts_at": pl.Utf8,
                    "day_ends_at": pl.Utf8,
                    "visit_minutes": pl.Int64,
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


@dataclass
class _Agency:
    """An agency as planning sees it: its contract, ties, hours and active assessors (with their ties)."""

    agency_id: str
    capacity: int
    contract_start: dt.date | None
    contract_end: dt.date | None
    links: frozenset[str]
    hours: WorkingHours
    staff: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    _limits: dict[int, int] = field(default_factory=dict)

    def teams(self, per_visit: int) -> int:
        """Visits it can make at the same time."""
        return max(len(self.staff) // per_visit, 1)

    def limit(self, per_visit: int) -> int:
        """Visits a day: its capacity, but never more than its teams can make within its working hours."""
        limit = self._limits.get(per_visit)
        if limit is None:
            limit = self._limits[per_visit] = min(self.capacity, self.teams(per_visit) * self.hours.times)
        return limit


def _agencies(resources: dict[str, pl.DataFrame]) -> dict[str, list[_Agency]]:
    """The agencies of each area, in order of id, with their assessors."""
    by_id = {
        a["agency_id"]: _Agency(
            a["agency_id"],
            a["capacity_per_day"],
            a["contract_start"],
            a["contract_end"],
            frozenset(links(a["linked_providers"])),
            WorkingHours.of(a),
        )
        for a in resources["agencies"].iter_rows(named=True)
    }
    for x in resources["assessors"].iter_rows(named=True):
        if x["agency_id"] in by_id:
            by_id[x["agency_id"]].staff.append((x["assessor_id"], frozenset(links(x["linked_providers"]))))
    by_area: dict[str, list[_Agency]] = {}
    for a in resources["agencies"].iter_rows(named=True):
        by_area.setdefault(a["area"], []).append(by_id[a["agency_id"]])
    return by_area


def capacity_warnings(resources: dict[str, pl.DataFrame], jurisdiction: str, on: dt.date) -> list[str]:
    """Agencies whose capacity per day does not fit in their working hours with the assessors they have: they
    are given no more visits than fit."""
    per_visit = int(load_pack(jurisdiction).param("assessment.assessors_per_visit").at(on))
    out = []
    for agencies in _agencies(resources).values():
        for a in agencies:
            if len(a.staff) < per_visit:
                out.append(f"agency {a.agency_id}: {len(a.staff)} active assessor(s), a visit needs {per_visit}")
            elif a.limit(per_visit) < a.capacity:
                out.append(
                    f"agency {a.agency_id}: capacity {a.capacity} a day does not fit between {a.hours} with "
                    f"{len(a.staff)} assessor(s) ({a.teams(per_visit)} team(s) of {per_visit}); "
                    f"it is given at most {a.limit(per_visit)} visits a day"
                )
    return out


class _Book:
    """What is taken so far while planning: the record's bookings plus the plan's own."""

    def __init__(self, resources: dict[str, pl.DataFrame]) -> None:
        self.slots: set[tuple[str, dt.date, int]] = set(resources["slots"].iter_rows())
        self.assessor_slots: set[tuple[str, dt.date, int]] = set(resources["assessor_slots"].iter_rows())
        self.load: dict[tuple[str, dt.date], int] = {}
        for assessor, day, _ in self.assessor_slots:
            self.load[(assessor, day)] = self.load.get((assessor, day), 0) + 1
        self._free: dict[tuple[str, dt.date], list[int]] = {}

    def free(self, a: _Agency, day: dt.date) -> list[int]:
        """The agency's free slot numbers of the day, in order (a list kept up to date as slots are taken)."""
        key = (a.agency_id, day)
        free = self._free.get(key)
        if free is None:
            free = self._free[key] = [n for n in range(1, a.capacity + 1) if (a.agency_id, day, n) not in self.slots]
        return free

    def take(self, a: _Agency, day: dt.date, slot_no: int, time_index: int, team: list[str]) -> None:
        self.slots.add((a.agency_id, day, slot_no))
        self.free(a, day).remove(slot_no)
        for x in team:
            self.assessor_slots.add((x, day, time_index))
            self.load[(x, day)] = self.load.get((x, day), 0) + 1


def _place(
    provider: str,
    excluded: set[str],
    day: dt.date,
    agencies: list[_Agency],
    book: _Book,
    per_visit: int,
) -> dict[str, Any] | None:
    options = []
    for a in agencies:
        if a.contract_start and day < a.contract_start:
            continue
        if a.contract_end and day > a.contract_end:
            continue
        if provider in a.links:
            continue
        free = book.free(a, day)
        usable = bisect.bisect_right(free, a.limit(per_visit)) if free else 0  # never beyond the working hours
        if usable:
            options.append((-usable, a.agency_id, a, free[:usable]))
    options.sort(key=lambda o: (o[0], o[1]))
    for _, _, a, free in options:
        eligible = [x for x, ties in a.staff if provider not in ties and x not in excluded]
        if len(eligible) < per_visit:
            continue
        teams = a.teams(per_visit)
        for slot_no in free:
            time_index = (slot_no - 1) // teams
            ready = [x for x in eligible if (x, day, time_index) not in book.assessor_slots]
            if len(ready) < per_visit:
                continue
            team = sorted(ready, key=lambda x: (book.load.get((x, day), 0), x))[:per_visit]
            book.take(a, day, slot_no, time_index, team)
            return {
                "agency_id": a.agency_id,
                "day": day,
                "slot_no": slot_no,
                "time_index": time_index,
                "starts_at": a.hours.start(time_index),
                "assessor_ids": ";".join(sorted(team)),
            }
    return None


def _full(day: dt.date, agencies: list[_Agency], book: _Book, per_visit: int) -> bool:
    """Whether no agency of the area has a slot left on the day (slots are only taken while planning, so a full
    day stays full)."""
    return all(
        not bisect.bisect_right(book.free(a, day), a.limit(per_visit))
        or (a.contract_start and day < a.contract_start)
        or (a.contract_end and day > a.contract_end)
        for a in agencies
    )


HOURS_COLUMNS = ("day_starts_at", "day_ends_at", "visit_minutes")

PLAN_SCHEMA = {
    "application_id": pl.Utf8,
    "sequence": pl.Int64,
    "visit_reason": pl.Utf8,
    "deadline": pl.Date,
    "agency_id": pl.Utf8,
    "day": pl.Date,
    "slot_no": pl.Int64,
    "time_index": pl.Int64,
    "starts_at": pl.Utf8,
    "assessor_ids": pl.Utf8,
    "problem": pl.Utf8,
}
UNPLACED = {
    "agency_id": None,
    "day": None,
    "slot_no": None,
    "time_index": None,
    "starts_at": None,
    "assessor_ids": None,
}


@task(cache_policy=NO_CACHE)
def plan_slots(apps: pl.DataFrame, resources: dict[str, pl.DataFrame], jurisdiction: str) -> pl.DataFrame:
    """The schedule for the waiting applications, in order of request, each on its earliest possible slot."""
    pack = load_pack(jurisdiction)
    book = _Book(resources)
    by_area = _agencies(resources)
    windows = {asked: _window(pack, asked) for asked in apps["requested_on"].unique().to_list()}
    days: list[dt.date] = []
    if windows:  # the working days of the whole run, from the calendar once
        days = working_days(min(w[1] for w in windows.values()), max(w[2] for w in windows.values()))
    ordinals = [d.toordinal() for d in days]
    full: set[tuple[str, dt.date, int]] = set()  # (area, day, assessors per visit) with no slot left
    out = []
    for app in apps.iter_rows(named=True):
        per_visit, first, deadline = windows[app["requested_on"]]
        provider, excluded = app["provider_id"] or "", links(app["exclude"])
        agencies = by_area.get(app["area"], [])
        placed = None
        start = bisect.bisect_left(ordinals, first.toordinal())
        stop = bisect.bisect_right(ordinals, deadline.toordinal())
        for day in days[start:stop]:
            if (app["area"], day, per_visit) in full:
                continue
            placed = _place(provider, excluded, day, agencies, book, per_visit)
            if placed is not None:
                break
            if _full(day, agencies, book, per_visit):
                full.add((app["area"], day, per_visit))
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
                **(placed or UNPLACED),
                "problem": problem,
            }
        )
    return pl.DataFrame(out, schema=PLAN_SCHEMA)


def _window(pack: Pack, asked: dt.date) -> tuple[int, dt.date, dt.date]:
    """Assessors per visit, the first day a visit may be set and the deadline, by the pack on the request day."""
    per_visit = int(pack.param("assessment.assessors_per_visit").at(asked))
    offset = int(pack.param("assessment.first_slot_after_working_days").at(asked))
    deadline = add_working_days(asked, int(pack.param("assessment.deadline_working_days").at(asked)))
    return per_visit, add_working_days(asked, offset), deadline


CHUNK = 5000  # keys per IN (...) list


def _chunks(keys: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(keys), CHUNK):
        yield keys[i : i + CHUNK]


@task(cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def book_slots(plan: pl.DataFrame) -> dict[str, int]:
    """Book the planned visits with their slots and assessors, write their notices and flag what could not be
    placed, all in one transaction, with bulk statements.

    The applications and agencies of the plan are locked first (on SQLite the transaction holds the write lock
    from its start; on PostgreSQL the rows are locked in key order), then the bookings are read again: a visit
    whose application is no longer waiting is skipped, and one whose slot or assessors another run took since
    the plan was made is not booked (`conflicts`) and waits for the next plan. The unique keys of slots and
    assessor bookings stay the last word."""
    counts = {"booked": 0, "flagged": 0, "conflicts": 0}
    rows = list(plan.iter_rows(named=True))
    if not rows:
        return counts
    app_ids = sorted({r["application_id"] for r in rows})
    agency_ids = sorted({r["agency_id"] for r in rows if r["agency_id"]})
    with session_scope() as s:
        app, ag = m.Application, m.Agency
        lock = s.get_bind().dialect.name == "postgresql"
        status: dict[str, str] = {}
        for keys in _chunks(app_ids):
            q = select(app.application_id, app.status).where(app.application_id.in_(keys)).order_by(app.application_id)
            status.update((a, st) for a, st in s.execute(q.with_for_update() if lock else q))
        if lock and agency_ids:
            s.execute(select(ag.agency_id).where(ag.agency_id.in_(agency_ids)).order_by(ag.agency_id).with_for_update())
        taken_slots, taken_times, sequences = _taken(s, rows, app_ids, agency_ids)
        visits, flags = [], []
        for r in rows:
            if status.get(r["application_id"]) != "received":
                continue
            if r["agency_id"] is None:
                flags.append({"a": r["application_id"], "p": r["problem"]})
                continue
            slot = (r["agency_id"], r["day"], r["slot_no"])
            times = [(x, r["day"], r["time_index"]) for x in sorted(links(r["assessor_ids"]))]
            if slot in taken_slots or (r["application_id"], r["sequence"]) in sequences or taken_times & set(times):
                counts["conflicts"] += 1
                continue
            taken_slots.add(slot)
            taken_times.update(times)
            sequences.add((r["application_id"], r["sequence"]))
            visits.append(r)
        conn = s.connection()
        if flags:
            conn.execute(
                update(app)
                .where(app.application_id == bindparam("a"), app.status == "received")
                .values(problem=bindparam("p")),
                flags,
            )
        if visits:
            _insert_visits(s, visits)
        counts["booked"], counts["flagged"] = len(visits), len(flags)
    return counts


def _taken(
    s: Any, rows: list[dict[str, Any]], app_ids: list[str], agency_ids: list[str]
) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """What the record holds now of the plan's agencies, assessors and applications, over the plan's days."""
    days = [r["day"] for r in rows if r["day"] is not None]
    slots: set[tuple[Any, ...]] = set()
    times: set[tuple[Any, ...]] = set()
    if days:
        first, last = min(days), max(days)
        sb, ab = m.SlotBooking, m.AssessorBooking
        for keys in _chunks(agency_ids):
            q = select(sb.agency_id, sb.day, sb.slot_no).where(sb.agency_id.in_(keys), sb.day.between(first, last))
            slots.update(tuple(x) for x in s.execute(q))
        assessors = sorted({x for r in rows for x in links(r["assessor_ids"])})
        for keys in _chunks(assessors):
            q = select(ab.assessor_id, ab.day, ab.time_index).where(
                ab.assessor_id.in_(keys), ab.day.between(first, last)
            )
            times.update(tuple(x) for x in s.execute(q))
    sequences: set[tuple[Any, ...]] = set()
    for keys in _chunks(app_ids):
        known = select(m.Assessment.application_id, m.Assessment.sequence).where(m.Assessment.application_id.in_(keys))
        sequences.update(tuple(x) for x in s.execute(known))
    return slots, times, sequences


def _insert_visits(s: Any, visits: list[dict[str, Any]]) -> None:
    """The visits, their slot and assessor bookings, the applications' new status and the notices, in bulk."""
    conn = s.connection()
    _insert(
        s,
        m.Assessment,
        [
            {
                "application_id": r["application_id"],
                "sequence": r["sequence"],
                "agency_id": r["agency_id"],
                "scheduled_on": r["day"],
                "slot_no": r["slot_no"],
                "starts_at": r["starts_at"],
                "assessor_ids": r["assessor_ids"],
                "kind": r["visit_reason"],
                "requested_by": "bureau" if r["visit_reason"] == "periodic" else "applicant",
                "status": "scheduled",
                "calendar_sequence": 0,
            }
            for r in visits
        ],
    )
    ids: dict[tuple[str, int], int] = {}
    persons: dict[str, m.Person] = {}
    a = m.Assessment
    for keys in _chunks([r["application_id"] for r in visits]):
        ids.update(
            ((x, q), i)
            for i, x, q in s.execute(select(a.id, a.application_id, a.sequence).where(a.application_id.in_(keys)))
        )
        persons.update(
            (x, p)
            for p, x in s.execute(
                select(m.Person, m.Application.application_id)
                .join(m.Application, m.Application.person_id == m.Person.person_id)
                .where(m.Application.application_id.in_(keys))
            )
        )
    _insert(
        s,
        m.SlotBooking,
        [
            {
                "agency_id": r["agency_id"],
                "day": r["day"],
                "slot_no": r["slot_no"],
                "assessment_id": ids[(r["application_id"], r["sequence"])],
            }
            for r in visits
        ],
    )
    _insert(
        s,
        m.AssessorBooking,
        [
            {
                "assessor_id": x,
                "day": r["day"],
                "time_index": r["time_index"],
                "assessment_id": ids[(r["application_id"], r["sequence"])],
            }
            for r in visits
            for x in sorted(links(r["assessor_ids"]))
        ],
    )
    app = m.Application
    for keys in _chunks([r["application_id"] for r in visits]):
        conn.execute(update(app).where(app.application_id.in_(keys)).values(status="scheduled", problem=None))
    agencies = {
        x.agency_id: x
        for x in s.scalars(select(m.Agency).where(m.Agency.agency_id.in_({r["agency_id"] for r in visits})))
    }
    outbox = Outbox(s)
    for r in visits:
        _notify_visit(outbox, persons[r["application_id"]], agencies[r["agency_id"]], r)
    outbox.flush()


def _insert(s: Any, model: type[m.Base], rows: list[dict[str, Any]]) -> None:
    """Plain inserts, in bulk: COPY on PostgreSQL, executemany on SQLite. A unique key already taken fails the
    statement and so the transaction."""
    if not rows:
        return
    conn = s.connection()
    if conn.dialect.name != "postgresql":
        conn.execute(insert(model), rows)
        return
    columns = list(rows[0])
    raw: Any = conn.connection.dbapi_connection
    names = ", ".join(f'"{c}"' for c in columns)
    with raw.cursor() as cur, cur.copy(f'COPY "{model.__tablename__}" ({names}) FROM STDIN') as copy:
        for r in rows:
            copy.write_row([r[c] for c in columns])


def _notify_visit(outbox: Outbox, person: m.Person, agency: m.Agency, visit: dict[str, Any]) -> None:
    """The applicant is told of every visit; the agency of every visit that changes an earlier plan."""
    app_id, sequence = visit["application_id"], visit["sequence"]
    outbox.notify(
        person,
        kind="assessment_scheduled",
        dedupe_key=f"assessment_scheduled:{app_id}:{sequence}",
        context={
            "person_name": person.name,
            "id_number": person.id_number,
            "application_id": app_id,
            "agency_name": agency.name,
            "scheduled_on": visit["day"],
            "what_to_prepare": WHAT_TO_PREPARE,
        },
    )
    if visit["visit_reason"] != "initial":
        outbox.notify(
            agency,
            kind="agency_visit",
            dedupe_key=f"agency_visit:{app_id}:{sequence}",
            context={
                "agency_name": agency.name,
                "application_id": app_id,
                "person_name": person.name,
                "id_number": person.id_number,
                "scheduled_on": visit["day"],
                "starts_at": visit["starts_at"],
                "assessors": sorted(links(visit["assessor_ids"])),
                "reason": visit["visit_reason"],
            },
        )


CSV_HEADER = ["date", "time", "slot", "application_id", "person", "area", "assessors", "reason"]
GONE = {"cancelled": "已取消", "no_show": "申请人未到，本次评估取消"}  # visits that no longer take place


@task(cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def write_agency_schedules(jurisdiction: str, now: dt.datetime | None = None) -> list[str]:
    """Each agency's visits as a CSV (the visits to make) and an iCalendar file it can import (the same visits,
    and for `CANCELLED_KEPT_DAYS` after the change those cancelled or not made, as cancelled), rewritten from
    the record. Every file is made in memory first, then written beside its target and renamed over it, the
    CSV and the .ics of an agency together: a failure leaves an agency's two files both as this run made them or
    both as the run before did, never a CSV and a calendar that disagree (a crash in the instant between the two
    renames is mended by the next run, which rewrites both)."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    folder = get_settings().home / "schedules"
    a, p, ag = m.Assessment, m.Person, m.Agency
    with session_scope() as s:
        agencies = {
            x.agency_id: x for x in s.scalars(select(ag).where(ag.jurisdiction == jurisdiction).order_by(ag.agency_id))
        }
        rows = s.execute(
            select(
                a.agency_id,
                a.application_id,
                a.sequence,
                a.scheduled_on,
                a.slot_no,
                a.starts_at,
                a.assessor_ids,
                a.kind,
                a.status,
                a.calendar_sequence,
                a.changed_at,
                p.name,
                p.area,
            )
            .join(m.Application, m.Application.application_id == a.application_id)
            .join(p, p.person_id == m.Application.person_id)
            .where(
                p.jurisdiction == jurisdiction,
                or_(
                    a.status == "scheduled",
                    and_(a.status.in_(list(GONE)), a.changed_at >= now - dt.timedelta(days=CANCELLED_KEPT_DAYS)),
                ),
            )
            .order_by(a.agency_id, a.scheduled_on, a.slot_no, a.application_id, a.sequence)
        ).all()
    by_agency: dict[str, list[Any]] = {}
    for row in rows:
        by_agency.setdefault(row.agency_id, []).append(row)
    files: list[tuple[Path, bytes, Path, bytes]] = []
    for agency_id, agency in agencies.items():
        visits = by_agency.get(agency_id, [])
        csv_path, ics_path = folder / f"{agency_id}.csv", folder / f"{agency_id}.ics"
        if not visits and not csv_path.exists() and not ics_path.exists():
            continue  # nothing to show and nothing shown before
        hours = WorkingHours.of({c: getattr(agency, c) for c in HOURS_COLUMNS})
        files.append((csv_path, _schedule_csv(visits), ics_path, _schedule_ics(agency.name, visits, hours, now)))
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for csv_path, csv_bytes, ics_path, ics_bytes in files:
        _replace_together([(csv_path, csv_bytes), (ics_path, ics_bytes)])
        written += [str(csv_path), str(ics_path)]
    return written


def _schedule_csv(visits: list[Any]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(CSV_HEADER)
    for v in visits:
        if v.status == "scheduled":
            w.writerow(
                [v.scheduled_on, v.starts_at, v.slot_no, v.application_id, v.name, v.area, v.assessor_ids, v.kind]
            )
    return out.getvalue().encode("utf-8")


@functools.cache
def _vtimezone() -> bytes:
    """The VTIMEZONE of China's time, from the time zone database (icalendar)."""
    return Timezone.from_tzid(TIME_ZONE).to_ical()


def _calendar_head(name: str) -> tuple[bytes, bytes]:
    """A calendar's own lines and its VTIMEZONE (icalendar), split where its events go."""
    cal = Calendar()
    cal.add("prodid", "-//ltc-claims//assessment schedule//ZH")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", TIME_ZONE)
    text = cal.to_ical()
    end = text.rindex(b"END:VCALENDAR")
    return text[:end] + _vtimezone(), text[end:]


def _schedule_ics(agency_name: str, visits: list[Any], hours: WorkingHours, now: dt.datetime) -> bytes:
    """The agency's calendar. Each visit is an event whose UID stays the same for the visit's life and whose
    SEQUENCE is the one kept in the record; its times are China's (TZID, with the VTIMEZONE). The values are
    encoded and the lines folded by icalendar's own property types (its component serialiser costs about a
    third of a millisecond an event, seconds for a city's schedule)."""
    head, tail = _calendar_head(f"{agency_name} 失能评估排期")
    stamp = vDatetime(now).to_ical().decode()
    zone = ZoneInfo(TIME_ZONE)
    local: dict[dt.datetime, str] = {}  # a local time as iCalendar writes it (icalendar's vDatetime)
    lines: list[str] = []
    for v in visits:
        start = dt.datetime.combine(v.scheduled_on, dt.time(0, 0)) + dt.timedelta(
            minutes=_start_minutes(v.starts_at, hours)
        )
        end = start + dt.timedelta(minutes=hours.visit)
        for t in (start, end):
            if t not in local:
                local[t] = vDatetime(t.replace(tzinfo=zone)).to_ical().decode()
        gone = v.status in GONE
        what = f"评估人员: {v.assessor_ids}; 类型: {v.kind}" + (f"; {GONE[v.status]}" if gone else "")
        lines += [
            "BEGIN:VEVENT",
            _line("UID", vText(f"{v.application_id}-{v.sequence}@ltc-claims")),
            f"DTSTAMP:{stamp}",
            f"SEQUENCE:{v.calendar_sequence}",
            f"STATUS:{'CANCELLED' if gone else 'CONFIRMED'}",
            f"DTSTART;TZID={TIME_ZONE}:{local[start]}",
            f"DTEND;TZID={TIME_ZONE}:{local[end]}",
            _line("SUMMARY", vText(f"失能评估 {v.application_id} {v.name}")),
            _line("LOCATION", vText(v.area)),
            _line("DESCRIPTION", vText(what)),
        ]
        if v.changed_at is not None:
            lines.append(f"LAST-MODIFIED:{vDatetime(_utc(v.changed_at)).to_ical().decode()}")
        lines.append("END:VEVENT")
    body = ("\r\n".join(lines) + "\r\n").encode("utf-8") if lines else b""
    return head + body + tail


def _line(name: str, value: vText) -> str:
    """A content line, folded (icalendar) where it is longer than 75 octets."""
    text = f"{name}:{value.to_ical().decode()}"
    return text if len(text.encode()) <= 75 else Contentline(text).to_ical().decode()


def _utc(moment: dt.datetime) -> dt.datetime:
    """A stored stamp in UTC (SQLite gives it back without its zone, as it was written: in UTC)."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _replace_together(files: list[tuple[Path, bytes]]) -> None:
    """Write each file beside its target, flushed to disk, then rename them all over their targets."""
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps.append((tmp, path))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for tmp, path in temps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in temps:  # what was not renamed (a failure on the way) is not left beside the targets
            Path(tmp).unlink(missing_ok=True)


@task(cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def visits_outside_hours(jurisdiction: str) -> list[str]:
    """Scheduled visits that do not lie within their agency's working hours (booked before the hours were set or
    changed): they stand until an operator moves them (a `cancel` event books a new visit)."""
    a, ag = m.Assessment, m.Agency
    with session_scope() as s:
        rows = s.execute(
            select(
                a.application_id,
                a.sequence,
                a.agency_id,
                a.scheduled_on,
                a.starts_at,
                *(getattr(ag, c) for c in HOURS_COLUMNS),
            )
            .join(ag, ag.agency_id == a.agency_id)
            .where(ag.jurisdiction == jurisdiction, a.status == "scheduled")
            .order_by(a.agency_id, a.scheduled_on, a.slot_no)
        ).all()
    out = []
    hours: dict[tuple[Any, ...], WorkingHours] = {}
    for v in rows:
        setting = (v.day_starts_at, v.day_ends_at, v.visit_minutes)
        if setting not in hours:
            hours[setting] = WorkingHours.of(dict(zip(HOURS_COLUMNS, setting, strict=True)))
        h = hours[setting]
        if not h.starts <= _start_minutes(v.starts_at, h) <= h.ends - h.visit:
            out.append(
                f"visit {v.application_id}/{v.sequence} of agency {v.agency_id} on {v.scheduled_on} at "
                f"{v.starts_at} is outside its working hours, between {h}"
            )
    return out


def _start_minutes(starts_at: str | None, hours: WorkingHours) -> int:
    """A visit's recorded start in minutes after midnight (a start recorded past 23:59, as some were before the
    working hours were enforced, counts on into the next day)."""
    if not starts_at:
        return hours.starts
    hh, _, mm = starts_at.partition(":")
    return int(hh) * 60 + int(mm or 0)


@task(cache_policy=NO_CACHE, **RETRY_TRANSIENT)
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
    """Free a visit's slot and assessors (a cancellation or a no-show) and mark it; its calendar sequence goes up,
    so that the agency's calendar takes the change."""
    s.execute(
        update(m.Assessment)
        .where(m.Assessment.id == visit.id)
        .values(
            status=status,
            calendar_sequence=m.Assessment.calendar_sequence + 1,
            changed_at=dt.datetime.now(dt.UTC),
        )
    )
    for model in (m.SlotBooking, m.AssessorBooking):
        for b in s.scalars(select(model).where(model.assessment_id == visit.id)):
            s.delete(b)
