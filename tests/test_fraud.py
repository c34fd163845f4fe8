"""The named fraud checks (rules/fraud.yaml, 医疗保障基金使用监督管理条例), case by case on small frames: each check
flags what it names and nothing next to it."""

from __future__ import annotations

import datetime as dt

import polars as pl

from rules.fraud import BILLING_RULES, catalogue, counts, fraud_flags
from rules.inputs import SCHEMAS

D = dt.date


def _frames(
    care: list[tuple[str, str, dt.date, str]],
    deaths: dict[str, dt.date] | None = None,
    stays: list[tuple[str, dt.date, dt.date | None, str]] | None = None,
    providers: list[tuple[str, str, dt.date, dt.date | None]] | None = None,
) -> dict[str, pl.DataFrame]:
    persons = sorted({c[0] for c in care})
    deaths = deaths or {}
    return {
        "care": pl.DataFrame(
            [(p, h, d, "home", item, 1000) for p, h, d, item in care],
            schema=SCHEMAS["care"],
            orient="row",
        ),
        "persons": pl.DataFrame({"person_id": persons, "death_date": [deaths.get(p) for p in persons]}).cast(
            {"death_date": pl.Date}
        ),
        "stays": pl.DataFrame(stays or [], schema=SCHEMAS["stays"], orient="row"),
        "providers": pl.DataFrame(
            [(h, "home_care", s, a, b) for h, s, a, b in (providers or [("H1", "active", D(2020, 1, 1), None)])],
            schema=SCHEMAS["providers"],
            orient="row",
        ),
    }


def _found(frames: dict[str, pl.DataFrame]) -> set[tuple[str, str, str, dt.date]]:
    return {
        (r["rule"], r["person_id"], r["provider_id"], r["care_date"]) for r in fraud_flags(frames).iter_rows(named=True)
    }


def test_every_rule_cites_the_regulation() -> None:
    for code, entry in catalogue().items():
        assert entry["clause"].startswith("医疗保障基金使用监督管理条例"), code
        assert entry["zh"] and entry["en"], code


def test_care_after_death_art20_flags_the_days_after_not_the_day_of_death() -> None:
    frames = _frames([("A", "H1", D(2026, 3, d), "") for d in (4, 5, 6, 7)], deaths={"A": D(2026, 3, 5)})
    assert _found(frames) == {
        ("CARE_AFTER_DEATH", "A", "H1", D(2026, 3, 6)),
        ("CARE_AFTER_DEATH", "A", "H1", D(2026, 3, 7)),
    }


def test_care_in_hospital_art15_6_flags_days_wholly_in_hospital_only() -> None:
    """Admitted on the 3rd, discharged on the 6th: the 4th and 5th were spent in hospital; the admission and
    discharge days were not wholly (the packs decide whether those are paid)."""
    frames = _frames(
        [("B", "H1", D(2026, 3, d), "") for d in range(2, 8)],
        stays=[("B", D(2026, 3, 3), D(2026, 3, 6), "inpatient")],
    )
    assert _found(frames) == {
        ("CARE_IN_HOSPITAL", "B", "H1", D(2026, 3, 4)),
        ("CARE_IN_HOSPITAL", "B", "H1", D(2026, 3, 5)),
    }


def test_care_in_hospital_art15_6_open_stay_and_other_stay_kinds() -> None:
    """A stay not yet discharged flags every day after admission; an emergency observation stay is not an
    inpatient stay and flags nothing."""
    frames = _frames(
        [("B", "H1", D(2026, 3, d), "") for d in (10, 11, 12)] + [("C", "H1", D(2026, 3, 11), "")],
        stays=[
            ("B", D(2026, 3, 10), None, "inpatient"),
            ("C", D(2026, 3, 10), D(2026, 3, 12), "emergency_observation"),
        ],
    )
    assert _found(frames) == {
        ("CARE_IN_HOSPITAL", "B", "H1", D(2026, 3, 11)),
        ("CARE_IN_HOSPITAL", "B", "H1", D(2026, 3, 12)),
    }


def test_two_providers_same_day_art15_3_flags_both_providers_on_the_shared_day_only() -> None:
    frames = _frames(
        [("C", "H1", D(2026, 3, 1), "a"), ("C", "H1", D(2026, 3, 2), "a"), ("C", "H2", D(2026, 3, 2), "b")],
        providers=[("H1", "active", D(2020, 1, 1), None), ("H2", "active", D(2020, 1, 1), None)],
    )
    assert _found(frames) == {
        ("TWO_PROVIDERS_SAME_DAY", "C", "H1", D(2026, 3, 2)),
        ("TWO_PROVIDERS_SAME_DAY", "C", "H2", D(2026, 3, 2)),
    }
    detail = fraud_flags(frames)["detail"].unique().to_list()
    assert detail == ["providers H1,H2"]


def test_provider_not_in_contract_art15_6_suspended_before_start_after_end_and_unknown() -> None:
    frames = _frames(
        [
            ("E", "S1", D(2026, 3, 1), ""),  # suspended
            ("E", "W1", D(2026, 3, 9), ""),  # before the contract starts on the 10th
            ("E", "W1", D(2026, 3, 10), ""),  # first day of the contract: fine
            ("F", "X1", D(2026, 3, 20), ""),  # the contract's last day: fine
            ("F", "X1", D(2026, 3, 21), ""),  # after it ended
            ("G", "Z9", D(2026, 3, 5), ""),  # no such provider on record
        ],
        providers=[
            ("S1", "suspended", D(2020, 1, 1), None),
            ("W1", "active", D(2026, 3, 10), None),
            ("X1", "active", D(2020, 1, 1), D(2026, 3, 20)),
        ],
    )
    assert _found(frames) == {
        ("PROVIDER_NOT_IN_CONTRACT", "E", "S1", D(2026, 3, 1)),
        ("PROVIDER_NOT_IN_CONTRACT", "E", "W1", D(2026, 3, 9)),
        ("PROVIDER_NOT_IN_CONTRACT", "F", "X1", D(2026, 3, 21)),
        ("PROVIDER_NOT_IN_CONTRACT", "G", "Z9", D(2026, 3, 5)),
    }


def test_clean_month_flags_nothing_and_counts_name_every_rule() -> None:
    frames = _frames([("H", "H1", D(2026, 3, d), "a") for d in range(1, 32)])
    flags = fraud_flags(frames)
    assert flags.is_empty()
    assert counts(flags) == dict.fromkeys(BILLING_RULES, 0)
    assert set(BILLING_RULES) | {"REPEATED_ITEM"} == set(catalogue())  # the one left is intake's
