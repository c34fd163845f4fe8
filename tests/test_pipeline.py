"""The whole monthly cycle through Prefect on both backends, checked against totals worked out independently
from the demo's input files and the Nanning document (南府规〔2023〕26号 三(三)), and run twice."""

from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import func, select

from common.settings import get_settings
from ltc.demo import DemoSize
from ltc.pipeline import run_demo
from storage import models as m
from storage.db import session_scope
from tasks import audit

PERIOD = "2026-03"
# The document's own figures (三(三)3(2)), as a reader of the clause would use them by hand.
DAILY_RATE_FEN = {5: 6600, 4: 6200, 3: 5700}
HOME_QUOTA_FEN = 185000
COVERED = {"employee", "retiree", "flexible", "unemployed"}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _fen(text: str) -> int:
    yuan, _, cents = text.partition(".")
    return int(yuan) * 100 + int((cents + "00")[:2])


def _plus_months(d: dt.date, n: int) -> dt.date:
    total = d.year * 12 + d.month - 1 + n
    y, mo = divmod(total, 12)
    return dt.date(y, mo + 1, 1) + dt.timedelta(days=d.day - 1) if d.day <= 28 else dt.date(y, mo + 1, 28)


def expected_approvals(folder: Path) -> set[str]:
    """三(一), 三(三)1 by hand: covered type, no work-injury allowance, severe, 6 months, 12 full months."""
    persons = {p["person_id"]: p for p in _rows(folder / "persons.csv")}
    full: dict[str, list[str]] = defaultdict(list)
    for c in _rows(folder / "contributions.csv"):
        if _fen(c["due"]) > 0 and _fen(c["paid"]) >= _fen(c["due"]):
            full[c["person_id"]].append(c["period"])
    grades = {r["application_id"]: int(r["grade"]) for r in _rows(folder / "assessment_results.csv")}
    approved = set()
    for a in _rows(folder / "applications.csv"):
        p = persons[a["person_id"]]
        received = dt.date.fromisoformat(a["received_on"])
        months = [x for x in full[a["person_id"]] if x < received.isoformat()[:7]]
        if (
            p["insurance_type"] in COVERED
            and p["work_injury_care_allowance"] != "true"
            and grades[a["application_id"]] >= 3
            and _plus_months(dt.date.fromisoformat(a["disabled_since"]), 6) <= received
            and len(months) >= 12
        ):
            approved.add(a["application_id"])
    return approved


def expected_claims(folder: Path) -> dict[tuple[str, str, str], int]:
    """三(三)3-4 by hand, day by day, from the files and the approved decisions' start dates and grades."""
    with session_scope() as s:
        entitled = {
            d.person_id: (d.grade, d.start_date)
            for d in s.scalars(select(m.EligibilityDecision).where(m.EligibilityDecision.approved.is_(True)))
        }
    persons = {p["person_id"] for p in _rows(folder / "persons.csv")}
    deaths = {p["person_id"]: dt.date.fromisoformat(p["death_date"]) for p in _rows(folder / f"deaths_{PERIOD}.csv")}
    stays = defaultdict(list)
    for st in _rows(folder / f"hospital_stays_{PERIOD}.csv"):
        stays[st["person_id"]].append(
            (dt.date.fromisoformat(st["admitted_on"]), dt.date.fromisoformat(st["discharged_on"]))
        )
    per_day: dict[tuple[str, str, str], dict[dt.date, int]] = defaultdict(lambda: defaultdict(int))
    for c in _rows(folder / f"care_days_{PERIOD}.csv"):
        try:
            day = dt.date.fromisoformat(c["care_date"])
        except ValueError:
            continue
        if c["person_id"] not in persons or day.isoformat()[:7] != PERIOD or c["amount"].startswith("-"):
            continue
        per_day[(c["person_id"], c["provider_id"], c["care_mode"])][day] += _fen(c["amount"])
    payable: dict[tuple[str, str, str], int] = {}
    for (person, provider, mode), days in sorted(per_day.items()):
        total = 0
        for day, amount in days.items():
            grade, start = entitled.get(person, (None, None))
            if start is None or day < start:
                continue
            if person in deaths and day > deaths[person]:
                continue
            if any(adm < day <= dis for adm, dis in stays[person]):
                continue
            total += DAILY_RATE_FEN[grade] if mode == "institutional" else amount
        payable[(person, provider, mode)] = total
    used: dict[str, int] = defaultdict(int)
    for key in sorted(payable):
        person, _provider, mode = key
        if mode == "home":
            payable[key] = min(payable[key], max(HOME_QUOTA_FEN - used[person], 0))
            used[person] += payable[key]
    return payable


