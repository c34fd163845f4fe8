"""Assessment scheduling on a month with a statutory holiday and a make-up working day (October 2026: National
Day 1-7 October off, Saturday 10 October a working day), checked against the calendar library directly."""

from __future__ import annotations

import csv
import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from icalendar import Calendar
from sqlalchemy import func, select

from common.idvault import check_digit
from common.settings import get_settings
from flows.assessment_changes import assessment_changes
from flows.decide_eligibility import decide_eligibility
from flows.record_assessments import record_assessments
from flows.schedule_assessments import schedule_assessments
from flows.send_reminders import send_reminders
from storage import models as m
from storage.db import session_scope
from tasks.calendar import add_working_days, is_working_day, known_year, working_days
from tasks.intake import load_file
from tasks.scheduling import (
    CANCELLED_KEPT_DAYS,
    book_slots,
    plan_slots,
    scheduling_resources,
    waiting_applications,
    write_agency_schedules,
)

AREA = "青秀区"
HOLIDAYS = {dt.date(2026, 10, d) for d in range(1, 8)}
MAKE_UP_DAY = dt.date(2026, 10, 10)
DEADLINE_WORKING_DAYS = 15  # nanning assessment.deadline_working_days (an assumption of the pack)


def _csv(path: Path, header: list[str], rows: list[dict[str, Any]]) -> Path:
    lines = [",".join(header)] + [",".join("" if r.get(h) is None else str(r[h]) for h in header) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _id_number(i: int) -> str:
    body = f"4501031950010{i:04d}"
    return body + check_digit(body)


def world(folder: Path, n_apps: int, received: list[dt.date]) -> None:
    """An area with two agencies of unequal capacity, their assessors (one tied to provider H001; agency AG2 tied
    to H002), two providers and `n_apps` applications received on the given days in turn."""
    persons = [
        {
            "person_id": f"P{i:04d}",
            "name": f"申请人{i}",
            "id_number": _id_number(i),
            "jurisdiction": "nanning",
            "area": AREA if i > 0 else "兴宁区",
            "insurance_type": "employee",
            "contribution_base": "5000.00",
        }
        for i in range(n_apps + 1)
    ]
    load_file("persons", _csv(folder / "persons.csv", list(persons[0]), persons))
    providers = [
        {
            "provider_id": p,
            "name": f"机构{p}",
            "jurisdiction": "nanning",
            "kind": "institution",
            "contract_start": "2024-01-01",
            "status": "active",
            "bank_account": "622202000011112222",
        }
        for p in ("H001", "H002")
    ]
    load_file("providers", _csv(folder / "providers.csv", list(providers[0]), providers))
    agencies = [
        {
            "agency_id": "AG1",
            "name": "第一评估中心",
            "jurisdiction": "nanning",
            "area": AREA,
            "capacity_per_day": 20,
            "contract_start": "2026-01-01",
            "linked_providers": "",
        },
        {
            "agency_id": "AG2",
            "name": "第二评估中心",
            "jurisdiction": "nanning",
            "area": AREA,
            "capacity_per_day": 12,
            "contract_start": "2026-01-01",
            "linked_providers": "H002",
        },
    ]
    load_file("agencies", _csv(folder / "agencies.csv", list(agencies[0]), agencies))
    assessors = [
        {
            "assessor_id": f"{a}-E{k}",
            "agency_id": a,
            "name": f"评估员{a}{k}",
            "linked_providers": "H001" if (a, k) == ("AG1", 1) else "",
        }
        for a, n in (("AG1", 9), ("AG2", 6))
        for k in range(1, n + 1)
    ]
    load_file("assessors", _csv(folder / "assessors.csv", list(assessors[0]), assessors))
    apps = [
        {
            "application_id": f"A{i:04d}",
            "person_id": f"P{i:04d}",
            "received_on": received[(i - 1) % len(received)],
            "disabled_since": "2025-01-01",
            "care_mode": "institutional",
            "provider_id": "H001" if i % 2 else "H002",
        }
        for i in range(n_apps + 1)
    ]
    apps[0]["person_id"], apps[0]["received_on"] = "P0000", received[0]  # in an area no agency serves
    load_file("applications", _csv(folder / "applications.csv", list(apps[0]), apps))


def working_days_after(day: dt.date, n: int) -> dt.date:
    d = day
    while n:
        d += dt.timedelta(days=1)
        if chinese_calendar.is_workday(d):
            n -= 1
    return d


def visits() -> list[dict[str, Any]]:
    with session_scope() as s:
        rows = s.execute(
            select(m.Assessment, m.Application.received_on, m.Application.provider_id)
            .join(m.Application)
            .order_by(m.Assessment.application_id, m.Assessment.sequence)
        ).all()
        return [
            {
                "app": a.application_id,
                "seq": a.sequence,
                "agency": a.agency_id,
                "day": a.scheduled_on,
                "slot": a.slot_no,
                "at": a.starts_at,
                "assessors": a.assessor_ids,
                "status": a.status,
                "received": received,
                "provider": provider,
            }
            for a, received, provider in rows
        ]


OCTOBER = [dt.date(2026, 9, 28) + dt.timedelta(days=i) for i in range(26)]  # 28 Sep .. 23 Oct, every day
CHINA = "Asia/Shanghai"


def schedule_files(agency: str) -> tuple[list[dict[str, str]], Calendar]:
    folder = get_settings().home / "schedules"
    with (folder / f"{agency}.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return rows, Calendar.from_ical((folder / f"{agency}.ics").read_bytes())


def assert_files_agree(agency: str) -> bool:
    """The agency's CSV and calendar show the same visits, at the same times, and nothing is left half-written."""
    rows, cal = schedule_files(agency)
    in_csv = {(r["application_id"], r["date"], r["time"]) for r in rows}
    in_ics = {
        (str(e["UID"]).split("-")[0], f"{e['DTSTART'].dt:%Y-%m-%d}", f"{e['DTSTART'].dt:%H:%M}")
        for e in cal.walk("VEVENT")
        if str(e["STATUS"]) == "CONFIRMED"
    }
    assert in_csv == in_ics
    assert not [p.name for p in (get_settings().home / "schedules").iterdir() if p.name.startswith(".")]
    return True


def calendar_program(held: dict[str, dict[str, Any]], cal: Calendar) -> dict[str, dict[str, Any]]:
    """What a calendar program keeps after importing a file: an event of a new UID is added, one whose SEQUENCE
    is higher than the one it holds replaces it, and a cancelled one removes it."""
    for e in cal.walk("VEVENT"):
        uid, sequence = str(e["UID"]), int(e["SEQUENCE"])
        if uid in held and held[uid]["sequence"] >= sequence:
            continue
        if str(e["STATUS"]) == "CANCELLED":
            held.pop(uid, None)
        else:
            held[uid] = {"sequence": sequence, "start": e["DTSTART"].dt}
    return held


def scheduled_in_record(agency: str) -> dict[str, dt.datetime]:
    """Each scheduled visit of the agency in the record: its UID and start in China's time."""
    return {
        f"{v['app']}-{v['seq']}@ltc-claims": dt.datetime.combine(
            v["day"], dt.time.fromisoformat(v["at"]), ZoneInfo(CHINA)
        )
        for v in visits()
        if v["agency"] == agency and v["status"] == "scheduled"
    }


@pytest.mark.usefixtures("prefect_server")
def test_500_applications_in_a_holiday_month(backend: str, tmp_path: Path) -> None:
    world(tmp_path, 500, OCTOBER)
    first = schedule_assessments("nanning")
    assert (first["scheduled"], first["flagged"]) == (500, 1)
    placed = visits()
    assert len(placed) == 500 and {v["status"] for v in placed} == {"scheduled"}
    per_day: dict[tuple[str, dt.date], int] = {}
    assessor_times: set[tuple[str, dt.date, str]] = set()
    for v in placed:
        assert chinese_calendar.is_workday(v["day"]) and v["day"] not in HOLIDAYS
        assert (
            working_days_after(v["received"], 1) <= v["day"] <= working_days_after(v["received"], DEADLINE_WORKING_DAYS)
        )
        per_day[(v["agency"], v["day"])] = per_day.get((v["agency"], v["day"]), 0) + 1
        team = v["assessors"].split(";")
        assert len(set(team)) == 2 and all(x.startswith(v["agency"] + "-") for x in team)
        assert not (v["provider"] == "H001" and "AG1-E1" in team)  # conflict of interest: the assessor
        assert not (v["provider"] == "H002" and v["agency"] == "AG2")  # conflict of interest: the agency
        for x in team:
            assert (x, v["day"], v["at"]) not in assessor_times  # nobody in two visits at once
            assessor_times.add((x, v["day"], v["at"]))
    capacity = {"AG1": 20, "AG2": 12}
    assert all(n <= capacity[agency] for (agency, _), n in per_day.items())
    assert any(day == MAKE_UP_DAY for (_, day) in per_day)  # the make-up Saturday is worked
    assert {agency for agency, _ in per_day} == {"AG1", "AG2"}  # load is spread
    with session_scope() as s:
        flagged = s.get(m.Application, "A0000")
        assert flagged is not None and flagged.status == "received" and "兴宁区" in (flagged.problem or "")

    again = schedule_assessments("nanning")
    assert again["scheduled"] == 0 and visits() == placed

    ics = Calendar.from_ical((get_settings().home / "schedules" / "AG1.ics").read_bytes())
    events = [c for c in ics.walk("VEVENT")]
    assert len(events) == sum(1 for v in placed if v["agency"] == "AG1")
    assert {e.get("dtstart").dt.date() for e in events} <= {v["day"] for v in placed}
    assert [str(tz["TZID"]) for tz in ics.walk("VTIMEZONE")] == [CHINA]
    at = {(v["app"], v["seq"]): (v["day"], v["at"]) for v in placed}
    for e in events:
        start = e["DTSTART"]
        assert start.params["TZID"] == CHINA and start.dt.utcoffset() == dt.timedelta(hours=8)
        app, seq = str(e["UID"]).removesuffix("@ltc-claims").rsplit("-", 1)
        assert (start.dt.date(), f"{start.dt:%H:%M}") == at[(app, int(seq))]
        assert e["DTEND"].dt - start.dt == dt.timedelta(minutes=90)  # the default length of a visit
        stamp = e["DTSTAMP"].dt  # when the file was written, in UTC; never the visit's day
        assert stamp.utcoffset() == dt.timedelta(0) and abs(dt.datetime.now(dt.UTC) - stamp) < dt.timedelta(hours=1)
        assert (int(e["SEQUENCE"]), str(e["STATUS"])) == (0, "CONFIRMED")
    assert assert_files_agree("AG1") and assert_files_agree("AG2")


@pytest.mark.usefixtures("prefect_server")
def test_the_same_inputs_give_the_same_schedule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from storage.db import upgrade

    plans = []
    for run in ("a", "b"):
        home = tmp_path / run
        home.mkdir()
        monkeypatch.setenv("LTC_HOME", str(home))
        monkeypatch.setenv("LTC_DATABASE_URL", f"sqlite:///{home}/ltc.db")
        upgrade()
        world(home, 120, OCTOBER)
        schedule_assessments("nanning")
        plans.append([(v["app"], v["agency"], v["day"], v["slot"], v["assessors"]) for v in visits()])
    assert plans[0] == plans[1] and len(plans[0]) == 120


def _notices(kind: str, recipient: str | None = None) -> list[str]:
    with session_scope() as s:
        stmt = select(m.Notice.dedupe_key).where(m.Notice.kind == kind)
        if recipient:
            stmt = stmt.where(m.Notice.recipient_id == recipient)
        return list(s.scalars(stmt))


@pytest.mark.usefixtures("prefect_server")
def test_cancellation_and_no_show_lead_to_new_slots_and_two_notices(backend: str, tmp_path: Path) -> None:
    world(tmp_path, 4, [dt.date(2026, 10, 12)])
    schedule_assessments("nanning")
    before = {v["app"]: v for v in visits()}
    calendars = {a: calendar_program({}, schedule_files(a)[1]) for a in {v["agency"] for v in before.values()}}
    events = _csv(
        tmp_path / "events.csv",
        ["application_id", "event", "reported_on", "reported_by", "note"],
        [
            {"application_id": "A0001", "event": "cancel", "reported_on": "2026-10-12", "reported_by": "applicant"},
            {"application_id": "A0002", "event": "no_show", "reported_on": "2026-10-13", "reported_by": "agency"},
        ],
    )
    out = assessment_changes(str(events), "nanning")
    assert out["outcomes"] == {"cancel": 1, "no_show": 1} and out["scheduling"]["scheduled"] == 2
    after = visits()
    for app, old_status in (("A0001", "cancelled"), ("A0002", "no_show")):
        old, new = [v for v in after if v["app"] == app]
        assert old["status"] == old_status and new["status"] == "scheduled" and new["seq"] == 2
        assert (new["agency"], new["day"], new["slot"]) != (
            before[app]["agency"],
            before[app]["day"],
            before[app]["slot"],
        )
        assert _notices("assessment_scheduled", f"P{app[1:]}") == [
            f"assessment_scheduled:{app}:1",
            f"assessment_scheduled:{app}:2",
        ]
        assert _notices("agency_visit", new["agency"]).count(f"agency_visit:{app}:2") == 1
    with session_scope() as s:
        held = s.scalar(select(func.count()).select_from(m.SlotBooking))
    assert held == 4  # the two released slots are free again: one booking per live visit

    # Each agency's calendar program imports the new file: the visits that no longer happen are cancelled (their
    # sequence raised in the record and in the file), the new ones added, the others left as they were.
    gone = {f"{app}-1@ltc-claims" for app in ("A0001", "A0002")}
    for agency in {v["agency"] for v in after} - set(calendars):
        calendars[agency] = {}  # an agency with its first visits: a calendar of its own
    for agency, held_events in calendars.items():
        _, cal = schedule_files(agency)
        cancelled = {str(e["UID"]): int(e["SEQUENCE"]) for e in cal.walk("VEVENT") if str(e["STATUS"]) == "CANCELLED"}
        assert cancelled == {uid: 1 for uid in gone if uid in held_events}
        assert {uid: e["start"] for uid, e in calendar_program(held_events, cal).items()} == scheduled_in_record(agency)
        assert assert_files_agree(agency)
    with session_scope() as s:
        assert sorted(
            s.execute(select(m.Assessment.application_id, m.Assessment.sequence, m.Assessment.calendar_sequence))
        ) == [("A0001", 1, 1), ("A0001", 2, 0), ("A0002", 1, 1), ("A0002", 2, 0), ("A0003", 1, 0), ("A0004", 1, 0)]
    # A cancelled visit stays in the file, as cancelled, for CANCELLED_KEPT_DAYS after the change, then goes.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=CANCELLED_KEPT_DAYS + 1)
    write_agency_schedules.fn("nanning", now=later)
    for agency in calendars:
        _, cal = schedule_files(agency)
        assert {str(e["STATUS"]) for e in cal.walk("VEVENT")} <= {"CONFIRMED"}
        assert {str(e["UID"]) for e in cal.walk("VEVENT")} == set(scheduled_in_record(agency))

    again = assessment_changes(str(events), "nanning")
    assert again["outcomes"] == {} and len(visits()) == len(after)


def _result(tmp_path: Path, name: str, visit: dict[str, Any], grade: int, published: dt.date, **extra: Any) -> Path:
    row = {
        "application_id": visit["app"],
        "agency_id": visit["agency"],
        "visited_on": visit["day"],
        "grade": grade,
        "published_on": published,
        "assessor_ids": visit["assessors"],
        **extra,
    }
    return _csv(tmp_path / name, list(row), [row])


@pytest.mark.usefixtures("prefect_server")
def test_an_objection_in_the_publicity_period_brings_other_assessors_and_the_first_result_starts_nothing(
    backend: str, tmp_path: Path
) -> None:
    world(tmp_path, 1, [dt.date(2026, 10, 12)])
    contributions = [
        {
            "person_id": "P0001",
            "period": f"2025-{mo:02d}",
            "due": "15.00",
            "paid": "15.00",
            "paid_on": f"2025-{mo:02d}-15",
        }
        for mo in range(1, 13)
    ]
    load_file("contributions", _csv(tmp_path / "c.csv", list(contributions[0]), contributions))
    schedule_assessments("nanning")
    (first,) = [v for v in visits() if v["app"] == "A0001"]
    calendar = calendar_program({}, schedule_files(first["agency"])[1])

    bad = _result(tmp_path, "bad.csv", first, 3, first["day"] + dt.timedelta(days=3), assessor_ids="AG1-E2")
    record_assessments(str(bad), "nanning")
    with session_scope() as s:
        visit = s.scalars(select(m.Assessment).where(m.Assessment.application_id == "A0001")).one()
        assert visit.status == "held" and "1 assessor(s) reported; a visit needs 2" in (visit.hold_reason or "")

    published = first["day"] + dt.timedelta(days=3)
    record_assessments(str(_result(tmp_path, "r1.csv", first, 3, published)), "nanning")
    in_window = published + dt.timedelta(days=2)
    assert decide_eligibility("nanning", in_window)["decided"] == 0  # still open to objection
    late = _csv(
        tmp_path / "late.csv",
        ["application_id", "event", "reported_on", "reported_by"],
        [
            {
                "application_id": "A0001",
                "event": "objection",
                "reported_on": published - dt.timedelta(days=1),
                "reported_by": "applicant",
            }
        ],
    )
    assert assessment_changes(str(late), "nanning")["outcomes"] == {"rejected": 1}
    objection = _csv(
        tmp_path / "objection.csv",
        ["application_id", "event", "reported_on", "reported_by"],
        [{"application_id": "A0001", "event": "objection", "reported_on": in_window, "reported_by": "applicant"}],
    )
    assert assessment_changes(str(objection), "nanning")["outcomes"] == {"objection": 1}
    old, new = [v for v in visits() if v["app"] == "A0001"]
    assert old["status"] == "objected" and new["status"] == "scheduled"
    assert not set(old["assessors"].split(";")) & set(new["assessors"].split(";"))
    # The agency's calendar gains the new visit; the first one took place and stays as it was.
    if new["agency"] == first["agency"]:
        calendar = calendar_program(calendar, schedule_files(new["agency"])[1])
        assert set(calendar) == {"A0001-1@ltc-claims", "A0001-2@ltc-claims"}
        assert calendar["A0001-2@ltc-claims"]["start"] == scheduled_in_record(new["agency"])["A0001-2@ltc-claims"]
    else:
        assert set(calendar_program(calendar, schedule_files(first["agency"])[1])) == {"A0001-1@ltc-claims"}
        assert set(calendar_program({}, schedule_files(new["agency"])[1])) == {"A0001-2@ltc-claims"}
    assert decide_eligibility("nanning", published + dt.timedelta(days=30))["decided"] == 0  # nothing stands

    second_published = new["day"] + dt.timedelta(days=3)
    record_assessments(str(_result(tmp_path, "r2.csv", new, 5, second_published)), "nanning")
    decided = decide_eligibility("nanning", second_published + dt.timedelta(days=10))
    assert (decided["decided"], decided["approved"]) == (1, 1)
    with session_scope() as s:
        (decision,) = s.scalars(select(m.EligibilityDecision)).all()
    assert (decision.grade, decision.start_date, decision.assessment_sequence) == (5, second_published, 2)

    # 复评: a re-assessment on request after the decision brings a visit by yet other assessors; a result below
    # severe ends the benefit the day before its publication.
    request = _csv(
        tmp_path / "reassess.csv",
        ["application_id", "event", "reported_on", "reported_by"],
        [
            {
                "application_id": "A0001",
                "event": "reassessment",
                "reported_on": dt.date(2026, 11, 23),
                "reported_by": "applicant",
            }
        ],
    )
    assert assessment_changes(str(request), "nanning")["outcomes"] == {"reassessment": 1}
    third = [v for v in visits() if v["app"] == "A0001"][-1]
    assert third["seq"] == 3 and third["status"] == "scheduled"
    earlier = set(old["assessors"].split(";")) | set(new["assessors"].split(";"))
    assert not earlier & set(third["assessors"].split(";"))
    third_published = third["day"] + dt.timedelta(days=3)
    record_assessments(str(_result(tmp_path, "r3.csv", third, 2, third_published)), "nanning")
    assert decide_eligibility("nanning", third_published + dt.timedelta(days=10))["denied"] == 1
    with session_scope() as s:
        first_decision, second_decision = s.scalars(
            select(m.EligibilityDecision).order_by(m.EligibilityDecision.assessment_sequence)
        ).all()
    assert first_decision.approved and first_decision.end_date == third_published - dt.timedelta(days=1)
    assert not second_decision.approved and second_decision.assessment_sequence == 3


@pytest.mark.usefixtures("prefect_server")
def test_reminders_go_out_the_working_day_before(backend: str, tmp_path: Path) -> None:
    world(tmp_path, 3, [dt.date(2026, 10, 9)])  # a Friday; the first slot is the make-up Saturday 10 October
    schedule_assessments("nanning")
    days = {v["day"] for v in visits()}
    assert days == {MAKE_UP_DAY}
    assert send_reminders("nanning", dt.date(2026, 10, 8))["reminders"] == 0
    assert send_reminders("nanning", dt.date(2026, 10, 9))["reminders"] == 3
    assert send_reminders("nanning", dt.date(2026, 10, 9))["reminders"] == 3  # the same three, not sent twice
    assert len(_notices("assessment_reminder")) == 3


def test_working_days_come_from_the_calendar_once_and_fall_back_to_weekdays() -> None:
    day = dt.date(2026, 1, 1)
    while day.year == 2026:
        assert is_working_day(day) == chinese_calendar.is_workday(day), day
        day += dt.timedelta(days=1)
    assert known_year(dt.date(2026, 6, 1)) and not known_year(dt.date(2027, 6, 1))  # not yet published
    assert [d.isoformat() for d in working_days(dt.date(2026, 12, 30), dt.date(2027, 1, 5))] == [
        "2026-12-30",
        "2026-12-31",
        "2027-01-01",  # the fallback: Monday to Friday
        "2027-01-04",
        "2027-01-05",
    ]
    assert add_working_days(dt.date(2026, 9, 30), 1) == dt.date(2026, 10, 8)  # over National Day
    assert add_working_days(dt.date(2026, 10, 9), 1) == MAKE_UP_DAY
    assert add_working_days(dt.date(2026, 10, 3), 0) == dt.date(2026, 10, 8)
    assert add_working_days(dt.date(2026, 12, 31), 2) == dt.date(2027, 1, 4)


def _applicants(folder: Path, numbers: range, area: str, received: dt.date, name: str) -> None:
    """Persons of the area and their applications (provider H002), all received on one day."""
    persons = [
        {
            "person_id": f"P{i:04d}",
            "name": f"申请人{i}",
            "id_number": _id_number(i),
            "jurisdiction": "nanning",
            "area": area,
            "insurance_type": "employee",
            "contribution_base": "5000.00",
        }
        for i in numbers
    ]
    load_file("persons", _csv(folder / f"{name}-persons.csv", list(persons[0]), persons))
    apps = [
        {
            "application_id": f"A{i:04d}",
            "person_id": f"P{i:04d}",
            "received_on": received,
            "disabled_since": "2025-01-01",
            "care_mode": "institutional",
            "provider_id": "H002",
        }
        for i in numbers
    ]
    load_file("applications", _csv(folder / f"{name}-applications.csv", list(apps[0]), apps))


@pytest.mark.usefixtures("prefect_server")
def test_an_agency_is_given_no_visit_outside_its_working_hours(backend: str, tmp_path: Path) -> None:
    """AG3 says it makes 12 visits a day, but with three assessors (one team of two) and its hours, 08:30 to
    12:00 with visits of an hour, it can make three. It is given three a day; the other agencies are scheduled
    as before; hours that cannot hold one visit are refused at load, naming the file, row and field."""
    world(tmp_path, 6, [dt.date(2026, 10, 12)])
    header = ["agency_id", "name", "jurisdiction", "area", "capacity_per_day", "contract_start"]
    header += ["day_starts_at", "day_ends_at", "visit_minutes"]
    agencies = _csv(
        tmp_path / "more-agencies.csv",
        header,
        [
            {
                "agency_id": "AG3",
                "name": "第三评估中心",
                "jurisdiction": "nanning",
                "area": "江南区",
                "capacity_per_day": 12,
                "contract_start": "2026-01-01",
                "day_starts_at": "08:30",
                "day_ends_at": "12:00",
                "visit_minutes": 60,
            },
            {
                "agency_id": "AG4",
                "name": "第四评估中心",
                "jurisdiction": "nanning",
                "area": "江南区",
                "capacity_per_day": 5,
                "contract_start": "2026-01-01",
                "day_starts_at": "17:00",  # the default end, 17:30, leaves no room for a visit of 90 minutes
            },
        ],
    )
    report = load_file("agencies", agencies)
    assert (report.accepted, report.quarantined) == (1, 1)
    assert [(e["file"], e["line"], e["field"]) for e in report.errors] == [(str(agencies), 3, "day_ends_at")]
    assert "no time for one visit" in report.errors[0]["reason"]
    staff = [{"assessor_id": f"AG3-E{k}", "agency_id": "AG3", "name": f"评估员3{k}"} for k in (1, 2, 3)]
    load_file("assessors", _csv(tmp_path / "more-assessors.csv", list(staff[0]), staff))
    _applicants(tmp_path, range(101, 131), "江南区", dt.date(2026, 10, 12), "jiangnan")

    out = schedule_assessments("nanning")
    assert (out["scheduled"], out["flagged"]) == (36, 1)
    assert out["capacity"] == [
        "agency AG3: capacity 12 a day does not fit between 08:30 and 12:00 (60 minutes a visit) with 3 "
        "assessor(s) (1 team(s) of 2); it is given at most 3 visits a day"
    ]
    assert out["outside_hours"] == []
    placed = visits()
    ag3 = [v for v in placed if v["agency"] == "AG3"]
    assert len(ag3) == 30
    per_day: dict[dt.date, list[str]] = {}
    for v in ag3:
        per_day.setdefault(v["day"], []).append(v["at"])
    assert all(sorted(times) == ["08:30", "09:30", "10:30"] for times in per_day.values())
    assert len(per_day) == 10 and all(is_working_day(d) for d in per_day)
    others = [v for v in placed if v["agency"] != "AG3"]
    assert len(others) == 6 and all("09:00" <= v["at"] <= "15:00" for v in others)  # 09:00-17:30, 90 minutes
    for agency in {v["agency"] for v in placed}:
        assert assert_files_agree(agency)
    _, cal = schedule_files("AG3")
    assert {e["DTEND"].dt - e["DTSTART"].dt for e in cal.walk("VEVENT")} == {dt.timedelta(minutes=60)}

    # A visit booked before hours were kept (at 25:30, as they once were) neither stops the run nor the files;
    # the run names it, for an operator to move.
    with session_scope() as s:
        visit = s.scalars(select(m.Assessment).where(m.Assessment.application_id == "A0130")).one()
        visit.starts_at = "25:30"
    again = schedule_assessments("nanning")
    assert again["scheduled"] == 0 and len(again["outside_hours"]) == 1 and "A0130/1" in again["outside_hours"][0]
    _, cal = schedule_files("AG3")
    (late,) = [e for e in cal.walk("VEVENT") if str(e["UID"]).startswith("A0130-")]
    assert late["DTSTART"].dt.replace(tzinfo=None) == dt.datetime.combine(visit.scheduled_on, dt.time(1, 30)) + (
        dt.timedelta(days=1)
    )


@pytest.mark.usefixtures("prefect_server")
def test_two_runs_at_once_never_give_a_slot_or_an_assessor_twice(backend: str, tmp_path: Path) -> None:
    """One run plans sixty applications received on Saturday 10 October (a make-up working day). Thirty more, for
    provider H002 (so only AG1 can take them) and received the day before, arrive, and a second run plans all
    ninety from the same record: it gives the newcomers the 10 October slots and then AG1's first slots of
    Monday 12 October, which the first run gave to others. Both book at the same time. Whichever comes second
    books only what is still free and leaves the rest waiting; the next run places it."""
    world(tmp_path, 60, [MAKE_UP_DAY])
    first = plan_slots.fn(waiting_applications.fn("nanning"), scheduling_resources.fn("nanning"), "nanning")
    _applicants(tmp_path, range(201, 231), AREA, dt.date(2026, 10, 9), "earlier")
    second = plan_slots.fn(waiting_applications.fn("nanning"), scheduling_resources.fn("nanning"), "nanning")
    assert first.height == 61 and second.height == 91
    with ThreadPoolExecutor(2) as pool:
        (b0, c0), (b1, c1) = ((r["booked"], r["conflicts"]) for r in pool.map(book_slots.fn, [first, second]))
    if b1 == 90:  # the second run booked first: the first finds its applications scheduled
        assert (b0, c0, c1) == (0, 0, 0)
    else:  # the first run booked first: the second books the newcomers whose slots are still free
        assert (b0, c0) == (60, 0) and b1 + c1 == 30 and c1 > 0

    def no_double_booking() -> list[dict[str, Any]]:
        placed = visits()
        assert len({v["app"] for v in placed}) == len(placed)  # one visit per application
        assert len({(v["agency"], v["day"], v["slot"]) for v in placed}) == len(placed)
        times = [(x, v["day"], v["at"]) for v in placed for x in v["assessors"].split(";")]
        assert len(set(times)) == len(times)
        return placed

    no_double_booking()
    schedule_assessments("nanning")
    assert len(no_double_booking()) == 90
