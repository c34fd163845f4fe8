"""A synthetic pooling area, generated from a seed, for the demo and the end-to-end tests.

Everything is derived from stable hashes of ids, so the same seed writes byte-identical files, and a second run
of the demo finds nothing new to do.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import select

from ltc.formatting import yuan
from rules.engine import load_pack, period_bounds
from rules.formulas import resolve
from rules.inputs import SCHEMAS
from storage import models as m
from storage.db import session_scope

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗梁韦覃莫蒙"
GIVEN = ["建国", "秀英", "桂兰", "志强", "丽华", "玉梅", "国华", "淑珍", "德明", "凤英", "少华", "海燕"]
AREAS = ["青秀区", "兴宁区"]
ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
ID_CHECK = "10X98765432"
PERSON_HEADER = [
    "person_id",
    "name",
    "id_number",
    "jurisdiction",
    "area",
    "insurance_type",
    "contribution_base",
    "birth_date",
    "death_date",
    "work_injury_care_allowance",
]


@dataclass(frozen=True)
class DemoSize:
    insured: int = 2000
    applicants: int = 200
    providers: int = 5
    agencies: int = 2


def h(*parts: Any) -> int:
    """A stable pseudo-random number from the parts (same on every machine and run)."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big")


def id_number(region: str, birth: dt.date, seq: int) -> str:
    body = f"{region}{birth:%Y%m%d}{seq:03d}"
    return body + ID_CHECK[sum(int(c) * w for c, w in zip(body, ID_WEIGHTS, strict=True)) % 11]


