"""Nanning (南府规〔2023〕26号): contributions, eligibility and billing as vectorised rules on frames.

Every number comes from the pack's parameters, resolved on the date the rule is about: the month of a
contribution, the day an application was received, the day care was given.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from rules import daysets as ds
from rules.common import (
    cap_in_order,
    check_dates,
    dues_long,
    eligible_days,
    finish,
    times_half_up,
    with_reasons,
)
from rules.engine import Pack, period_bounds, with_params
from rules.formulas import formula

PACK = "nanning"


@formula(PACK, "contributions_due", since="2024-01-01")
def contributions_due(persons: pl.DataFrame, pack: Pack, period: str) -> pl.DataFrame:
    """三(二)1-3: each member's monthly dues on the contribution base, by who pays; each share rounded half-up.
    Nobody owes for a month that began after their death.

    Employers pay their share with the medical premium; every individual share is deducted from the monthly
    transfer into the member's medical personal account (从每月划入职工医保个人账户的金额中扣缴).
    """
    first, _ = period_bounds(period)
    pack.check_date(first)
    rate = {
        ("employee", "employer"): "contributions.employee.employer_rate",
        ("employee", "personal_account"): "contributions.employee.individual_rate",
        ("retiree", "personal_account"): "contributions.retiree.individual_rate",
        ("flexible", "personal_account"): "contributions.flexible.individual_rate",
        ("unemployed", "personal_account"): "contributions.unemployed.individual_rate",
    }
    base = pl.col("contribution_base_fen")
    shares = {}
    for payer in ("employer", "personal_account"):
        expr = pl.lit(0, dtype=pl.Int64)
        for (kind, p), name in rate.items():
            if p == payer:
                expr = (
                    pl.when(pl.col("insurance_type") == kind)
                    .then(times_half_up(base, pack.param(name).at(first)))
                    .otherwise(expr)
                )
        shares[payer] = expr
    covered = pack.param("coverage.insurance_types").at(first)
    alive = pl.col("death_date").is_null() | (pl.col("death_date") >= pl.lit(first))
    enrolled = persons.filter(pl.col("insurance_type").is_in(covered) & ~pl.col("work_injury_care_allowance") & alive)
    return dues_long(enrolled.with_columns(**shares), period)


@formula(PACK, "eligibility", since="2024-01-01")
def eligibility(inputs: dict[str, pl.DataFrame], pack: Pack) -> pl.DataFrame:
    """三(一), 三(三)1, 三(三)4: who may receive benefits, from when, and every reason why not.

    One row per assessed application. Parameters are resolved on the day of application.
    """
    apps = inputs["apps"]
    check_dates(apps, "received_on", pack)
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
        & (pl.col("death_date") < pl.coalesce("published_on", "received_on")),
        "NOT_SEVERE": pl.col("grade").is_null() | (pl.col("grade") < pl.col("_min_grade")),
        "DISABILITY_UNDER_6_MONTHS": pl.col("disabled_since").dt.offset_by(pl.format("{}mo", pl.col("_min_months")))
        > pl.col("received_on"),
        "CONTRIBUTIONS_UNDER_12_MONTHS": ~pl.col("already_beneficiary")
        & (pl.col("full_contribution_months") < pl.col("_min_contrib")),
    }
    out = with_reasons(f, checks)
    return out.select(
        "application_id",
        "person_id",
        "approved",
        "grade",
        pl.when("approved").then(pl.col("published_on")).alias("start_date"),
        pl.when("approved").then(pl.col("death_date")).alias("end_date"),
        "reason_codes",
    )


@formula(PACK, "bill", since="2024-01-01")
def bill(inputs: dict[str, pl.DataFrame], pack: Pack, period: str) -> pl.DataFrame:
    """三(三)3-4: a month's care days become claim lines, one per person, provider and care mode.

    Institutional care is paid per actual service day at the grade's daily rate on that day; home care items
    are paid up to the monthly quota. Days are not paid before the start, after the end or death, in hospital
    (从入院的次日起停止，出院的次日恢复: the day after admission through the discharge day), or from a provider
    that was not designated that day. No deductible, no personal share within the rates.

    Worked on claim lines, each with its set of days (`rules.daysets`): the care rows are summed once.
    """
    first, last = period_bounds(period)
    pack.check_period(period)
    persons = ds.person_calendars(
        inputs, first, last, stay_kinds=["inpatient"], stay_first_day_paid=True, stay_last_day_paid=False
    )
    lines = ds.with_status(
        ds.care_lines(inputs["care"], first, last), persons, ds.provider_calendars(inputs["providers"], first, last)
    )
    lines = _modes_and_bed_days(lines, pack, first)
    institutional, home = pl.col("care_mode") == "institutional", pl.col("care_mode") == "home"
    rates = ds.dated_segments(
        pack.series(pack.children("billing.institutional_daily_rate"), "rate_fen"), "rate_fen", first, last
    )
    lines = ds.by_grade_and_date(
        lines,
        rates,
        "grade_{}".format,
        "rate_fen",
        pl.when(institutional).then(pl.col("payable")).otherwise(0),
    )
    excluded = pl.col("billed") & ~pl.col("payable")
    lines = ds.amount_on_days(
        inputs["care"], lines.with_columns(_excluded=pl.when(home).then(excluded)), "_excluded", first
    )
    lines = lines.with_columns(
        gross_fen=pl.when(institutional)
        .then(pl.col("_sum"))
        .when(home)
        .then(pl.col("submitted_fen") - pl.col("_amount"))
        .otherwise(0)
    ).drop("_sum", "_amount", "_excluded", "items", "provider_kind")
    lines = ds.finish_lines(ds.line_grade(lines), first)
    return finish(pay_lines(_home_quota(lines, inputs, pack, first, last)), period)


def pay_lines(lines: pl.DataFrame) -> pl.DataFrame:
    """What the fund pays of each line: institutional care its gross, home care what fits under the quota; the
    parameters each line applied (worked out once per care mode and grade, which few lines share out of many)."""
    home = pl.col("care_mode") == "home"
    applied = (
        lines.select("care_mode", "grade")
        .unique()
        .with_columns(
            rule_params=pl.when(pl.col("care_mode") == "institutional")
            .then(pl.concat_list(pl.format("billing.institutional_daily_rate.grade_{}", "grade")))
            .otherwise(
                pl.concat_list(
                    pl.format("billing.home_monthly_quota.grade_{}", "grade"),
                    pl.lit("billing.home_quota_partial_month"),
                )
            )
        )
    )
    return (
        lines.join(applied, on=["care_mode", "grade"], how="left", nulls_equal=True, maintain_order="left")
        .with_columns(payable_fen=pl.when(home).then(pl.col("within_quota_fen")).otherwise(pl.col("gross_fen")))
        .with_columns(
            over_cap_fen=pl.col("gross_fen") - pl.col("payable_fen"),
            cap_reason=pl.when(home).then(pl.lit("OVER_MONTHLY_QUOTA")),
        )
    )


def _modes_and_bed_days(lines: pl.DataFrame, pack: Pack, first: dt.date) -> pl.DataFrame:
    """三(三)2(1): only the two modes the document names, each from the kinds of designated provider that give
    it; 三(三)3(2): a bed-day is paid once a person and day (按床日付费), to the first provider by id."""
    kinds = {mode: pack.param(name).at(first) for mode, name in pack.children("billing.provider_kinds").items()}
    mode_ok = pl.col("care_mode").is_in(list(kinds))
    kind_ok = pl.lit(False)
    for mode, allowed in kinds.items():
        kind_ok = kind_ok | ((pl.col("care_mode") == mode) & pl.col("provider_kind").is_in(allowed))
    every_day = pl.lit(ds.ALL, dtype=pl.Int64)
    lines = ds.exclude(lines, "CARE_MODE_NOT_COVERED", pl.when(~mode_ok).then(every_day).otherwise(0))
    lines = ds.exclude(
        lines, "NOT_DESIGNATED_PROVIDER", pl.when(~kind_ok.fill_null(False)).then(every_day).otherwise(0)
    )
    earlier = ds.taken_by_earlier(lines, pl.col("care_mode") == "institutional", "provider_id")
    return ds.exclude(lines, "BED_DAY_ALREADY_PAID", earlier)


def _home_quota(
    lines: pl.DataFrame, inputs: dict[str, pl.DataFrame], pack: Pack, first: dt.date, last: dt.date
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
        span = eligible_days(inputs, first, last)
        lines = lines.join(span, on="person_id", how="left").with_columns(
            quota_fen=(pl.col("quota_fen") * pl.col("eligible_days").fill_null(0) * 2 + month_days) // (2 * month_days)
        )
    elif mode != "full":
        raise ValueError(f"billing.home_quota_partial_month must be full or prorate, not {mode!r}")
    home_amount = pl.when(pl.col("care_mode") == "home").then(pl.col("gross_fen")).otherwise(0)
    return cap_in_order(
        lines.with_columns(_home=home_amount), "_home", "quota_fen", ["person_id", "care_mode"], "within_quota_fen"
    )


@formula(PACK, "assessment_fees", since="2024-01-01")
def assessment_fees(assessments: pl.DataFrame, pack: Pack, on: dt.date) -> pl.DataFrame:
    """三(四): the fund pays the disability assessment fees (长护险失能评估费用支付), as charged: no cap is set."""
    pack.check_date(on)
    fund_pays = bool(pack.param("assessment.fund_pays_assessment_fees").at(on))
    fee = pl.col("fee_fen").fill_null(0)
    return assessments.select(
        "application_id",
        "sequence",
        pl.when(pl.lit(fund_pays)).then(fee).otherwise(0).cast(pl.Int64).alias("fund_fen"),
        pl.when(pl.lit(fund_pays)).then(0).otherwise(fee).cast(pl.Int64).alias("applicant_fen"),
        pl.when(pl.lit(fund_pays))
        .then(pl.lit(["FUND_PAYS_ASSESSMENT"]))
        .otherwise(pl.lit([], dtype=pl.List(pl.Utf8)))
        .alias("reason_codes"),
    )
