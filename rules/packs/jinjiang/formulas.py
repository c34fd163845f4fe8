"""Jinjiang (晋政规〔2023〕3号): contributions, eligibility, billing and assessment fees as vectorised rules.

Every number comes from the pack's parameters, resolved on the date the rule is about: the start of a
contribution year, the day an application was received, the day care was given, the day of an assessment. The
benefit of each grade is set by 《晋江市长期护理保险待遇服务内容及标准实施指导意见》, which is not among the sources:
its rates are parameters with no value, and billing a day that needs one stops with an error naming it.
"""

from __future__ import annotations

import datetime as dt
import re

import polars as pl

from rules.common import care_day_status, check_dates, claim_lines, dues_long, finish, with_reasons
from rules.engine import Pack, RulesError, period_bounds, period_start, with_params
from rules.formulas import formula
from rules.inputs import OUTPUT_DECISIONS

PACK = "jinjiang"
SINCE = "2023-04-01"


# A daily rate is carried in 1/10000 fen while a line is summed, so that it is rounded once, per line.
SUB_FEN = 10_000


def _year_start(pack: Pack, period: str) -> dt.date:
    """A contribution year `YYYY`, checked against the pack. Contributions are collected ahead for the whole year,
    so a year's dues are those of the document in force on its 1 January, or on the document's first day in the
    year it takes effect (`period_start`); no part-year proration (the document fixes 90 a person a year)."""
    if not re.fullmatch(r"\d{4}", period):
        raise RulesError(f"pack {pack.id} takes contributions by year: period {period!r} is not of the form YYYY")
    on = period_start(period, pack)
    pack.check_date(on)
    return on


@formula(PACK, "contributions_due", since=SINCE)
def contributions_due(persons: pl.DataFrame, pack: Pack, period: str) -> pl.DataFrame:
    """二(一), 二(二): each covered person's dues for the year, by each payer the document names.

    - 职工医保 members: 60 from the medical personal account (`personal_account`), 30 市级财政补助 (`city_budget`).
    - 离休干部 and 一至六级残疾军人, whatever their insurance: their own 60, 由市财政全额承担 (`government_subsidy`),
      and the 30 市级财政补助 (`city_budget`).
    - Other residents: 30 市级财政补助 (`city_budget`); their own 60 is paid by the village (村/社区) collective,
      towards which 市级财政再按15元补助村（社区）集体 (`city_village_subsidy`) and 各镇（街道）按不少于10元补助
      (`town_budget`); the village pays what is left (`village`, 35).
    People in none of these groups, or who died before the year, owe nothing.
    """
    on = _year_start(pack, period)

    def fen(name: str) -> int:
        return pack.param(name).fen(on)

    total = fen("contributions.standard_total")
    emp_ind, emp_sub = fen("contributions.employee.individual"), fen("contributions.employee.city_subsidy")
    sp_ind, sp_sub = fen("contributions.special.individual"), fen("contributions.special.city_subsidy")
    res_ind, res_sub = fen("contributions.resident.individual"), fen("contributions.resident.city_subsidy")
    groups = {"employee": emp_ind + emp_sub, "special": sp_ind + sp_sub, "resident": res_ind + res_sub}
    for group, parts in groups.items():
        if parts != total:
            raise RulesError(
                f"pack {pack.id}: contributions.{group} parts add up to {parts} fen, not the standard {total} fen"
            )
    city_village = min(fen("contributions.resident.city_village_subsidy"), res_ind)
    town = min(fen("contributions.resident.town_village_subsidy"), res_ind - city_village)
    village = res_ind - city_village - town

    def member_of(column: str, name: str) -> pl.Expr:
        return pl.col(column).is_in(pack.param(name).at(on)).fill_null(False)

    cadre = pl.col("retired_cadre").fill_null(False) & pl.lit(pack.param("coverage.retired_cadres").at(on))
    special = cadre | member_of("disabled_veteran_grade", "coverage.disabled_veteran_grades")
    employee = ~special & member_of("insurance_type", "coverage.employee_insurance_types")
    resident = ~special & member_of("insurance_type", "coverage.resident_insurance_types")
    alive = pl.col("death_date").is_null() | (pl.col("death_date") >= pl.lit(on))

    def share(amounts: list[tuple[pl.Expr, int]]) -> pl.Expr:
        expr = pl.lit(0, dtype=pl.Int64)
        for cond, amount in reversed(amounts):
            expr = pl.when(cond).then(pl.lit(amount, dtype=pl.Int64)).otherwise(expr)
        return expr

    wide = persons.filter((special | employee | resident) & alive).with_columns(
        personal_account=share([(employee, emp_ind)]),
        government_subsidy=share([(special, sp_ind)]),
        city_budget=share([(special, sp_sub), (employee, emp_sub), (resident, res_sub)]),
        city_village_subsidy=share([(resident, city_village)]),
        town_budget=share([(resident, town)]),
        village=share([(resident, village)]),
    )
    return dues_long(wide, period)


