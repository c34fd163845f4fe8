"""Billing on sets of days (`rules.daysets`): the sets themselves on hand-worked dates, and Nanning's billing on
sets equal, to the fen and in every column, to the same rules written on one row per care day
(`tests/nanning_by_day.py`) over random months that stress what sets make easy to get wrong: several
entitlements a person (a regrading, an end, a later start), stays over the month's edges, a rate that changes
mid-month, a partial-month quota, 28- to 31-day months, several items a day, undesignated and contract-bound
providers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import daysets as ds
from rules.engine import pack_with, period_bounds
from rules.inputs import CARE_MODES, PROVIDER_KINDS, SCHEMAS
from rules.packs.nanning.formulas import bill
from tests import nanning_by_day

MARCH = (dt.date(2026, 3, 1), dt.date(2026, 3, 31))
FEBRUARY = (dt.date(2026, 2, 1), dt.date(2026, 2, 28))


def _days(expr: pl.Expr, month: tuple[dt.date, dt.date] = MARCH) -> list[int]:
    """The day numbers of the month a set holds."""
    value = pl.select(expr).item()
    first, last = month
    return [k + 1 for k in range((last - first).days + 1) if value >> k & 1]


def _d(s: str) -> pl.Expr:
    return pl.lit(dt.date.fromisoformat(s))


def test_span_holds_both_ends_and_is_cut_to_the_month() -> None:
    assert _days(ds.span(_d("2026-03-05"), _d("2026-03-07"), *MARCH)) == [5, 6, 7]
    assert _days(ds.span(_d("2026-02-20"), _d("2026-03-02"), *MARCH)) == [1, 2]
    assert _days(ds.span(_d("2026-03-30"), pl.lit(None, dtype=pl.Date), *MARCH)) == [30, 31]
    assert _days(ds.span(_d("2026-02-27"), pl.lit(None, dtype=pl.Date), *FEBRUARY), FEBRUARY) == [27, 28]
    assert pl.select(ds.span(_d("2026-03-30"), pl.lit(None, dtype=pl.Date), *FEBRUARY)).item() == 0


def test_span_is_empty_when_it_ends_before_it_starts_or_misses_the_month() -> None:
    assert pl.select(ds.span(_d("2026-03-08"), _d("2026-03-07"), *MARCH)).item() == 0
    assert pl.select(ds.span(_d("2026-01-01"), _d("2026-02-28"), *MARCH)).item() == 0
    assert pl.select(ds.span(_d("2026-04-01"), _d("2026-04-30"), *MARCH)).item() == 0


def test_count_and_last_day() -> None:
    days = ds.span(_d("2026-03-03"), _d("2026-03-09"), *MARCH) | ds.bit(_d("2026-03-31"), MARCH[0])
    assert pl.select(ds.count(days)).item() == 8
    assert pl.select(ds.last_day(days)).item() == 30  # bit 30: the 31st
    assert pl.select(ds.last_day(pl.lit(0, dtype=pl.Int64))).item() is None


def test_dated_segments_split_the_month_where_a_value_changes() -> None:
    series = pl.DataFrame(
        {
            "key": ["grade_4", "grade_4", "grade_4", "grade_5"],
            "effective_from": [dt.date(2024, 1, 1), dt.date(2026, 3, 16), dt.date(2026, 4, 1), dt.date(2024, 1, 1)],
            "rate_fen": [6200, 7000, 7100, 6600],
        }
    )
    got = ds.dated_segments(series, "rate_fen", *MARCH)
    by = {(r["key"], r["rate_fen"]): _days(pl.lit(r["days"], dtype=pl.Int64)) for r in got.to_dicts()}
    assert by == {
        ("grade_4", 6200): list(range(1, 16)),
        ("grade_4", 7000): list(range(16, 32)),
        ("grade_5", 6600): list(range(1, 32)),
    }


PERIODS = ["2024-02", "2026-02", "2026-03", "2026-04"]


@st.composite
def months(draw: Any) -> tuple[dict[str, pl.DataFrame], str, dt.date | None, str]:
    period = draw(st.sampled_from(PERIODS))
    first, last = period_bounds(period)
    n = (last - first).days + 1
    near = st.integers(-40, n + 10).map(lambda k: first + dt.timedelta(days=k))
    inside = st.integers(0, n - 1).map(lambda k: first + dt.timedelta(days=k))
    before = st.integers(1, 400).map(lambda k: first - dt.timedelta(days=k))
    providers = []
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["institution", "institution", "mixed", *PROVIDER_KINDS]))
        if draw(st.booleans()):  # designated all month
            providers.append({"provider_id": f"H{i}", "kind": kind, "status": "active", "contract_start": first})
            continue
        providers.append(
            {
                "provider_id": f"H{i}",
                "kind": kind,
                "status": draw(st.sampled_from(["active"] * 5 + ["suspended"])),
                "contract_start": draw(st.one_of(before, near, st.none())),
                "contract_end": draw(st.one_of(st.none(), near)),
            }
        )
    persons, ents, stays, care = [], [], [], []
    for i in range(draw(st.integers(1, 5))):
        p = f"P{i}"
        persons.append(
            {
                **{c: None for c in SCHEMAS["persons"]},
                "person_id": p,
                "death_date": draw(st.one_of(st.none(), st.none(), st.none(), near)),
            }
        )
        for _ in range(draw(st.sampled_from([1, 1, 2, 3, 0]))):
            ents.append(
                {
                    "person_id": p,
                    "grade": draw(st.sampled_from([3, 4, 5, 3, 4, 5, 0, 2])),
                    "start_date": draw(st.one_of(before, before, near)),
                    "end_date": draw(st.one_of(st.none(), st.none(), near)),
                }
            )
        for _ in range(draw(st.integers(0, 2))):
            a = draw(near)
            stays.append(
                {
                    "person_id": p,
                    "admitted_on": a,
                    "discharged_on": draw(
                        st.one_of(st.none(), st.integers(0, 20).map(lambda k, a=a: a + dt.timedelta(k)))
                    ),
                    "kind": draw(st.sampled_from(["inpatient", "emergency_observation"])),
                }
            )
        for prov in providers:
            for mode in draw(st.sets(st.sampled_from(CARE_MODES), max_size=2)):
                for d in draw(st.lists(inside, min_size=1, max_size=n)):
                    care.append(
                        {
                            "person_id": p,
                            "provider_id": prov["provider_id"],
                            "care_date": d,
                            "care_mode": mode,
                            "item_code": "",
                            "amount_fen": draw(st.integers(0, 90000)),
                        }
                    )
    providers = [{"contract_end": None, **p} for p in providers]
    rows = {"persons": persons, "entitlements": ents, "stays": stays, "care": care, "providers": providers}
    frames = {k: pl.DataFrame(v, schema=SCHEMAS[k], orient="row") for k, v in rows.items()}
    frames["ytd"] = pl.DataFrame(schema=SCHEMAS["ytd"])
    change = draw(st.one_of(st.none(), inside))
    quota = draw(st.sampled_from(["full", "prorate"]))
    return frames, period, change, quota


def _variant(change: dt.date | None, quota: str) -> Any:
    """Nanning with the quota's partial-month rule set, and the grade-4 rate changed from `change` if given."""
    cite = {"reference": "tests/test_daysets.py", "source": "operator"}
    values: dict[str, Any] = {"billing.home_quota_partial_month": {"values": {"2024-01-01": {"value": quota, **cite}}}}
    if change is not None:
        values["billing.institutional_daily_rate.grade_4"] = {"values": {change.isoformat(): {"value": 70.5, **cite}}}
    return pack_with("nanning", values, "tests/test_daysets.py")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(months())
