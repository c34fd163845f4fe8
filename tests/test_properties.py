"""Invariants of every pack's billing over random months (hypothesis): fund + personal = gross; nothing paid in
hospital, after death, before the start or from a provider that was not designated, and each such day named in
the line's excluded date ranges with its reason; the fund never pays more
than a line is worth, nor above the documents' caps; the same inputs (in any order) give the same output; all
money is integer fen."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ltc.demo import PROFILES
from rules.engine import PACKS_DIR, Pack, _load_pack, pack_ids, period_bounds
from rules.formulas import resolve
from rules.inputs import CARE_MODES, OUTPUT_CLAIMS, PROVIDER_KINDS, SCHEMAS
from tasks.billing import split_by_person
from tasks.schemas import Claims

MONEY = [c for c, t in OUTPUT_CLAIMS.items() if c.endswith("_fen")]


def _pack(pack_id: str) -> Pack:
    demo = PROFILES[pack_id].overrides
    return _load_pack(pack_id, str(PACKS_DIR / pack_id / demo) if demo else None)


@st.composite
def months(draw: Any, pack_id: str) -> tuple[dict[str, pl.DataFrame], str]:
    period = PROFILES[pack_id].period
    first, last = period_bounds(period)
    n_days = (last - first).days + 1
    day = st.integers(0, n_days - 1).map(lambda i: first + dt.timedelta(days=i))
    people = [f"P{i}" for i in range(draw(st.integers(1, 4)))]
    providers = [
        {
            "provider_id": f"H{i}",
            "kind": draw(st.sampled_from(PROVIDER_KINDS)),
            "status": draw(st.sampled_from(["active", "active", "active", "suspended"])),
            "contract_start": first - dt.timedelta(days=draw(st.integers(-10, 400))),
            "contract_end": draw(st.one_of(st.none(), day)),
        }
        for i in range(draw(st.integers(1, 3)))
    ]
    persons, ents, stays, care, contributions = [], [], [], [], []
    for p in people:
        persons.append(
            {
                **{c: None for c in SCHEMAS["persons"]},
                "person_id": p,
                "insurance_type": draw(st.sampled_from(["employee", "retiree", "resident"])),
                "contribution_base_fen": 500000,
                "birth_date": dt.date(1945, 5, 5),
                "death_date": draw(st.one_of(st.none(), st.none(), day)),
                "work_injury_care_allowance": False,
                "student": False,
                "medical_premium_fully_subsidised": False,
                "retired_cadre": False,
                "area": "",
            }
        )
        if draw(st.integers(0, 4)):
            ents.append(
                {
                    "person_id": p,
                    "grade": draw(st.integers(3, 5)),
                    "start_date": first - dt.timedelta(days=draw(st.integers(-20, 200))),
                    "end_date": None,
                }
            )
        for _ in range(draw(st.integers(0, 2))):
            a = draw(day)
            stays.append(
                {
                    "person_id": p,
                    "admitted_on": a,
                    "discharged_on": draw(
                        st.one_of(st.none(), st.integers(0, 9).map(lambda k, a=a: a + dt.timedelta(k)))
                    ),
                    "kind": draw(st.sampled_from(["inpatient", "emergency_observation"])),
                }
            )
        for y in range(first.year - 6, first.year + 1):
            for mo in range(1, 13):
                contributions.append(
                    {
                        "person_id": p,
                        "period": f"{y}-{mo:02d}",
                        "due_fen": 1250,
                        "paid_fen": 1250,
                        "paid_on": dt.date(y, mo, 10),
                    }
                )
        for prov in providers:
            if not draw(st.booleans()):
                continue
            mode = draw(st.sampled_from(CARE_MODES))
            for d in sorted(set(draw(st.lists(day, min_size=1, max_size=n_days)))):
                care.append(
                    {
                        "person_id": p,
                        "provider_id": prov["provider_id"],
                        "care_date": d,
                        "care_mode": mode,
                        "item_code": "",
                        "amount_fen": draw(st.integers(0, 40000)),
                    }
                )
    rows = {
        "persons": persons,
        "entitlements": ents,
        "stays": stays,
        "care": care,
        "providers": providers,
        "contributions": [c for c in contributions if c["period"] < period],
        "ytd": [],
    }
    frames = {k: pl.DataFrame(v, schema=SCHEMAS[k], orient="row") for k, v in rows.items()}
    return frames, period


def _never_paid(inputs: dict[str, pl.DataFrame]) -> dict[tuple[str, str, str], int]:
    """Per line, how many days no pack may pay."""
    return {k: len(v) for k, v in _never_paid_days(inputs).items()}


def _never_paid_days(inputs: dict[str, pl.DataFrame]) -> dict[tuple[str, str, str], set[dt.date]]:
    """Per line, the days no pack may pay, worked out here from the inputs alone."""
    death = {r["person_id"]: r["death_date"] for r in inputs["persons"].to_dicts()}
    start = {r["person_id"]: r["start_date"] for r in inputs["entitlements"].to_dicts()}
    stays = inputs["stays"].to_dicts()
    prov = {r["provider_id"]: r for r in inputs["providers"].to_dicts()}
    out: dict[tuple[str, str, str], set[dt.date]] = {}
    for c in inputs["care"].to_dicts():
        d, p, pv = c["care_date"], c["person_id"], prov[c["provider_id"]]
        bad = (
            (death[p] is not None and d > death[p])
            or p not in start
            or d < start[p]
            or pv["status"] != "active"
            or d < pv["contract_start"]
            or (pv["contract_end"] is not None and d > pv["contract_end"])
            or any(
                s["person_id"] == p
                and s["kind"] == "inpatient"
                and s["admitted_on"] < d
                and (s["discharged_on"] is None or d < s["discharged_on"])
                for s in stays
            )
        )
        if bad:
            out.setdefault((p, c["provider_id"], c["care_mode"]), set()).add(d)
    return out


def _check_excluded_ranges(inputs: dict[str, pl.DataFrame], out: pl.DataFrame, period: str) -> None:
    """Each line's excluded ranges are its dates not paid, exactly: runs of submitted care dates of one reason,
    in date order, maximal, inside the period, adding up to the days excluded (and by reason to `exclusions`),
    and holding every day no pack may pay."""
    first, last = period_bounds(period)
    submitted: dict[tuple[str, str, str], set[dt.date]] = {}
    for c in inputs["care"].to_dicts():
        submitted.setdefault((c["person_id"], c["provider_id"], c["care_mode"]), set()).add(c["care_date"])
    never = _never_paid_days(inputs)
    for r in out.iter_rows(named=True):
        key = (r["person_id"], r["provider_id"], r["care_mode"])
        ranges = r["excluded_ranges"]
        dates: list[dt.date] = []
        by_reason: dict[str, int] = {}
        for x in ranges:
            span = [x["from"] + dt.timedelta(days=i) for i in range((x["to"] - x["from"]).days + 1)]
            assert x["days"] == len(span) and first <= x["from"] <= x["to"] <= last, (key, x)
            dates += span
            by_reason[x["reason"]] = by_reason.get(x["reason"], 0) + x["days"]
        assert dates == sorted(set(dates)), (key, ranges)  # in date order, never overlapping
        assert len(dates) == r["days_excluded"] and set(dates) <= submitted[key], (key, ranges)
        assert by_reason == {e["reason"]: e["days"] for e in r["exclusions"]}, (key, ranges)
        assert never.get(key, set()) <= set(dates), (key, ranges)
        for a, b in itertools.pairwise(ranges):  # maximal: one reason's run is one range
            assert not (a["reason"] == b["reason"] and b["from"] == a["to"] + dt.timedelta(days=1)), (key, ranges)


# The documents' own ceilings, as a reader of the clauses would use them by hand: Nanning 南府规〔2023〕26号
# 三(三)3(2) home care quota 1850 a month; Beijing 京医保发〔2020〕30号 三(五) 3000 a month x 70%; Banan
# 巴南府办发〔2019〕7号 三(二)4 at most 50 a day.
CAPS_PER_PERSON_MONTH = {"nanning_home": 185000, "beijing_shijingshan": 210000}
BANAN_MAX_DAILY_FEN = 5000


@pytest.mark.parametrize("pack_id", pack_ids())
def test_billing_invariants(pack_id: str) -> None:
    pack = _pack(pack_id)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(months(pack_id))
    def check(month: tuple[dict[str, pl.DataFrame], str]) -> None:
        inputs, period = month
        bill = resolve(pack, "bill", period_bounds(period)[0])
        out = bill(inputs, pack, period)
        Claims.validate(out)  # days add up; payable + personal = gross; nothing negative
        assert all(out.schema[c] == pl.Int64 for c in MONEY)
        assert (out["payable_fen"] <= out["gross_fen"]).all()
        never = _never_paid(inputs)
        for r in out.iter_rows(named=True):
            key = (r["person_id"], r["provider_id"], r["care_mode"])
            assert r["days_paid"] <= r["days_submitted"] - never.get(key, 0), (key, r)
        _check_excluded_ranges(inputs, out, period)
        if pack_id == "nanning":
            home = out.filter(pl.col("care_mode") == "home").group_by("person_id").agg(pl.col("payable_fen").sum())
            assert (home["payable_fen"] <= CAPS_PER_PERSON_MONTH["nanning_home"]).all()
        if pack_id == "beijing_shijingshan":
            per = out.group_by("person_id").agg(pl.col("payable_fen").sum())
            assert (per["payable_fen"] <= CAPS_PER_PERSON_MONTH["beijing_shijingshan"]).all()
        if pack_id == "banan":
            assert (out["payable_fen"] <= out["days_paid"] * BANAN_MAX_DAILY_FEN).all()
        shuffled = {k: v.sample(fraction=1.0, shuffle=True, seed=1) for k, v in inputs.items()}
        assert bill(shuffled, pack, period).equals(out)
        # Billed in parts of whole persons (as bill_month does at scale), the month comes out the same.
        parts = [bill(part, pack, period) for part in split_by_person(inputs, 3)]
        assert pl.concat(parts).sort("person_id", "provider_id", "care_mode").equals(out)

    check()