@formula(PACK, "eligibility", since=SINCE)
def eligibility(inputs: dict[str, pl.DataFrame], pack: Pack) -> pl.DataFrame:
    """二(一), 二(三): who becomes a beneficiary (待遇享受对象), from when, and every reason why not.

    A covered member (二(一)) who, after at least 6 months of treatment (or from old age), is assessed at a
    disability grade: any grade from 1, each with its own benefit. Parameters are resolved on the day of
    application. Benefits start as `eligibility.benefit_start` says and end on death.
    """
    apps = inputs["apps"]
    check_dates(apps, "received_on", pack)
    if apps.is_empty():
        return pl.DataFrame(schema=OUTPUT_DECISIONS)
    f = with_params(
        apps,
        pack,
        {
            "_emp": "coverage.employee_insurance_types",
            "_res": "coverage.resident_insurance_types",
            "_cadres": "coverage.retired_cadres",
            "_vets": "coverage.disabled_veteran_grades",
            "_min_grade": "eligibility.min_grade",
            "_min_months": "eligibility.min_disability_months",
            "_start": "eligibility.benefit_start",
        },
        on="received_on",
    )
    starts = set(f.select(pl.col("_start").unique()).to_series().to_list())
    if not starts <= {"conclusion_day", "next_month"}:
        raise RulesError(f"eligibility.benefit_start must be conclusion_day or next_month, not {sorted(starts)}")
    covered = (
        pl.col("_emp").list.contains(pl.col("insurance_type")).fill_null(False)
        | pl.col("_res").list.contains(pl.col("insurance_type")).fill_null(False)
        | (pl.col("_cadres") & pl.col("retired_cadre").fill_null(False))
        | pl.col("_vets").list.contains(pl.col("disabled_veteran_grade")).fill_null(False)
    )
    checks = {
        "NOT_COVERED": ~covered,
        "DECEASED": pl.col("death_date").is_not_null()
        & (pl.col("death_date") <= pl.coalesce("published_on", "received_on")),
        "NO_DISABILITY_GRADE": pl.col("grade").is_null() | (pl.col("grade") < pl.col("_min_grade")),
        "TREATMENT_UNDER_6_MONTHS": pl.col("disabled_since").is_null()
        | (pl.col("disabled_since").dt.offset_by(pl.format("{}mo", pl.col("_min_months"))) > pl.col("received_on")),
    }
    start = (
        pl.when(pl.col("_start") == "next_month")
        .then(pl.col("published_on").dt.offset_by("1mo").dt.month_start())
        .otherwise(pl.col("published_on"))
    )
    out = with_reasons(f, checks)
    return out.select(
        "application_id",
        "person_id",
        "approved",
        "grade",
        pl.when("approved").then(start).alias("start_date"),
        pl.when("approved").then(pl.col("death_date")).alias("end_date"),
        "reason_codes",
    )


def _rate_sub_fen(pack: Pack, name: str, on: dt.date) -> int:
    """A daily rate (yuan) in 1/10000 fen, exactly; raises naming the guideline when the rate has no value."""
    value = pack.param(name).decimal(on) * 100 * SUB_FEN
    if value != value.to_integral_value():
        raise RulesError(f"parameter {name} = {pack.param(name).at(on)} yuan has more than 6 decimals")
    return int(value)