def _write(path: Path, header: list[str], rows: Iterable[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return path


def _months_before(period: str, n: int) -> list[str]:
    y, mo = (int(x) for x in period.split("-"))
    out = []
    for _ in range(n):
        mo -= 1
        if mo == 0:
            y, mo = y - 1, 12
        out.append(f"{y:04d}-{mo:02d}")
    return sorted(out)


def _shift_months(period: str, n: int) -> str:
    y, mo = (int(x) for x in period.split("-"))
    total = y * 12 + (mo - 1) + n
    return f"{total // 12:04d}-{total % 12 + 1:02d}"


def registry_files(folder: Path, jurisdiction: str, period: str, size: DemoSize, seed: int) -> dict[str, Path]:
    """Persons, contributions, providers, agencies and applications, as the bureau's systems would send them."""
    pack = load_pack(jurisdiction)
    first, _ = period_bounds(period)
    persons: list[dict[str, Any]] = []
    for i in range(1, size.insured + 1):
        pid = f"P{i:05d}"
        r = h(seed, pid)
        birth = dt.date(1930 + r % 40, 1 + r // 7 % 12, 1 + r // 11 % 28)
        kind = ["employee", "retiree", "retiree", "flexible", "employee", "unemployed"][r // 13 % 6]
        if r % 97 == 0:
            kind = "resident"
        persons.append(
            {
                "person_id": pid,
                "name": SURNAMES[r % len(SURNAMES)] + GIVEN[r // 31 % len(GIVEN)],
                "id_number": id_number("450103", birth, i % 1000),
                "jurisdiction": jurisdiction,
                "area": AREAS[r // 17 % len(AREAS)],
                "insurance_type": kind,
                "contribution_base": yuan(300000 + r // 19 % 900000),
                "birth_date": birth.isoformat(),
                "death_date": None,
                "work_injury_care_allowance": "true" if r % 89 == 0 else "false",
            }
        )
    files = {
        "persons": _write(folder / "persons.csv", PERSON_HEADER, persons),
    }
    # Contributions: 26 months before the period, due by the pack's own formula; some members have gaps.
    frame = pl.DataFrame(
        [
            {
                **{c: None for c in SCHEMAS["persons"]},
                "person_id": p["person_id"],
                "insurance_type": p["insurance_type"],
                "contribution_base_fen": int(p["contribution_base"].replace(".", "")),
                "work_injury_care_allowance": p["work_injury_care_allowance"] == "true",
                "student": False,
                "medical_premium_fully_subsidised": False,
                "retired_cadre": False,
            }
            for p in persons
        ],
        schema=SCHEMAS["persons"],
        orient="row",
    )
    contributions = []
    start = max(pack.valid_from, first.replace(year=first.year - 3))
    months = [p for p in _months_before(period, 26) if p >= f"{start:%Y-%m}"]
    for month in months:
        long = resolve(pack, "contributions_due", period_bounds(month)[0])(frame, pack, month)
        due = long.group_by("person_id").agg(due_fen=pl.col("amount_fen").sum()).sort("person_id")
        for row in due.iter_rows(named=True):
            r = h(seed, row["person_id"], "gap")
            gap_start = months[r % len(months)]
            missed = r % 5 == 0 and gap_start <= month <= _shift_months(gap_start, 16)
            contributions.append(
                {
                    "person_id": row["person_id"],
                    "period": month,
                    "due": yuan(row["due_fen"]),
                    "paid": yuan(0 if missed else row["due_fen"]),
                    "paid_on": None if missed else f"{month}-15",
                }
            )
    files["contributions"] = _write(
        folder / "contributions.csv", ["person_id", "period", "due", "paid", "paid_on"], contributions
    )
    providers: list[dict[str, Any]] = []
    for i in range(1, size.providers + 1):
        kind = "institution" if i % 2 else "home_care"
        providers.append(
            {
                "provider_id": f"H{i:03d}",
                "name": f"南宁市第{i}{'护理院' if kind == 'institution' else '居家护理服务中心'}",
                "jurisdiction": jurisdiction,
                "kind": kind,
                "contract_start": "2024-01-01",
                "contract_end": None,
                "status": "active",
                "bank_account": f"62220200{h(seed, 'bank', i) % 10**10:010d}",
            }
        )
    files["providers"] = _write(folder / "providers.csv", list(providers[0]), providers)
    agencies = [
        {
            "agency_id": f"AG{i:02d}",
            "name": f"南宁市失能评估中心第{i}所",
            "jurisdiction": jurisdiction,
            "area": AREAS[(i - 1) % len(AREAS)],
            "capacity_per_day": 6 + 3 * (i % 2),
        }
        for i in range(1, size.agencies + 1)
    ]
    files["agencies"] = _write(folder / "agencies.csv", list(agencies[0]), agencies)
    applications: list[dict[str, Any]] = []
    app_month = _shift_months(period, -2)
    chosen = sorted(persons, key=lambda p: h(seed, p["person_id"], "apply"))[: size.applicants]
    for n, p in enumerate(sorted(chosen, key=lambda p: p["person_id"]), start=1):
        r = h(seed, p["person_id"], "app")
        received = dt.date.fromisoformat(f"{app_month}-01") + dt.timedelta(days=r % 20)
        mode = "institutional" if r % 3 else "home"
        prov = [x for x in providers if (x["kind"] == "institution") == (mode == "institutional")]
        applications.append(
            {
                "application_id": f"A{n:05d}",
                "person_id": p["person_id"],
                "received_on": received.isoformat(),
                "disabled_since": (received - dt.timedelta(days=90 + r // 7 % 900)).isoformat(),
                "care_mode": mode,
                "provider_id": prov[r // 5 % len(prov)]["provider_id"],
            }
        )
    files["applications"] = _write(folder / "applications.csv", list(applications[0]), applications)
    return files


def results_file(folder: Path, jurisdiction: str, seed: int) -> Path:
    """What the agencies send back for the visits scheduled so far: a grade for each, published a week later."""
    with session_scope() as s:
        visits = s.execute(
            select(m.Assessment.application_id, m.Assessment.agency_id, m.Assessment.scheduled_on)
            .join(m.Application, m.Application.application_id == m.Assessment.application_id)
            .join(m.Person, m.Person.person_id == m.Application.person_id)
            .where(m.Person.jurisdiction == jurisdiction)
            .order_by(m.Assessment.application_id)
        ).all()
    rows = []
    for app_id, agency_id, day in visits:
        r = h(seed, app_id, "grade")
        rows.append(
            {
                "application_id": app_id,
                "agency_id": agency_id,
                "visited_on": day.isoformat(),
                "grade": [5, 4, 4, 3, 3, 2, 1, 5, 4, 3][r % 10],
                "published_on": (day + dt.timedelta(days=7)).isoformat(),
            }
        )
    header = ["application_id", "agency_id", "visited_on", "grade", "published_on"]
    return _write(folder / "assessment_results.csv", header, rows)


def month_files(folder: Path, jurisdiction: str, period: str, seed: int) -> dict[str, Path]:
    """The period's care days from providers (with a few bad rows), hospital stays and reported deaths."""
    first, last = period_bounds(period)
    with session_scope() as s:
        apps = s.execute(
            select(m.Application.person_id, m.Application.provider_id, m.Application.care_mode)
            .join(m.Person, m.Person.person_id == m.Application.person_id)
            .where(m.Person.jurisdiction == jurisdiction, m.Application.status == "decided")
            .order_by(m.Application.person_id)
        ).all()
        persons = {p.person_id: p for p in s.scalars(select(m.Person).where(m.Person.jurisdiction == jurisdiction))}
    care, stays, deaths = [], [], []
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    for person_id, provider_id, mode in apps:
        r = h(seed, person_id, period)
        death = days[r // 3 % len(days)] if r % 40 == 0 else None
        if death:
            p = persons[person_id]
            deaths.append(
                {
                    "person_id": p.person_id,
                    "name": p.name,
                    "id_number": p.id_number,
                    "jurisdiction": p.jurisdiction,
                    "area": p.area,
                    "insurance_type": p.insurance_type,
                    "contribution_base": yuan(p.contribution_base_fen),
                    "birth_date": p.birth_date.isoformat() if p.birth_date else None,
                    "death_date": death.isoformat(),
                    "work_injury_care_allowance": "true" if p.work_injury_care_allowance else "false",
                }
            )
        if r % 12 == 1:
            admitted = days[r // 5 % (len(days) - 3)]
            stays.append(
                {
                    "person_id": person_id,
                    "admitted_on": admitted.isoformat(),
                    "discharged_on": (admitted + dt.timedelta(days=2 + r // 7 % 6)).isoformat(),
                }
            )
        for day in days:
            # Providers bill every day of care they gave; some keep billing after a death (caught by billing).
            if death and day > death and r % 2:
                continue
            if mode == "institutional":
                care.append(
                    {
                        "person_id": person_id,
                        "provider_id": provider_id,
                        "period": period,
                        "care_date": day.isoformat(),
                        "care_mode": mode,
                        "item_code": "",
                        "amount": "0.00",
                    }
                )
            elif h(seed, person_id, day) % 5 < 2:
                care.append(
                    {
                        "person_id": person_id,
                        "provider_id": provider_id,
                        "period": period,
                        "care_date": day.isoformat(),
                        "care_mode": mode,
                        "item_code": f"JJ{1 + h(seed, person_id, day, 'item') % 9:02d}",
                        "amount": yuan(6000 + h(seed, person_id, day, "amt") % 20000),
                    }
                )
    if care:
        bad = dict(care[0])
        care += [
            {**bad, "person_id": "P99999"},
            {**bad, "care_date": (last + dt.timedelta(days=1)).isoformat()},
            {**bad, "care_date": f"{period}-3x"},
            {**bad, "care_mode": "home", "item_code": "JJ01", "amount": "-50.00"},
        ]
    header = ["person_id", "provider_id", "period", "care_date", "care_mode", "item_code", "amount"]
    files = {"care_days": _write(folder / f"care_days_{period}.csv", header, care)}
    files["hospital_stays"] = _write(
        folder / f"hospital_stays_{period}.csv", ["person_id", "admitted_on", "discharged_on"], stays
    )
    files["deaths"] = _write(folder / f"deaths_{period}.csv", PERSON_HEADER, deaths)
    return files
