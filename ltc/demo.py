"""A synthetic pooling area, generated from a seed, for the demo and the end-to-end tests.

Everything is derived from stable hashes of ids, so the same seed writes byte-identical files, and a second run
of the demo finds nothing new to do.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import select

from common.formatting import yuan
from rules.engine import Pack, load_pack, period_bounds, period_start
from rules.formulas import resolve
from rules.inputs import SCHEMAS
from storage import models as m
from storage.db import session_scope

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗梁韦覃莫蒙"
GIVEN = ["建国", "秀英", "桂兰", "志强", "丽华", "玉梅", "国华", "淑珍", "德明", "凤英", "少华", "海燕"]
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
    "student",
    "medical_premium_fully_subsidised",
    "retired_cadre",
    "disabled_veteran_grade",
    "village",
]


@dataclass(frozen=True)
class Profile:
    """What a synthetic population of a pooling area looks like: places, who is insured, which providers."""

    city: str
    region_code: str
    areas: tuple[str, ...]
    period: str
    dues: str  # "month", "year", or "both" (monthly for employees, yearly for residents)
    insurance_types: tuple[str, ...]
    provider_kinds: tuple[str, ...]
    care_modes: tuple[str, ...]
    overrides: str | None = None


EMPLOYEES = ("employee", "retiree", "retiree", "flexible", "employee", "unemployed")
EVERYONE = ("employee", "retiree", "resident", "resident", "flexible", "employee", "resident", "retiree")
PROFILES = {
    "nanning": Profile(
        "南宁市",
        "450103",
        ("青秀区", "兴宁区"),
        "2026-03",
        "month",
        EMPLOYEES,
        ("institution", "home_care"),
        ("institutional", "institutional", "home"),
    ),
    "banan": Profile(
        "重庆市巴南区",
        "500113",
        ("一片区", "二片区", "三片区"),
        "2026-04",
        "month",
        EMPLOYEES,
        ("institution", "carer_trained", "institution", "carer_untrained", "home_care"),
        ("institutional", "institutional", "home"),
    ),
    "beijing_shijingshan": Profile(
        "北京市石景山区",
        "110107",
        ("八宝山街道", "鲁谷街道"),
        "2026-03",
        "year",
        EVERYONE,
        ("institution", "community", "home_care"),
        ("institutional", "community", "home"),
    ),
    "jinjiang": Profile(
        "晋江市",
        "350582",
        ("青阳街道", "安海镇"),
        "2026-02",
        "year",
        EVERYONE,
        ("institution", "community", "home_care"),
        ("institutional", "community", "home"),
        overrides="demo-overrides.yaml",
    ),
    "jilin": Profile(
        "吉林省长春市",
        "220102",
        ("南关区", "朝阳区"),
        "2027-03",
        "both",
        EVERYONE,
        ("institution", "community", "home_care"),
        ("institutional", "community", "home"),
        overrides="demo-overrides.yaml",
    ),
}
MODE_PROVIDERS = {
    "institutional": {"institution", "mixed"},
    "community": {"community", "mixed"},
    "home": {"home_care", "mixed", "carer_trained", "carer_untrained"},
}
PROVIDER_NAMES = {
    "institution": "护理院",
    "home_care": "居家护理服务中心",
    "community": "社区日间照料中心",
    "mixed": "医养结合服务中心",
    "carer_trained": "护理员（已培训登记）",
    "carer_untrained": "护理员",
}


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
    """Write the file whole or not at all: into a file of its own beside it, then renamed over it, so that a demo
    started at the same time never reads it half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    with partial.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    os.replace(partial, path)
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