def test_nanning_on_sets_of_days_equals_nanning_day_by_day(month: tuple[Any, str, dt.date | None, str]) -> None:
    inputs, period, change, quota = month
    pack = _variant(change, quota)
    by_day = nanning_by_day.bill(inputs, pack, period)
    on_sets = bill(inputs, pack, period)
    assert on_sets.equals(by_day), (on_sets.to_dicts(), by_day.to_dicts())


@pytest.mark.parametrize("period", ["2026-03"])
def test_a_rate_changed_mid_month_pays_each_day_at_its_own_rate(period: str) -> None:
    """三(三)3(2) grade 4 at 62 yuan a day, a variant at 70.50 from the 16th: 15 days at 62 and 16 at 70.50 =
    930.00 + 1128.00 = 2058.00 yuan for a whole March in an institution."""
    first, last = period_bounds(period)
    inputs = {
        "persons": pl.DataFrame(
            [{c: None for c in SCHEMAS["persons"]} | {"person_id": "P1"}], schema=SCHEMAS["persons"]
        ),
        "entitlements": pl.DataFrame(
            [{"person_id": "P1", "grade": 4, "start_date": dt.date(2025, 1, 1), "end_date": None}],
            schema=SCHEMAS["entitlements"],
            orient="row",
        ),
        "stays": pl.DataFrame(schema=SCHEMAS["stays"]),
        "providers": pl.DataFrame(
            [{"provider_id": "H1", "kind": "institution", "status": "active", "contract_start": dt.date(2024, 1, 1)}],
            schema=SCHEMAS["providers"],
        ),
        "care": pl.DataFrame(
            [
                {
                    "person_id": "P1",
                    "provider_id": "H1",
                    "care_date": first + dt.timedelta(days=k),
                    "care_mode": "institutional",
                    "item_code": "",
                    "amount_fen": 0,
                }
                for k in range((last - first).days + 1)
            ],
            schema=SCHEMAS["care"],
        ),
        "ytd": pl.DataFrame(schema=SCHEMAS["ytd"]),
    }
    line = bill(inputs, _variant(dt.date(2026, 3, 16), "full"), period).to_dicts()[0]
    assert (line["days_paid"], line["gross_fen"], line["payable_fen"]) == (31, 15 * 6200 + 16 * 7050, 205800)
