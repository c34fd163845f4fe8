"""A claim line keeps the dates it did not pay, as ranges with their reason, on both backends; `ltc explain` and
the claims export name each range. Amounts by 南府规〔2023〕26号 三(三)3(2) (grade 5: 66 a day, grade 4: 62) and
三(三)4 (not paid from the day after admission through the discharge day, nor after death, nor before the start)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sqlalchemy import select, update

from ltc.explain import explain
from ltc.exports import export_rows
from storage import models as m
from storage.db import session_scope
from tasks.billing import compute_claims, read_inputs, write_lines
from tasks.intake import load_file

MARCH = "2026-03"
PERSONS = """person_id,name,id_number,jurisdiction,area,insurance_type,contribution_base,death_date
P1,张三,450103195001011248,nanning,青秀区,employee,5000,2026-03-27
P2,李四,45010319500101123X,nanning,青秀区,retiree,3000,
"""
PROVIDERS = """provider_id,name,jurisdiction,kind,contract_start,contract_end,status,bank_account
H1,南宁护理院,nanning,institution,2024-01-01,,active,6222020000001234
"""
STAYS = "person_id,admitted_on,discharged_on,kind\nP1,2026-03-10,2026-03-14,inpatient\n"


def _care() -> str:
    rows = ["person_id,provider_id,period,care_date,care_mode,item_code,amount"]
    for person in ("P1", "P2"):
        for day in range(1, 32):
            if person == "P1" and day == 29:  # no care submitted on the 29th
                continue
            rows.append(f"{person},H1,{MARCH},2026-03-{day:02d},institutional,,")
    return "\n".join(rows) + "\n"


def _bill(tmp_path: Path) -> None:
    for kind, text in (
        ("persons", PERSONS),
        ("providers", PROVIDERS),
        ("hospital_stays", STAYS),
        ("care_days", _care()),
    ):
        f = tmp_path / f"{kind}.csv"
        f.write_text(text, encoding="utf-8")
        assert load_file(kind, f).quarantined == 0
    with session_scope() as s:
        for app, person, grade, start in (("A1", "P1", 5, dt.date(2025, 12, 1)), ("A2", "P2", 4, dt.date(2026, 3, 16))):
            s.add(
                m.Application(
                    application_id=app,
                    person_id=person,
                    received_on=dt.date(2025, 10, 1),
                    disabled_since=dt.date(2025, 1, 1),
                    care_mode="institutional",
                )
            )
            s.flush()
            s.add(
                m.EligibilityDecision(
                    application_id=app,
                    person_id=person,
                    jurisdiction="nanning",
                    decided_on=start,
                    approved=True,
                    grade=grade,
                    start_date=start,
                )
            )
    with session_scope() as s:
        write_lines(s, compute_claims(read_inputs(s, "nanning", MARCH), "nanning", MARCH), "nanning", MARCH)


def _lines() -> dict[str, m.ClaimLine]:
    with session_scope() as s:
        lines = {c.person_id: c for c in s.scalars(select(m.ClaimLine))}
        s.expunge_all()
    return lines


P1_RANGES = [
    {"reason": "IN_HOSPITAL", "from": "2026-03-11", "to": "2026-03-14", "days": 4},
    {"reason": "AFTER_DEATH", "from": "2026-03-28", "to": "2026-03-28", "days": 1},
    {"reason": "AFTER_DEATH", "from": "2026-03-30", "to": "2026-03-31", "days": 2},
]
P2_RANGES = [{"reason": "NOT_ELIGIBLE", "from": "2026-03-01", "to": "2026-03-15", "days": 15}]


def test_claim_lines_explain_and_the_export_name_each_excluded_date_range(backend: str, tmp_path: Path) -> None:
    _bill(tmp_path)
    lines = _lines()
    p1, p2 = lines["P1"], lines["P2"]
    assert (p1.days_submitted, p1.days_paid, p1.payable_fen) == (30, 23, 23 * 6600)
    assert p1.exclusions == {"AFTER_DEATH": 3, "IN_HOSPITAL": 4}
    assert p1.excluded_ranges == P1_RANGES
    assert (p2.days_paid, p2.payable_fen, p2.excluded_ranges) == (16, 16 * 6200, P2_RANGES)

    trace = explain("P1", MARCH).splitlines()
    died = next(i for i, t in enumerate(trace) if t.startswith("  3 day(s) not paid, AFTER_DEATH: "))
    assert trace[died + 1 : died + 3] == ["    2026-03-28 (1 day)", "    2026-03-30 to 2026-03-31 (2 days)"]
    hospital = next(i for i, t in enumerate(trace) if t.startswith("  4 day(s) not paid, IN_HOSPITAL: "))
    assert trace[hospital + 1] == "    2026-03-11 to 2026-03-14 (4 days)"
    assert trace[hospital + 2].startswith("  rule ")  # nothing more under it
    assert "    2026-03-01 to 2026-03-15 (15 days)" in explain("P2", MARCH).splitlines()

    header, rows = export_rows("claims", MARCH)
    exported = {r[header.index("person_id")]: json.loads(r[header.index("excluded_ranges")]) for r in rows}
    assert exported == {"P1": P1_RANGES, "P2": P2_RANGES}

    # Billing the month again writes the same ranges, once.
    with session_scope() as s:
        write_lines(s, compute_claims(read_inputs(s, "nanning", MARCH), "nanning", MARCH), "nanning", MARCH)
    assert {k: v.excluded_ranges for k, v in _lines().items()} == {"P1": P1_RANGES, "P2": P2_RANGES}


def test_a_line_billed_before_dates_were_kept_says_so(backend: str, tmp_path: Path) -> None:
    _bill(tmp_path)
    with session_scope() as s:  # as the migration leaves a line billed before it
        s.execute(update(m.ClaimLine).where(m.ClaimLine.person_id == "P2").values(excluded_ranges=[]))
    trace = explain("P2", MARCH).splitlines()
    at = next(i for i, t in enumerate(trace) if t.startswith("  15 day(s) not paid, NOT_ELIGIBLE: "))
    assert trace[at + 1] == "    (dates not kept: the line was billed before claim lines kept them)"