def _person(seed: int, i: int, jurisdiction: str, profile: Profile, on: dt.date) -> dict[str, Any]:
    pid = f"P{i:05d}"
    r = h(seed, pid)
    kind = profile.insurance_types[r // 13 % len(profile.insurance_types)]
    if r % 97 == 0:
        kind = "resident"
    young = kind == "resident" and r % 23 == 0
    birth = (
        dt.date(on.year - 5 - r % 12, 1 + r // 7 % 12, 1 + r // 11 % 28)
        if young
        else dt.date(1930 + r % 40, 1 + r // 7 % 12, 1 + r // 11 % 28)
    )
    area = profile.areas[r // 17 % len(profile.areas)]
    return {
        "person_id": pid,
        "name": SURNAMES[r % len(SURNAMES)] + GIVEN[r // 31 % len(GIVEN)],
        "id_number": id_number(profile.region_code, birth, i % 1000),
        "jurisdiction": jurisdiction,
        "area": area,
        "insurance_type": kind,
        "contribution_base": yuan(300000 + r // 19 % 900000),
        "birth_date": birth.isoformat(),
        "death_date": None,
        "work_injury_care_allowance": "true" if r % 89 == 0 else "false",
        "student": "true" if young and r % 2 else "false",
        "medical_premium_fully_subsidised": "true" if kind == "resident" and r % 19 == 0 else "false",
        "retired_cadre": "true" if kind == "retiree" and r % 53 == 0 else "false",
        "disabled_veteran_grade": 1 + r % 6 if r % 71 == 0 else None,
        "village": f"{area}第{1 + r // 29 % 5}社区" if kind == "resident" else None,
    }


def _persons_frame(persons: list[dict[str, Any]]) -> pl.DataFrame:
    """The rules' view of the generated persons (rules.inputs.SCHEMAS["persons"])."""
    rows = [
        {
            "person_id": p["person_id"],
            "insurance_type": p["insurance_type"],
            "contribution_base_fen": int(p["contribution_base"].replace(".", "")),
            "birth_date": dt.date.fromisoformat(p["birth_date"]),
            "death_date": None,
            "work_injury_care_allowance": p["work_injury_care_allowance"] == "true",
            "student": p["student"] == "true",
            "medical_premium_fully_subsidised": p["medical_premium_fully_subsidised"] == "true",
            "retired_cadre": p["retired_cadre"] == "true",
            "disabled_veteran_grade": p["disabled_veteran_grade"],
            "area": p["area"],
        }
        for p in persons
    ]
    return pl.DataFrame(rows, schema=SCHEMAS["persons"], orient="row")


def _contribution_periods(pack: Pack, period: str, dues: str) -> list[str]:
    """Up to 26 months and/or the years before the period, from the pack's start."""
    years = [str(y) for y in range(max(pack.valid_from.year, int(period[:4]) - 3), int(period[:4]) + 1)]
    months = [p for p in _months_before(period, 26) if p >= f"{pack.valid_from:%Y-%m}"]
    return {"year": years, "month": months, "both": years + months}[dues]


def registry_files(folder: Path, jurisdiction: str, period: str, size: DemoSize, seed: int) -> dict[str, Path]:
    """Persons, contributions, providers, agencies and applications, as the bureau's systems would send them."""
    pack = load_pack(jurisdiction)
    profile = PROFILES[jurisdiction]
    first, _ = period_bounds(period)
    persons = [_person(seed, i, jurisdiction, profile, first) for i in range(1, size.insured + 1)]
    files = {"persons": _write(folder / "persons.csv", PERSON_HEADER, persons)}
    # Contributions before the period, due by the pack's own formula; some members have gaps.
    frame = _persons_frame(persons)
    periods = _contribution_periods(pack, period, profile.dues)
    contributions = []
    for when in periods:
        long = resolve(pack, "contributions_due", period_start(when, pack))(frame, pack, when)
        due = long.group_by("person_id").agg(due_fen=pl.col("amount_fen").sum()).sort("person_id")
        for row in due.iter_rows(named=True):
            r = h(seed, row["person_id"], "gap")
            same_kind = [p for p in periods if len(p) == len(when)]
            gap_start = same_kind[r % len(same_kind)]
            gap_end = str(int(gap_start) + 1) if len(when) == 4 else _shift_months(gap_start, 16)
            missed = r % 5 == 0 and gap_start <= when <= gap_end
            paid_on = period_start(when, pack) + dt.timedelta(days=14)
            contributions.append(
                {
                    "person_id": row["person_id"],
                    "period": when,
                    "due": yuan(row["due_fen"]),
                    "paid": yuan(0 if missed else row["due_fen"]),
                    "paid_on": None if missed else paid_on.isoformat(),
                }
            )
    files["contributions"] = _write(
        folder / "contributions.csv", ["person_id", "period", "due", "paid", "paid_on"], contributions
    )
    providers: list[dict[str, Any]] = []
    for i in range(1, size.providers + 1):
        kind = profile.provider_kinds[(i - 1) % len(profile.provider_kinds)]
        providers.append(
            {
                "provider_id": f"H{i:03d}",
                "name": f"{profile.city}第{i}{PROVIDER_NAMES[kind]}",
                "jurisdiction": jurisdiction,
                "kind": kind,
                "contract_start": pack.valid_from.isoformat(),
                "contract_end": None,
                "status": "active",
                "bank_account": f"62220200{h(seed, 'bank', i) % 10**10:010d}",
            }
        )
    files["providers"] = _write(folder / "providers.csv", list(providers[0]), providers)
    agencies = [
        {
            "agency_id": f"AG{i:02d}",
            "name": f"{profile.city}失能评估中心第{i}所",
            "jurisdiction": jurisdiction,
            "area": profile.areas[(i - 1) % len(profile.areas)],
            "capacity_per_day": 6 + 3 * (i % 2),
        }
        for i in range(1, max(size.agencies, len(profile.areas)) + 1)
    ]
    files["agencies"] = _write(folder / "agencies.csv", list(agencies[0]), agencies)
    # Six assessors an agency; the first assessor of the first agency has ties to the first provider.
    assessors = [
        {
            "assessor_id": f"{a['agency_id']}-E{k}",
            "agency_id": a["agency_id"],
            "name": SURNAMES[h(seed, a["agency_id"], k) % len(SURNAMES)] + GIVEN[k % len(GIVEN)],
            "active": "true",
            "linked_providers": providers[0]["provider_id"] if (i, k) == (0, 1) else "",
        }
        for i, a in enumerate(agencies)
        for k in range(1, 7)
    ]
    files["assessors"] = _write(folder / "assessors.csv", list(assessors[0]), assessors)
    applications: list[dict[str, Any]] = []
    app_month = _shift_months(period, -2)
    chosen = sorted(persons, key=lambda p: h(seed, p["person_id"], "apply"))[: size.applicants]
    modes = [mo for mo in profile.care_modes if any(x["kind"] in MODE_PROVIDERS[mo] for x in providers)]
    for n, p in enumerate(sorted(chosen, key=lambda p: p["person_id"]), start=1):
        r = h(seed, p["person_id"], "app")
        received = dt.date.fromisoformat(f"{app_month}-01") + dt.timedelta(days=r % 20)
        mode = modes[r % len(modes)]
        prov = [x for x in providers if x["kind"] in MODE_PROVIDERS[mode]]
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
            select(
                m.Assessment.application_id,
                m.Assessment.agency_id,
                m.Assessment.scheduled_on,
                m.Assessment.assessor_ids,
            )
            .join(m.Application, m.Application.application_id == m.Assessment.application_id)
            .join(m.Person, m.Person.person_id == m.Application.person_id)
            .where(m.Person.jurisdiction == jurisdiction)
            .order_by(m.Assessment.application_id)
        ).all()
    rows = []
    for app_id, agency_id, day, assessor_ids in visits:
        r = h(seed, app_id, "grade")
        rows.append(
            {
                "application_id": app_id,
                "agency_id": agency_id,
                "visited_on": day.isoformat(),
                "grade": [5, 4, 4, 3, 3, 2, 1, 5, 4, 3][r % 10],
                "published_on": (day + dt.timedelta(days=7)).isoformat(),
                "fee": yuan(20000 + 5000 * (r // 10 % 4)),
                "assessor_ids": assessor_ids,
                "adl_score": 5 * (r // 40 % 21),
                "cognition_score": r // 7 % 17,
                "perception_score": r // 3 % 13,
            }
        )
    header = [
        "application_id",
        "agency_id",
        "visited_on",
        "grade",
        "published_on",
        "fee",
        "assessor_ids",
        "adl_score",
        "cognition_score",
        "perception_score",
    ]
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
            # A reported death: the register's row for the person, now with a death date.
            deaths.append(
                {
                    "person_id": p.person_id,
                    "name": p.name,
                    "id_number": p.id_number,
                    "jurisdiction": p.jurisdiction,
                    "area": p.area,
                    "insurance_type": p.insurance_type,
                    "contribution_base": yuan(p.contribution_base_fen),
                    "death_date": death.isoformat(),
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
            if mode == "institutional" or (mode == "community" and day.weekday() < 5):
                # A bed-day or a day-care day, with its cost (per-diem packs pay their rate instead).
                care.append(
                    {
                        "person_id": person_id,
                        "provider_id": provider_id,
                        "period": period,
                        "care_date": day.isoformat(),
                        "care_mode": mode,
                        "item_code": "",
                        "amount": yuan(8000 + h(seed, person_id, day, "cost") % 12000),
                    }
                )
            elif mode == "home" and h(seed, person_id, day) % 5 < 2:
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
    files["deaths"] = _write(folder / f"deaths_{period}.csv", [*PERSON_HEADER[:7], "death_date"], deaths)
    return files