def expected_flags(folder: Path) -> set[tuple[str, str, str, dt.date]]:
    """The named fraud checks (rules/fraud.yaml) by hand on the accepted care-day rows: care after death, care on a
    day wholly inside a hospital stay, a person-day billed by two providers, a provider outside its contract."""
    deaths = {p["person_id"]: dt.date.fromisoformat(p["death_date"]) for p in _rows(folder / f"deaths_{PERIOD}.csv")}
    stays = defaultdict(list)
    for st in _rows(folder / f"hospital_stays_{PERIOD}.csv"):
        stays[st["person_id"]].append(
            (dt.date.fromisoformat(st["admitted_on"]), dt.date.fromisoformat(st["discharged_on"]))
        )
    persons = {p["person_id"] for p in _rows(folder / "persons.csv")}
    active = {p["provider_id"] for p in _rows(folder / "providers.csv") if p["status"] == "active"}
    seen: dict[tuple[str, dt.date], set[str]] = defaultdict(set)
    flags = set()
    for c in _rows(folder / f"care_days_{PERIOD}.csv"):
        try:
            day = dt.date.fromisoformat(c["care_date"])
        except ValueError:
            continue
        person, provider = c["person_id"], c["provider_id"]
        if person not in persons or day.isoformat()[:7] != PERIOD or c["amount"].startswith("-"):
            continue
        seen[(person, day)].add(provider)
        if person in deaths and day > deaths[person]:
            flags.add(("CARE_AFTER_DEATH", person, provider, day))
        if any(adm < day < dis for adm, dis in stays[person]):
            flags.add(("CARE_IN_HOSPITAL", person, provider, day))
        if provider not in active:
            flags.add(("PROVIDER_NOT_IN_CONTRACT", person, provider, day))
    for (person, day), providers in seen.items():
        if len(providers) > 1:
            flags |= {("TWO_PROVIDERS_SAME_DAY", person, provider, day) for provider in providers}
    return flags


def _flags() -> set[tuple[str, str, str, dt.date]]:
    with session_scope() as s:
        return {(f.rule, f.person_id, f.provider_id, f.care_date) for f in s.scalars(select(m.FraudFlag))}


def _audit_actions() -> dict[str, int]:
    with session_scope() as s:
        n, problems = audit.verify(s)
        assert problems == [] and n > 0
        return dict(s.execute(select(m.AuditEntry.action, func.count()).group_by(m.AuditEntry.action)).all())


def _decisions() -> list[str]:
    with session_scope() as s:
        return list(s.scalars(select(m.EligibilityDecision.application_id)))


def _record() -> dict[str, object]:
    with session_scope() as s:
        return {
            "claims": {
                (c.person_id, c.provider_id, c.care_mode): c.payable_fen for c in s.scalars(select(m.ClaimLine))
            },
            "batches": sorted((b.batch_ref, b.total_fen, b.line_count) for b in s.scalars(select(m.PaymentBatch))),
            "payment_lines": s.scalar(select(func.count()).select_from(m.PaymentLine)),
            "notices": s.scalar(select(func.count()).select_from(m.Notice)),
            "approved": set(
                s.scalars(select(m.EligibilityDecision.application_id).where(m.EligibilityDecision.approved.is_(True)))
            ),
        }


@pytest.mark.usefixtures("prefect_server")
def test_monthly_cycle_matches_hand_computation_and_pays_once(backend: str) -> None:
    size = DemoSize(insured=400, applicants=80, providers=4, agencies=2)
    first = run_demo("nanning", PERIOD, 7, size)
    folder = get_settings().demo_dir / "nanning"
    rec = _record()

    assert rec["approved"] == expected_approvals(folder)
    assert 0 < len(rec["approved"]) < size.applicants  # both outcomes occur

    claims = rec["claims"]
    expected = expected_claims(folder)
    assert claims == expected
    assert first["payable_fen"] == sum(expected.values()) > 0

    paying = {p for (_, p, _), v in expected.items() if v > 0}
    assert first["batches"] == len(paying)
    assert first["batch_total_fen"] == sum(expected.values())

    bank = _rows(get_settings().bank_dir / f"nanning-{PERIOD}.csv")
    assert sum(_fen(r["amount"]) for r in bank) == sum(expected.values())

    with session_scope() as s:
        statuses = dict(s.execute(select(m.Notice.status, func.count()).group_by(m.Notice.status)).all())
    assert statuses.get("pending", 0) == 0 and statuses.get("sent", 0) == rec["notices"]
    outbox = list(get_settings().outbox_dir.iterdir())
    assert len(outbox) == rec["notices"]

    flags = _flags()
    assert flags == expected_flags(folder)
    assert "CARE_IN_HOSPITAL" in {f[0] for f in flags}  # the demo bills some days wholly in hospital

    actions = _audit_actions()  # every decision audited once, in an unbroken chain
    assert actions["decision.eligibility"] == len(_decisions())
    assert actions["payment.batch"] == first["batches"]
    assert actions["billing.part"] >= 1

    run_demo("nanning", PERIOD, 7, size)
    assert _record() == rec
    assert _flags() == flags
    again = _audit_actions()
    assert again["decision.eligibility"] == actions["decision.eligibility"]  # nothing decided twice
    assert again["payment.batch"] == actions["payment.batch"]  # nothing paid twice