@formula(PACK, "bill", since=SINCE)
def bill(inputs: dict[str, pl.DataFrame], pack: Pack, period: str) -> pl.DataFrame:
    """二(三), 二(四)1: a month's care days become claim lines, one per person, provider and care mode.

    A day is paid at the daily rate of the person's grade and the care mode in force that day (set by the
    guideline), unless: the provider was not designated that day, the person had died, was not entitled, or was
    in hospital (by the `billing.hospital` assumptions); the provider is not of a kind that may give that mode
    (no individual carers); or another service of that person was already paid that day (其中一种护理服务). The
    fund pays the whole standard (按标准享受补助); each line is rounded half-up once.
    """
    first, _ = period_bounds(period)
    pack.check_period(period)
    hospital = "billing.hospital"
    days = care_day_status(
        inputs,
        stay_kinds=pack.param(f"{hospital}.stay_kinds").at(first),
        stay_first_day_paid=pack.param(f"{hospital}.admission_day_paid").at(first),
        stay_last_day_paid=pack.param(f"{hospital}.discharge_day_paid").at(first),
    )
    kinds = pack.children("billing.provider_kinds")
    days = with_params(days, pack, {f"_kinds_{mode}": name for mode, name in kinds.items()}, on="care_date")
    allowed = pl.lit([], dtype=pl.List(pl.Utf8))
    for mode in kinds:
        allowed = pl.when(pl.col("care_mode") == mode).then(pl.col(f"_kinds_{mode}")).otherwise(allowed)
    wrong_kind = ~allowed.list.contains(pl.col("provider_kind")).fill_null(False)
    not_for_mode = pl.col("reason").is_null() & wrong_kind
    days = days.with_columns(
        reason=pl.when(not_for_mode).then(pl.lit("PROVIDER_NOT_FOR_MODE")).otherwise("reason")
    ).drop([f"_kinds_{mode}" for mode in kinds])

    order = pack.param("billing.same_day_mode_order").at(first)
    rank = pl.col("care_mode").replace_strict(
        {m: i for i, m in enumerate(order)}, default=len(order), return_dtype=pl.Int64
    )
    days = (
        days.with_columns(_rank=rank)
        .sort("person_id", "care_date", "_rank", "provider_id")
        .with_columns(_nth=pl.col("reason").is_null().cast(pl.Int64).cum_sum().over("person_id", "care_date"))
        .with_columns(
            reason=pl.when(pl.col("reason").is_null() & (pl.col("_nth") > 1))
            .then(pl.lit("ONE_SERVICE_PER_DAY"))
            .otherwise("reason")
        )
        .drop("_rank", "_nth")
    )

    rate_name = pl.format("billing.daily_rate.{}.grade_{}", pl.col("care_mode"), pl.col("grade"))
    days = days.with_columns(rate_param=pl.when(pl.col("reason").is_null()).then(rate_name))
    needed = (
        days.filter(pl.col("rate_param").is_not_null())
        .select("care_date", "rate_param")
        .unique()
        .sort("care_date", "rate_param")
    )
    rates = needed.with_columns(
        rate_sub_fen=pl.Series(
            [_rate_sub_fen(pack, n, d) for d, n in needed.iter_rows()],
            dtype=pl.Int64,
        )
    )
    days = days.join(rates, on=["care_date", "rate_param"], how="left").with_columns(
        day_gross_fen=pl.col("rate_sub_fen").fill_null(0)
    )
    used = (
        days.filter(pl.col("rate_param").is_not_null())
        .group_by("person_id", "provider_id", "care_mode")
        .agg(rates_used=pl.col("rate_param").unique().sort())
    )
    fixed = [f"{hospital}.stay_kinds", f"{hospital}.admission_day_paid", f"{hospital}.discharge_day_paid"]
    fixed.append("billing.same_day_mode_order")
    lines = (
        claim_lines(days)
        .join(used, on=["person_id", "provider_id", "care_mode"], how="left")
        .with_columns(
            gross_fen=(pl.col("gross_fen") * 2 + SUB_FEN) // (2 * SUB_FEN),
            rule_params=pl.concat_list(
                pl.col("rates_used").fill_null(pl.lit([], dtype=pl.List(pl.Utf8))),
                pl.format("billing.provider_kinds.{}", pl.col("care_mode")),
                *[pl.lit(n) for n in fixed],
            ),
        )
        .with_columns(payable_fen=pl.col("gross_fen"))
    )
    return finish(lines, period)


@formula(PACK, "assessment_fees", since=SINCE)
def assessment_fees(assessments: pl.DataFrame, pack: Pack, on: dt.date) -> pl.DataFrame:
    """三(一): 首次和特定的评估鉴定费用从长期护理保险试点资金列支. The first assessment of an application and any
    assessment the bureau specifies are paid by the fund in full (the document sets no cap); any other assessment
    (e.g. a reassessment the applicant asks for) is paid as `assessment.other_fees_paid_by` says."""
    pack.check_date(on)
    first = pack.param("assessment.fund_pays_first").at(on)
    specified = pack.param("assessment.fund_pays_specified").at(on)
    by = pack.param("assessment.specified_requested_by").at(on)
    other = pack.param("assessment.other_fees_paid_by").at(on)
    if other not in ("applicant", "fund"):
        raise RulesError(f"assessment.other_fees_paid_by must be applicant or fund, not {other!r}")
    funded = (pl.lit(first) & (pl.col("sequence") == 1)) | (
        pl.lit(specified) & pl.col("requested_by").is_in(by).fill_null(False)
    )
    by_fund = funded | pl.lit(other == "fund")
    fee = pl.col("fee_fen").fill_null(0)
    return assessments.select(
        "application_id",
        "sequence",
        fund_fen=pl.when(by_fund).then(fee).otherwise(0).cast(pl.Int64),
        applicant_fen=pl.when(by_fund).then(0).otherwise(fee).cast(pl.Int64),
        reason_codes=pl.when(by_fund)
        .then(pl.lit([], dtype=pl.List(pl.Utf8)))
        .otherwise(pl.lit(["ASSESSMENT_NOT_FIRST_OR_SPECIFIED"], dtype=pl.List(pl.Utf8))),
    ).sort("application_id", "sequence")
