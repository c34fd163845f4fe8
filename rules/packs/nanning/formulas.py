"""Nanning (南府规〔2023〕26号): contributions, eligibility and billing as vectorised rules on frames.

Every number comes from the pack's parameters, resolved on the date the rule is about: the month of a
contribution, the day an application was received, the day care was given.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import polars as pl

from rules.engine import Pack, period_bounds, with_params
from rules.formulas import formula

PACK = "nanning"


def _ratio(value: object) -> tuple[int, int]:
    return Decimal(str(value)).as_integer_ratio()


def _times_rate_half_up(base: pl.Expr, rate: object) -> pl.Expr:
    num, den = _ratio(rate)
    return (base * (2 * num) + den) // (2 * den)


@formula(PACK, "contributions_due", since="2024-01-01")
def contributions_due(persons: pl.DataFrame, pack: Pack, period: str) -> pl.DataFrame:
    """三(二)1-3: each member's monthly dues on the contribution base, split by who pays.

    In: person_id, insurance_type, contribution_base_fen. Out: person_id, period, employer_fen,
    individual_fen, due_fen. Each share is rounded half-up to the fen once.
    """
    first, _ = period_bounds(period)
    pack.check_date(first)
    rates = {
        "employee": (
            pack.param("contributions.employee.employer_rate").at(first),
            pack.param("contributions.employee.individual_rate").at(first),
        ),
        "retiree": (0, pack.param("contributions.retiree.individual_rate").at(first)),
        "flexible": (0, pack.param("contributions.flexible.individual_rate").at(first)),
        "unemployed": (0, pack.param("contributions.unemployed.individual_rate").at(first)),
    }
    base = pl.col("contribution_base_fen")
    employer = pl.lit(0, dtype=pl.Int64)
    individual = pl.lit(0, dtype=pl.Int64)
    for kind, (er, ir) in reversed(rates.items()):
        is_kind = pl.col("insurance_type") == kind
        employer = pl.when(is_kind).then(_times_rate_half_up(base, er)).otherwise(employer)
        individual = pl.when(is_kind).then(_times_rate_half_up(base, ir)).otherwise(individual)
    covered = pack.param("coverage.insurance_types").at(first)
    return (
        persons.filter(pl.col("insurance_type").is_in(covered))
        .filter(~pl.col("work_injury_care_allowance"))
        .select(
            "person_id",
            pl.lit(period).alias("period"),
            employer.cast(pl.Int64).alias("employer_fen"),
            individual.cast(pl.Int64).alias("individual_fen"),
        )
        .with_columns(due_fen=pl.col("employer_fen") + pl.col("individual_fen"))
    )


@formula(PACK, "eligibility", since="2024-01-01")
def eligibility(apps: pl.DataFrame, pack: Pack) -> pl.DataFrame:
    """三(一), 三(三)1, 三(三)4: who may receive benefits, from when, and every reason why not.

    In (one row per assessed application): application_id, person_id, received_on, disabled_since,
    grade, published_on, insurance_type, work_injury_care_allowance, death_date,
    full_contribution_months, already_beneficiary. Parameters are resolved on the day of application.
    Out: application_id, person_id, approved, grade, start_date, end_date, reason_codes.
    """
    for d in apps.select(pl.col("received_on").unique()).to_series().to_list():
        pack.check_date(d)
    f = with_params(
        apps,
        pack,
        {
            "_types": "coverage.insurance_types",
            "_excl_wi": "coverage.excludes_work_injury_care_allowance",
            "_min_grade": "eligibility.min_grade",
            "_min_months": "eligibility.min_disability_months",
            "_min_contrib": "eligibility.min_contribution_months",
        },
        on="received_on",
    )
    checks = {
        "NOT_COVERED_INSURANCE_TYPE": ~pl.col("_types").list.contains(pl.col("insurance_type")),
        "NOT_COVERED_WORK_INJURY": pl.col("_excl_wi") & pl.col("work_injury_care_allowance"),
        "DECEASED": pl.col("death_date").is_not_null()
        & (pl.col("death_date") <= pl.coalesce("published_on", "received_on")),
        "NOT_SEVERE": pl.col("grade").is_null() | (pl.col("grade") < pl.col("_min_grade")),
        "DISABILITY_UNDER_6_MONTHS": pl.col("disabled_since").dt.offset_by(pl.format("{}mo", pl.col("_min_months")))
        > pl.col("received_on"),
        "CONTRIBUTIONS_UNDER_12_MONTHS": ~pl.col("already_beneficiary")
        & (pl.col("full_contribution_months") < pl.col("_min_contrib")),
    }
    codes = pl.concat_list(
        [pl.when(cond).then(pl.lit(code)).otherwise(pl.lit(None)) for code, cond in checks.items()]
    ).list.drop_nulls()
    out = f.with_columns(reason_codes=codes).with_columns(approved=pl.col("reason_codes").list.len() == 0)
    return out.select(
        "application_id",
        "person_id",
        "approved",
        "grade",
        pl.when("approved").then(pl.col("published_on")).alias("start_date"),
        pl.when("approved").then(pl.col("death_date")).alias("end_date"),
        "reason_codes",
    )


def _day_status(
    care: pl.DataFrame,
    entitlements: pl.DataFrame,
    persons: pl.DataFrame,
    stays: pl.DataFrame,
    providers: pl.DataFrame,
) -> pl.DataFrame:
    """One row per person, provider, mode and care day, with the reason it is not paid (null if paid)."""
    days = care.group_by("person_id", "provider_id", "care_mode", "care_date").agg(
        submitted_fen=pl.col("amount_fen").sum()
    )
    days = days.join(
        providers.select("provider_id", "status", "contract_start", "contract_end"),
        on="provider_id",
        how="left",
    ).with_columns(
        designated=(pl.col("status") == "active")
        & (pl.col("contract_start") <= pl.col("care_date"))
        & (pl.col("contract_end").is_null() | (pl.col("care_date") <= pl.col("contract_end")))
    )
    days = days.sort("care_date").join_asof(
        entitlements.select("person_id", "grade", "start_date", "end_date").sort("start_date"),
        left_on="care_date",
        right_on="start_date",
        by="person_id",
        strategy="backward",
        check_sortedness=False,
    )
    days = days.join(persons.select("person_id", "death_date"), on="person_id", how="left")
    # 三(三)4: 从入院的次日起停止享受，出院的次日恢复 -> admitted < day <= discharged
    in_hospital = (
        days.select("person_id", "care_date")
        .unique()
        .join(stays.select("person_id", "admitted_on", "discharged_on"), on="person_id")
        .filter(
            (pl.col("care_date") > pl.col("admitted_on"))
            & (pl.col("discharged_on").is_null() | (pl.col("care_date") <= pl.col("discharged_on")))
        )
        .select("person_id", "care_date")
        .unique()
        .with_columns(in_hospital=pl.lit(True))
    )
    days = days.join(in_hospital, on=["person_id", "care_date"], how="left")
    entitled = pl.col("start_date").is_not_null() & (
        pl.col("end_date").is_null() | (pl.col("care_date") <= pl.col("end_date"))
    )
    reason = (
        pl.when(~pl.col("designated").fill_null(False))
        .then(pl.lit("NOT_DESIGNATED_PROVIDER"))
        .when(pl.col("death_date").is_not_null() & (pl.col("care_date") > pl.col("death_date")))
        .then(pl.lit("AFTER_DEATH"))
        .when(~entitled)
        .then(pl.lit("NOT_ELIGIBLE"))
        .when(pl.col("in_hospital").fill_null(False))
        .then(pl.lit("IN_HOSPITAL"))
        .otherwise(pl.lit(None, dtype=pl.Utf8))
    )
    return days.with_columns(reason=reason)


@formula(PACK, "bill", since="2024-01-01")
def bill(
    care: pl.DataFrame,
    entitlements: pl.DataFrame,
    persons: pl.DataFrame,
    stays: pl.DataFrame,
    providers: pl.DataFrame,
    pack: Pack,
    period: str,
) -> pl.DataFrame:
    """三(三)3-4: a month's care days become claim lines, one per person, provider and care mode.

    Institutional care is paid per actual service day at the grade's daily rate on that day; home care items
    are paid up to the monthly quota. Days are not paid before the start, after the end or death, in hospital
    (day after admission through discharge day), or from a provider that was not designated that day.
    """
    first, last = period_bounds(period)
    pack.check_period(period)
    days = _day_status(care, entitlements, persons, stays, providers)
    rates = pack.series(
        pack.children("billing.institutional_daily_rate"),
        "rate_fen",
    )
    days = (
        days.with_columns(key=pl.format("grade_{}", pl.col("grade")))
        .sort("care_date")
        .join_asof(rates, left_on="care_date", right_on="effective_from", by="key", check_sortedness=False)
    )
    paid = pl.col("reason").is_null()
    day_payable = (
        pl.when(paid & (pl.col("care_mode") == "institutional"))
        .then(pl.col("rate_fen"))
        .when(paid & (pl.col("care_mode") == "home"))
        .then(pl.col("submitted_fen"))
        .otherwise(0)
    )
    keys = ["person_id", "provider_id", "care_mode"]
    days = days.with_columns(day_payable_fen=day_payable.fill_null(0))
    exclusions = (
        days.filter(~paid)
        .group_by(*keys, "reason")
        .agg(days=pl.len().cast(pl.Int64))
        .sort("reason")
        .group_by(keys)
        .agg(exclusions=pl.struct("reason", "days"))
    )
    lines = (
        days.sort("care_date")
        .group_by(keys)
        .agg(
            grade=pl.col("grade").drop_nulls().last(),
            days_submitted=pl.len().cast(pl.Int64),
            days_paid=paid.sum().cast(pl.Int64),
            submitted_fen=pl.col("submitted_fen").sum().cast(pl.Int64),
            payable_before_quota_fen=pl.col("day_payable_fen").sum().cast(pl.Int64),
        )
        .join(exclusions, on=keys, how="left")
    )
    lines = _apply_home_quota(lines, entitlements, persons, pack, first, last)
    empty = pl.lit([], dtype=pl.List(pl.Struct({"reason": pl.Utf8, "days": pl.Int64})))
    return lines.select(
        "person_id",
        "provider_id",
        pl.lit(period).alias("period"),
        "care_mode",
        "grade",
        "days_submitted",
        "days_paid",
        (pl.col("days_submitted") - pl.col("days_paid")).alias("days_excluded"),
        "submitted_fen",
        "payable_fen",
        "over_quota_fen",
        pl.col("exclusions").fill_null(empty),
        pl.when(pl.col("care_mode") == "institutional")
        .then(pl.concat_list(pl.format("billing.institutional_daily_rate.grade_{}", "grade")))
        .otherwise(
            pl.concat_list(
                pl.format("billing.home_monthly_quota.grade_{}", "grade"),
                pl.lit("billing.home_quota_partial_month"),
            )
        )
        .alias("rule_params"),
    ).sort("person_id", "provider_id", "care_mode")


def _apply_home_quota(
    lines: pl.DataFrame,
    entitlements: pl.DataFrame,
    persons: pl.DataFrame,
    pack: Pack,
    first: dt.date,
    last: dt.date,
) -> pl.DataFrame:
    """三(三)3(2): home care items are paid up to the person's monthly quota, across providers in id order."""
    quota = pack.series(pack.children("billing.home_monthly_quota"), "quota_fen")
    month_quota = (
        quota.filter(pl.col("effective_from") <= first)
        .sort("effective_from")
        .group_by("key")
        .agg(pl.col("quota_fen").last())
    )
    mode = pack.param("billing.home_quota_partial_month").at(first)
    lines = lines.with_columns(key=pl.format("grade_{}", pl.col("grade"))).join(month_quota, on="key", how="left")
    if mode == "prorate":
        month_days = (last - first).days + 1
        span = (
            entitlements.join(persons.select("person_id", "death_date"), on="person_id", how="left")
            .with_columns(
                lo=pl.max_horizontal(pl.col("start_date"), pl.lit(first)),
                hi=pl.min_horizontal(
                    pl.col("end_date").fill_null(last),
                    pl.col("death_date").fill_null(last),
                    pl.lit(last),
                ),
            )
            .with_columns(d=((pl.col("hi") - pl.col("lo")).dt.total_days() + 1).clip(0))
            .group_by("person_id")
            .agg(eligible_days=pl.col("d").sum().clip(0, month_days))
        )
        lines = lines.join(span, on="person_id", how="left").with_columns(
            quota_fen=(pl.col("quota_fen") * pl.col("eligible_days").fill_null(0) * 2 + month_days) // (2 * month_days)
        )
    elif mode != "full":
        raise ValueError(f"billing.home_quota_partial_month must be full or prorate, not {mode!r}")
    home = pl.col("care_mode") == "home"
    before = pl.col("payable_before_quota_fen")
    cum = before.cum_sum().over("person_id", "care_mode", order_by="provider_id")
    capped = (pl.min_horizontal(cum, pl.col("quota_fen").fill_null(0)) - (cum - before)).clip(0)
    return lines.with_columns(payable_fen=pl.when(home).then(capped).otherwise(before).cast(pl.Int64)).with_columns(
        over_quota_fen=(before - pl.col("payable_fen")).cast(pl.Int64)
    )
