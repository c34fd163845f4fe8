"""Banan (巴南府办发〔2019〕7号): contributions, eligibility, billing and assessment fees as vectorised rules.

Every number comes from the pack's parameters, resolved on the date the rule is about: the month of a
contribution, the day an application was received, the day care was given, the day of an assessment.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from rules.common import (
    LINE_KEYS,
    care_day_status,
    check_dates,
    claim_lines,
    dues_long,
    finish,
    join_dated,
    with_reasons,
)
from rules.engine import Pack, RulesError, period_bounds, with_params
from rules.formulas import formula
from rules.inputs import OUTPUT_DECISIONS, SCHEMAS

PACK = "banan"
SINCE = "2019-05-01"

# 三(二)3: the document's care modes. 集中护理 is `institutional`; 上门护理 by an agreement institution and 居家护理
# by an individual carer are both `home`, told apart by the provider's kind.
MODES_OF_INSTITUTIONS = ["institutional", "home"]
CARER_KINDS = ["carer_trained", "carer_untrained"]


# Parameters every claim line applies besides its daily rate.
LINE_PARAMS = [
    "billing.excluded_stay_kinds",
    "billing.stay_admission_day_paid",
    "billing.stay_discharge_day_paid",
    "billing.excludes_work_injury_care_allowance",
    "eligibility.benefits_from",
    "arrears.make_good_window_months",
    "arrears.on_time_grace_days",
    "arrears.undated_full_payment_on_time",
]


@formula(PACK, "contributions_due", since=SINCE)
def contributions_due(persons: pl.DataFrame, pack: Pack, period: str) -> pl.DataFrame:
    """三(一)1, 三(一)3: 12.5 a month for each member of the employee medical insurance, 5 transferred from the
    medical insurance fund and 7.5 moved from the member's personal account; members insured as individuals
    (一档) pay the 7.5 themselves with the year's medical premium. Residents are not covered and owe nothing,
    nor does anyone for a month after the one in which they died."""
    first, _ = period_bounds(period)
    pack.check_period(period)
    total = pack.param("contributions.total_monthly").fen(first)
    fund = pack.param("contributions.medical_fund_monthly").fen(first)
    own = pack.param("contributions.individual_monthly").fen(first)
    if fund + own != total:
        raise RulesError(
            f"pack {pack.id}: contributions for {period} do not add up: {fund} + {own} fen is not the standard {total}"
        )
    covered = pack.param("coverage.insurance_types").at(first)
    self_paying = pack.param("contributions.self_paying_types").at(first)
    enrolled = persons.filter(
        pl.col("insurance_type").is_in(covered) & (pl.col("death_date").is_null() | (pl.col("death_date") >= first))
    )
    self_pays = pl.col("insurance_type").is_in(self_paying)
    wide = enrolled.with_columns(
        medical_fund=pl.lit(fund, dtype=pl.Int64),
        personal_account=pl.when(self_pays).then(0).otherwise(own).cast(pl.Int64),
        individual=pl.when(self_pays).then(own).otherwise(0).cast(pl.Int64),
    )
    return dues_long(wide, period)


def _months_after(date: pl.Expr, months: pl.Expr | int) -> pl.Expr:
    """The first day of the month `months` after the month of `date`."""
    n = pl.lit(months) if isinstance(months, int) else months
    return date.dt.month_start().dt.offset_by(pl.format("{}mo", n))


def _suspensions(contrib: pl.DataFrame, key: str) -> pl.DataFrame:
    """三(二)2: the months in which benefits are stopped for a break in contributions, per `key`.

    `contrib` carries key, period (YYYY-MM), due_fen, paid_fen, paid_on and the parameters `_window` (months),
    `_grace` (days) and `_undated` (bool). A month is paid on time if paid in full by its last day plus the grace.
    A break is a run of months not paid on time; it begins with its first month m0. If every month of the run is
    paid in full by the end of the `_window`-th month after m0 (plus the grace), the arrears were made good in time
    and nothing is stopped (the fund pays the months back). Otherwise benefits stop from the month after m0 through
    the month in which contributions restart (the next month paid on time), and resume the month after it; a break
    with no restart yet stops everything from the month after m0. Returns key, stop_from, stop_to (month starts,
    stop_to null when open).
    """
    full = pl.col("paid_fen").fill_null(0) >= pl.col("due_fen")

    def paid_in_full_by(month: pl.Expr) -> pl.Expr:
        by = month.dt.month_end() + pl.duration(days=pl.col("_grace"))
        return full & pl.when(pl.col("paid_on").is_null()).then(pl.col("_undated")).otherwise(pl.col("paid_on") <= by)

    rows = (
        contrib.filter(pl.col("due_fen") > 0)
        .with_columns(_month=(pl.col("period") + "-01").str.to_date("%Y-%m-%d"))
        .sort(key, "_month")
        .with_columns(_late=~paid_in_full_by(pl.col("_month")))
        .with_columns(
            _run=(pl.col("_late") & ~pl.col("_late").shift(1).fill_null(False)).cast(pl.Int64).cum_sum().over(key),
            _next=pl.col("_month").shift(-1).over(key),
        )
        .filter("_late")
        .with_columns(_m0=pl.col("_month").min().over(key, "_run"))
    )
    made_good = paid_in_full_by(_months_after(pl.col("_m0"), pl.col("_window")))
    runs = rows.group_by(key, "_run").agg(
        stop_from=_months_after(pl.col("_m0").first(), 1),
        stop_to=pl.col("_next").sort_by("_month").last(),
        made_good=made_good.all(),
    )
    return runs.filter(~pl.col("made_good")).select(key, "stop_from", "stop_to")


def _contributions(inputs: dict[str, pl.DataFrame]) -> pl.DataFrame:
    found = inputs.get("contributions")
    return found if found is not None else pl.DataFrame(schema=SCHEMAS["contributions"])


def _stopped(on: pl.Expr) -> pl.Expr:
    """Whether the month of `on` lies in a stop interval (stop_from, stop_to)."""
    month = on.dt.month_start()
    return (pl.col("stop_from") <= month) & (pl.col("stop_to").is_null() | (month <= pl.col("stop_to")))


@formula(PACK, "eligibility", since=SINCE)
def eligibility(inputs: dict[str, pl.DataFrame], pack: Pack) -> pl.DataFrame:
    """三(一)1, 三(二)1-2: who may receive benefits, from when, and every reason why not.

    One row per assessed application; parameters are resolved on the day the application was received.
    Benefits start on the 1st of the month after the conclusion is issued (not before 2019-06-01). An approved
    person who has died ends on the last day of the month of death. A beneficiary reassessed below severe is
    refused, and `end_date` is then the last day of the conclusion's month: the earlier benefit stops from the
    month after it. The contribution conditions (paid in full and on time) are read on the contribution record as
    known on the day received: the application fails if benefits stand stopped that month under the arrears
    rule of 三(二)2.
    """
    apps = inputs["apps"]
    check_dates(apps, "received_on", pack)
    if apps.is_empty():
        return pl.DataFrame(schema=OUTPUT_DECISIONS)
    f = with_params(
        apps,
        pack,
        {
            "_types": "coverage.insurance_types",
            "_min_grade": "eligibility.min_grade",
            "_min_months": "eligibility.min_treatment_months",
            "_start_after": "eligibility.start_months_after_conclusion",
            "_stop_after": "eligibility.stop_months_after_event",
            "_benefits_from": "eligibility.benefits_from",
            "_window": "arrears.make_good_window_months",
            "_grace": "arrears.on_time_grace_days",
            "_undated": "arrears.undated_full_payment_on_time",
        },
        on="received_on",
    )
    known = pl.col("paid_on").is_null() | (pl.col("paid_on") <= pl.col("received_on"))
    history = (
        f.select("application_id", "person_id", "received_on", "_window", "_grace", "_undated")
        .join(_contributions(inputs), on="person_id", how="inner")
        .with_columns(
            paid_fen=pl.when(known).then(pl.col("paid_fen")).otherwise(0),
            paid_on=pl.when(known).then(pl.col("paid_on")),
        )
    )
    in_arrears = (
        _suspensions(history, "application_id")
        .join(f.select("application_id", "received_on"), on="application_id")
        .group_by("application_id")
        .agg(_in_arrears=_stopped(pl.col("received_on")).any())
    )
    f = f.join(in_arrears, on="application_id", how="left").with_columns(
        _start=pl.when(pl.col("published_on").is_not_null()).then(
            pl.max_horizontal(_months_after(pl.col("published_on"), pl.col("_start_after")), pl.col("_benefits_from"))
        )
    )
    checks = {
        "NOT_COVERED_INSURANCE_TYPE": ~pl.col("_types").list.contains(pl.col("insurance_type")),
        "DISABILITY_UNDER_6_MONTHS": pl.col("disabled_since").dt.offset_by(pl.format("{}mo", pl.col("_min_months")))
        > pl.col("received_on"),
        "CONTRIBUTIONS_IN_ARREARS": pl.col("_in_arrears").fill_null(False),
        "NOT_SEVERE": pl.col("grade").is_null() | (pl.col("grade") < pl.col("_min_grade")),
        "ASSESSMENT_NOT_CONCLUDED": pl.col("published_on").is_null(),
        "DECEASED": pl.col("death_date").is_not_null() & (pl.col("death_date") < pl.coalesce("_start", "received_on")),
    }
    out = with_reasons(f, checks)
    month_end_after = _months_after(pl.col("death_date"), pl.col("_stop_after")) - pl.duration(days=1)
    reassessed_below = (
        ~pl.col("approved")
        & pl.col("already_beneficiary").fill_null(False)
        & pl.col("published_on").is_not_null()
        & (pl.col("grade").is_null() | (pl.col("grade") < pl.col("_min_grade")))
    )
    return out.select(
        "application_id",
        "person_id",
        "approved",
        "grade",
        pl.when("approved").then(pl.col("_start")).alias("start_date"),
        pl.when(pl.col("approved"))
        .then(month_end_after)
        .when(reassessed_below)
        .then(_months_after(pl.col("published_on"), pl.col("_stop_after")) - pl.duration(days=1))
        .alias("end_date"),
        "reason_codes",
    )


@formula(PACK, "bill", since=SINCE)
def bill(inputs: dict[str, pl.DataFrame], pack: Pack, period: str) -> pl.DataFrame:
    """三(二)3-5: a month's care days become claim lines, one per person, provider and care mode.

    Each paid day is worth the daily rate in force on it (三(二)4): 50 for an agreement institution, residential
    (集中护理) or home visits (上门护理); 40 for home care (居家护理) by a trained, registered carer; 30 by an
    untrained one. The fund pays the whole rate (payable = gross); anything the provider charges above it is the
    member's own (四(二)) and is not on the line. Days are not paid, in this order: from a provider not under
    agreement or not on record that day; after death; outside the entitlement or before 2019-06-01; in hospital
    or emergency observation, admission and discharge days included (三(二)5(4)); in a mode the document does not
    name; when the work-injury fund pays the care (三(二)5(1)); in a month stopped for a break in contributions
    (三(二)2); a second service on a day already paid (the rates are per person per day: the highest rate is
    paid, then the lowest provider id).
    """
    pack.check_period(period)
    first, _ = period_bounds(period)
    days = care_day_status(
        inputs,
        stay_kinds=pack.param("billing.excluded_stay_kinds").at(first),
        stay_first_day_paid=pack.param("billing.stay_admission_day_paid").at(first),
        stay_last_day_paid=pack.param("billing.stay_discharge_day_paid").at(first),
    )
    agreement = pack.param("billing.agreement_provider_kinds").at(first)
    mode, kind = pl.col("care_mode"), pl.col("provider_kind")
    rate_key = (
        pl.when(mode.is_in(MODES_OF_INSTITUTIONS) & kind.is_in(agreement))
        .then(pl.lit("agreement_institution"))
        .when((mode == "home") & kind.is_in(CARER_KINDS))
        .then(kind)
        .otherwise(pl.lit(None, dtype=pl.Utf8))
    )
    days = days.with_columns(rate_key=rate_key)
    days = join_dated(days, pack.series(pack.children("billing.daily_rate"), "rate_fen"), pl.col("rate_key"))
    days = _with_day_params(days, pack, first)
    days = days.join(inputs["persons"].select("person_id", "work_injury_care_allowance"), on="person_id", how="left")
    days = days.join(_arrears_days(days, inputs, pack, first), on=["person_id", "care_date"], how="left")
    reason = (
        pl.when(pl.col("reason").is_not_null())
        .then(pl.col("reason"))
        .when(pl.col("care_date") < pl.col("_benefits_from"))
        .then(pl.lit("NOT_ELIGIBLE"))
        .when(pl.col("rate_fen").is_null())
        .then(pl.lit("CARE_MODE_NOT_COVERED"))
        .when(pl.col("_excl_wi") & pl.col("work_injury_care_allowance").fill_null(False))
        .then(pl.lit("OTHER_FUND_PAYS"))
        .when(pl.col("_arrears").fill_null(False))
        .then(pl.lit("CONTRIBUTION_ARREARS"))
        .otherwise(pl.lit(None, dtype=pl.Utf8))
    )
    days = days.with_columns(reason=reason)
    days = _one_payment_per_day(days)
    days = days.with_columns(
        day_gross_fen=pl.when(pl.col("reason").is_null()).then(pl.col("rate_fen")).otherwise(0).fill_null(0)
    )
    line_rate = days.group_by(LINE_KEYS).agg(rate_key=pl.col("rate_key").drop_nulls().first())
    lines = claim_lines(days).join(line_rate, on=LINE_KEYS, how="left")
    rate_param = pl.when(pl.col("rate_key").is_not_null()).then(pl.format("billing.daily_rate.{}", pl.col("rate_key")))
    lines = lines.with_columns(
        payable_fen=pl.col("gross_fen"),
        rule_params=pl.concat_list(rate_param, *[pl.lit(p) for p in LINE_PARAMS]).list.drop_nulls(),
    )
    return finish(lines, period)


def _with_day_params(days: pl.DataFrame, pack: Pack, first: dt.date) -> pl.DataFrame:
    """The day-level parameters, each as in force on the care date."""
    columns = {"_benefits_from": "eligibility.benefits_from", "_excl_wi": "billing.excludes_work_injury_care_allowance"}
    if days.is_empty():
        return days.with_columns(
            _benefits_from=pl.lit(pack.param(columns["_benefits_from"]).at(first), dtype=pl.Date),
            _excl_wi=pl.lit(pack.param(columns["_excl_wi"]).at(first), dtype=pl.Boolean),
        )
    return with_params(days, pack, columns, on="care_date")


def _arrears_days(days: pl.DataFrame, inputs: dict[str, pl.DataFrame], pack: Pack, first: dt.date) -> pl.DataFrame:
    """三(二)2: the person-days of the period in a month stopped for a break in contributions."""
    history = _contributions(inputs).with_columns(
        _window=pl.lit(pack.param("arrears.make_good_window_months").at(first), dtype=pl.Int64),
        _grace=pl.lit(pack.param("arrears.on_time_grace_days").at(first), dtype=pl.Int64),
        _undated=pl.lit(pack.param("arrears.undated_full_payment_on_time").at(first), dtype=pl.Boolean),
    )
    return (
        days.select("person_id", "care_date")
        .unique()
        .join(_suspensions(history, "person_id"), on="person_id")
        .filter(_stopped(pl.col("care_date")))
        .select("person_id", "care_date")
        .unique()
        .with_columns(_arrears=pl.lit(True))
    )


def _one_payment_per_day(days: pl.DataFrame) -> pl.DataFrame:
    """三(二)4 (元/人·日): one paid service per person and day; the highest rate wins, then the lowest provider."""
    paid = pl.col("reason").is_null()
    ordered = days.sort(
        ["person_id", "care_date", "rate_fen", "provider_id", "care_mode"],
        descending=[False, False, True, False, False],
        nulls_last=True,
    )
    rank = paid.cast(pl.Int64).cum_sum().over("person_id", "care_date")
    return ordered.with_columns(
        reason=pl.when(paid & (rank > 1)).then(pl.lit("ALREADY_PAID_THAT_DAY")).otherwise(pl.col("reason"))
    )


@formula(PACK, "assessment_fees", since=SINCE)
def assessment_fees(assessments: pl.DataFrame, pack: Pack, on: dt.date) -> pl.DataFrame:
    """三(二)6: an assessment's fee is at most 300 yuan; the fund pays it when the result is severe (the person
    qualifies), the applicant otherwise. The part of a fee above the cap is owed by no one. An assessment the
    agency itself ordered is paid by the fund (assumption `assessment.fund_pays_agency_requested`)."""
    pack.check_date(on)
    cap = pack.param("assessment.fee_cap").fen(on)
    min_grade = pack.param("assessment.fund_pays_min_grade").at(on)
    agency_paid = bool(pack.param("assessment.fund_pays_agency_requested").at(on))
    fee = pl.col("fee_fen").fill_null(0)
    charged = pl.min_horizontal(fee, pl.lit(cap, dtype=pl.Int64))
    by_agency = pl.lit(agency_paid) & (pl.col("requested_by").fill_null("applicant") == "bureau")
    fund_pays = (pl.col("grade").is_not_null() & (pl.col("grade") >= min_grade)) | by_agency
    codes = pl.concat_list(
        pl.when(~fund_pays).then(pl.lit("ASSESSMENT_NOT_SEVERE_APPLICANT_PAYS")).otherwise(pl.lit(None, dtype=pl.Utf8)),
        pl.when(fee > cap).then(pl.lit("ASSESSMENT_FEE_OVER_CAP")).otherwise(pl.lit(None, dtype=pl.Utf8)),
    ).list.drop_nulls()
    return (
        assessments.with_columns(_charged=charged, _fund=fund_pays)
        .select(
            "application_id",
            "sequence",
            pl.when("_fund").then(pl.col("_charged")).otherwise(0).cast(pl.Int64).alias("fund_fen"),
            pl.when("_fund").then(0).otherwise(pl.col("_charged")).cast(pl.Int64).alias("applicant_fen"),
            codes.alias("reason_codes"),
        )
        .sort("application_id", "sequence")
    )
