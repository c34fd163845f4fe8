"""A 1,000-row care-day file with bad rows of every kind, on both backends, through the month's flows.

Rows that cannot be read, name what does not exist or repeat an item are quarantined with their line, field and
reason, and the good rows load; received = accepted + quarantined. Corrected rows re-enter through the same
schema. Rows that read well but break a named fraud check (医疗保障基金使用监督管理条例) load, and billing flags
them by rule. After the month is billed and paid: no (payee, period) is paid twice, the ledger balances and every
notice is delivered or pending."""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from flows.decide_eligibility import decide_eligibility
from flows.monthly_cycle import monthly_cycle
from flows.record_assessments import record_assessments
from flows.schedule_assessments import schedule_assessments
from ltc.demo import PERSON_HEADER, DemoSize, month_files, registry_files, results_file
from rules.engine import period_bounds
from storage import models as m
from storage.db import session_scope
from tasks import ledger
from tasks.intake import load_file

PACK, PERIOD, SEED = "nanning", "2026-03", 11
SIZE = DemoSize(insured=300, applicants=70, providers=4, agencies=2)
ROWS = 1000
HEADER = ["person_id", "provider_id", "period", "care_date", "care_mode", "item_code", "amount"]


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write(path: Path, header: list[str], rows: list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    return path


def _registry(folder: Path) -> tuple[list[dict[str, str]], dict[str, Path]]:
    """A pooling area with decided applications; the month's good care rows, stays and deaths from the demo."""
    files = registry_files(folder, PACK, PERIOD, SIZE, SEED)
    for kind in ("persons", "providers", "agencies", "assessors", "contributions", "applications"):
        assert load_file(kind, files[kind]).quarantined == 0
    schedule_assessments(PACK)
    record_assessments(str(results_file(folder, PACK, SEED)), PACK)
    decide_eligibility(PACK, period_bounds(PERIOD)[0] - dt.timedelta(days=1))
    month = month_files(folder, PACK, PERIOD, SEED)
    load_file("persons", month["deaths"])
    load_file("hospital_stays", month["hospital_stays"])
    good = _read(month["care_days"])[:-4]  # the demo's own four bad rows are left out: ours replace them
    return good, files


def _bad_rows(good: list[dict[str, str]], files: dict[str, Path]) -> list[tuple[dict[str, str], str, str]]:
    """One row of each kind of bad input: (row, field, what its reason says). Each has an item code of its own,
    so that no bad row repeats the key of a good one."""
    g = good[0]
    row = {**g, "care_mode": "home", "amount": "80.00"}
    return [
        ({**row, "item_code": "B01", "person_id": "P99999"}, "person_id", "unknown person 'P99999'"),
        ({**row, "item_code": "B02", "provider_id": "H9999"}, "provider_id", "unknown provider 'H9999'"),
        ({**row, "item_code": "B03", "care_date": "2026-04-01"}, "care_date", "care_date is outside the period"),
        ({**row, "item_code": "B04", "care_date": "2026-03-3x"}, "care_date", "malformed date '2026-03-3x'"),
        ({**row, "item_code": "B05", "care_date": "2026-02-30"}, "care_date", "malformed date '2026-02-30'"),
        ({**row, "item_code": "B06", "amount": "-50.00"}, "amount", "negative amount -50.00"),
        ({**row, "item_code": "B07", "amount": "12.3.4"}, "amount", "'12.3.4'"),
        ({**row, "item_code": "B08", "care_mode": "spa"}, "care_mode", "'spa'"),
        ({**row, "item_code": "B09", "person_id": ""}, "person_id", "required"),
        ({**row, "item_code": "B10", "period": "2026-13"}, "period", "'2026-13'"),
        ({**row, "item_code": "B11", "care_date": ""}, "care_date", "required"),
        # The same item twice for a person, provider and day: both rows are kept back (REPEATED_ITEM).
        ({**row, "item_code": "B12"}, "person_id", "REPEATED_ITEM"),
        ({**row, "item_code": "B12", "amount": "90.00"}, "person_id", "REPEATED_ITEM"),
    ]


@pytest.mark.usefixtures("prefect_server")
def test_thousand_row_file_with_bad_rows_of_every_kind(backend: str, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    good, files = _registry(folder)
    persons = _read(files["persons"])
    providers = _read(files["providers"])
    bad = _bad_rows(good, files)

    # Rows that read well and break a named fraud check: they load, and billing flags them.
    by_person: dict[str, list[dict[str, str]]] = {}
    for r in good:
        by_person.setdefault(r["person_id"], []).append(r)
    month = {k: _read(folder / f"{k}_{PERIOD}.csv") for k in ("deaths", "hospital_stays")}
    touched = {r["person_id"] for rows in month.values() for r in rows}  # the demo's own deaths and stays
    institutional = [
        p
        for p, rows in by_person.items()
        if rows[0]["care_mode"] == "institutional" and len(rows) == 31 and p not in touched
    ]
    died, in_hospital, two_homes = institutional[1], institutional[2], institutional[3]
    other = next(p["provider_id"] for p in providers if p["provider_id"] != by_person[two_homes][0]["provider_id"])
    idle = next(p for p in persons if p["person_id"] not in by_person)
    suspended = {**providers[0], "provider_id": "HSUS", "name": "停止协议的机构", "status": "suspended"}
    load_file("providers", _write(tmp_path / "suspended.csv", list(providers[0]), [suspended]))
    death = {k: v for k, v in next(p for p in persons if p["person_id"] == died).items() if k in PERSON_HEADER[:7]}
    load_file(
        "persons",
        _write(tmp_path / "death.csv", [*PERSON_HEADER[:7], "death_date"], [{**death, "death_date": "2026-03-20"}]),
    )
    load_file(
        "hospital_stays",
        _write(
            tmp_path / "stay.csv",
            ["person_id", "admitted_on", "discharged_on"],
            [{"person_id": in_hospital, "admitted_on": "2026-03-10", "discharged_on": "2026-03-14"}],
        ),
    )
    shared_day = by_person[two_homes][5]
    flagged = [
        {**shared_day, "provider_id": other, "care_mode": "home", "item_code": "F01", "amount": "60.00"},
        {**good[0], "person_id": idle["person_id"], "provider_id": "HSUS", "care_mode": "home", "item_code": "F02"},
    ]
    keep = [r for r in good if r["person_id"] in institutional[:4]]
    rest = [r for r in good if r["person_id"] not in institutional[:4]]
    fill = ROWS - len(bad) - len(flagged) - len(keep)
    assert 0 < fill <= len(rest), "the demo month has too few care rows for a 1,000-row file"
    rows: list[dict[str, str]] = [*keep, *rest[:fill], *flagged]
    for i, (r, _, _) in enumerate(bad):  # bad rows spread through the file
        rows.insert(37 + i * 71, r)
    assert len(rows) == ROWS
    care = _write(tmp_path / "care_days_2026-03.csv", HEADER, rows)

    report = load_file("care_days", care)
    bad_lines = {2 + rows.index(r): (fld, why) for r, fld, why in bad}  # the header is line 1
    assert report.received == ROWS == report.accepted + report.quarantined
    missed = [bad_lines[n] for n in set(bad_lines) - {e["line"] for e in report.errors}]
    assert not missed, missed
    assert report.quarantined == len(bad)
    found: dict[int, list[tuple[str, str]]] = {}
    for e in report.errors:
        found.setdefault(e["line"], []).append((e["field"], e["reason"]))
    assert set(found) == set(bad_lines)
    for line, (fld, why) in bad_lines.items():
        assert any(f == fld and why in reason for f, reason in found[line]), (line, found[line], why)
    assert all(e["file"] == str(care) for e in report.errors)
    with session_scope() as s:
        kept = s.execute(select(m.QuarantinedRow.row_number, m.QuarantinedRow.raw)).all()
        loaded = s.scalar(select(func.count()).select_from(m.CareDay))
    assert {n for n, _ in kept} == set(bad_lines)
    assert {r["item_code"] for _, r in kept} == {r["item_code"] for r, _, _ in bad}  # the raw row is kept
    assert loaded == report.accepted

    # Corrected, the rows re-enter through the same schema; the repeated item is sent once.
    fixes = {"person_id": good[0]["person_id"], "provider_id": good[0]["provider_id"], "care_mode": "home"}
    corrected = [
        {**r, **fixes, "period": PERIOD, "care_date": f"{PERIOD}-{2 + i:02d}", "amount": "70.00"}
        for i, (r, _, _) in enumerate(bad[:-1])
    ]
    again = load_file("care_days", _write(tmp_path / "care_days_2026-03_corrections.csv", HEADER, corrected))
    assert (again.received, again.accepted, again.quarantined) == (len(corrected), len(corrected), 0)

    result = monthly_cycle(PACK, PERIOD)
    assert result is not None
    with session_scope() as s:
        flags = s.execute(select(m.FraudFlag.rule, m.FraudFlag.person_id, m.FraudFlag.care_date)).all()
        batches = s.execute(
            select(m.PaymentBatch.payee_id, m.PaymentBatch.period, func.count()).group_by(
                m.PaymentBatch.payee_id, m.PaymentBatch.period
            )
        ).all()
        unbalanced = ledger.unbalanced(s)
        notices = Counter(s.scalars(select(m.Notice.status)))
        paid = s.scalar(select(func.sum(m.PaymentBatch.total_fen)))
        payable = s.scalar(select(func.sum(m.ClaimLine.payable_fen)))
    rules = {(rule, person) for rule, person, _ in flags}
    assert ("CARE_AFTER_DEATH", died) in rules
    assert {d for rule, p, d in flags if rule == "CARE_AFTER_DEATH" and p == died} == {
        dt.date(2026, 3, d) for d in range(21, 32)
    }
    assert {d for rule, p, d in flags if rule == "CARE_IN_HOSPITAL" and p == in_hospital} == {
        dt.date(2026, 3, d) for d in (11, 12, 13)
    }
    assert ("TWO_PROVIDERS_SAME_DAY", two_homes) in rules
    assert ("PROVIDER_NOT_IN_CONTRACT", idle["person_id"]) in rules
    assert batches and all(n == 1 for _, _, n in batches)
    assert unbalanced == []
    assert paid == payable
    assert set(notices) <= {"sent", "pending"} and notices


def _with_bad_row(path: Path, spec_kind: str) -> tuple[Path, int]:
    """The file with one more row: every required value empty. Returns the new file and that row's line."""
    from tasks.schemas import INBOUND

    rows = _read(path)
    header = list(rows[0]) if rows else [c.header for c in INBOUND[spec_kind].columns]
    bad = dict.fromkeys(header, "")
    out = path.with_name(f"{path.stem}_with_a_bad_row.csv")
    _write(out, header, [*rows, bad])
    return out, len(rows) + 2


@pytest.mark.usefixtures("prefect_server")
def test_every_inbound_kind_counts_received_as_accepted_plus_quarantined(backend: str, tmp_path: Path) -> None:
    """For each kind of inbound file, a real file with one bad row more: the bad row is kept back with the
    fields it lacks, every other row loads, and received = accepted + quarantined."""
    from tasks.schemas import INBOUND

    folder = tmp_path / "in"
    files = registry_files(folder, PACK, PERIOD, SIZE, SEED)
    seen = {}

    def load(kind: str, path: Path) -> None:
        bad_file, bad_line = _with_bad_row(path, kind)
        report = load_file(kind, bad_file)
        assert report.received == report.accepted + report.quarantined, kind
        assert bad_line in {e["line"] for e in report.errors}, kind
        required = {c.header for c in INBOUND[kind].columns if c.required and c.default is None}
        assert {e["field"] for e in report.errors if e["line"] == bad_line} >= required - {"line"}, kind
        seen[kind] = (report.received, report.accepted, report.quarantined)

    for kind in ("persons", "providers", "agencies", "assessors", "contributions", "applications"):
        load(kind, files[kind])
        assert seen[kind][2] == 1, (kind, seen[kind])  # the demo's registry files are clean
    schedule_assessments(PACK)
    load("assessment_results", results_file(folder, PACK, SEED))
    with session_scope() as s:
        application = s.scalars(select(m.Application.application_id).limit(1)).one()
    events = _write(
        tmp_path / "events.csv",
        ["application_id", "event", "reported_on", "reported_by", "note"],
        [
            {
                "application_id": application,
                "event": "objection",
                "reported_on": "2026-02-20",
                "reported_by": "applicant",
            }
        ],
    )
    load("assessment_events", events)
    decide_eligibility(PACK, period_bounds(PERIOD)[0] - dt.timedelta(days=1))
    month = month_files(folder, PACK, PERIOD, SEED)
    load("hospital_stays", month["hospital_stays"])
    load("care_days", month["care_days"])
    assert seen["care_days"][2] == 5  # the demo's four bad rows and ours
    returns = _write(
        tmp_path / "bank_return.csv",
        ["batch_ref", "amount", "status", "value_date", "bank_reference", "reason"],
        [{"batch_ref": "B-1", "amount": "10.00", "status": "paid", "value_date": "2026-04-10"}],
    )
    load("bank_returns", returns)
    assert set(seen) == set(INBOUND)
