"""Beijing, Shijingshan pilot (京医保发〔2020〕30号): contributions, eligibility and billing on whole frames.

Every number comes from the pack's parameters, resolved on the date the rule is about: the contribution year,
the day an application was received, the month of care (one ceiling and one fund ratio per month), the day an
assessment's fee is settled.
"""

from __future__ import annotations

import datetime as dt
import re

import polars as pl

from rules.common import (
    care_day_status,
    check_dates,
    claim_lines,
    dues_long,
    eligible_days,
    finish,
    ratio,
    times_half_up,
    with_reasons,
)
from rules.engine import Pack, RulesError, half_up, period_bounds, with_params
from rules.formulas import formula
from rules.inputs import OUTPUT_DECISIONS

PACK = "beijing_shijingshan"

# Provider kinds that are individual carers rather than institutions (rules.inputs.PROVIDER_KINDS).
INDIVIDUAL_CARER_KINDS = ["carer_trained", "carer_untrained"]

# What `eligibility` returns (rules.inputs).


def year_bounds(period: str) -> tuple[dt.date, dt.date]:
    """First and last day of a contribution year written `YYYY`."""
    if not re.fullmatch(r"\d{4}", period):
        raise RulesError(f"pack {PACK} collects contributions by year: period {period!r} must be of the form YYYY")
    year = int(period)
    return dt.date(year, 1, 1), dt.date(year, 12, 31)


def age(birth: pl.Expr, on: pl.Expr) -> pl.Expr:
    """Full years of age on `on` (null where the birth date is unknown)."""
    before_birthday = (on.dt.month() < birth.dt.month()) | (
        (on.dt.month() == birth.dt.month()) & (on.dt.day() < birth.dt.day())
    )
    return on.dt.year().cast(pl.Int64) - birth.dt.year().cast(pl.Int64) - before_birthday.cast(pl.Int64)


@formula(PACK, "contributions_due", since="2020-11-15")
def contributions_due(persons: pl.DataFrame, pack: Pack, period: str) -> pl.DataFrame:
    """三(一), 三(二): each member's dues for a contribution year (`YYYY`), by who pays.

    180 a year. Employee medical insurance members (employees, retirees, flexible workers, people on
    unemployment benefit): the unit's half is moved from the employee medical pooling fund (`medical_fund`), the
    individual's half is deducted from the personal account (`personal_account`). Residents: the budget's half
    (`city_budget`) and the individual's half (`individual`); where the resident's medical premium is fully
    subsidised, the budget pays the individual's half too (`government_subsidy`). Students, children and people
    who died before the year owe nothing. Parameters are resolved on the year's first day in force.
    """
    first, last = year_bounds(period)
    on = max(first, pack.valid_from)
    pack.check_date(on if on <= last else last)
    end = min(last, pack.valid_to) if pack.valid_to else last
    annual = pack.param("contributions.annual_amount").fen(on)
    mode = pack.param("contributions.partial_year").at(on)
    if mode == "full":
        days, year_days = 1, 1
    elif mode == "prorate_days":
        days, year_days = (end - on).days + 1, (last - first).days + 1
    else:
        raise RulesError(f"contributions.partial_year must be full or prorate_days, not {mode!r}")

    def share(name: str) -> int:
        num, den = ratio(pack.param(name).at(on))
        return half_up(annual * num * days, den * year_days)

    employee_types = pack.param("coverage.employee_insurance_types").at(on)
    resident_types = pack.param("coverage.resident_insurance_types").at(on)
    employee = pl.col("insurance_type").is_in(employee_types)
    resident = pl.col("insurance_type").is_in(resident_types)
    subsidised = (
        resident
        & pl.col("medical_premium_fully_subsidised").fill_null(False)
        & pl.lit(bool(pack.param("contributions.resident.subsidised_individual_share_by_budget").at(on)))
    )
    resident_individual = share("contributions.resident.individual_share")
    zero = pl.lit(0, dtype=pl.Int64)
    shares = {
        "medical_fund": pl.when(employee).then(share("contributions.employee.unit_share")).otherwise(zero),
        "personal_account": pl.when(employee).then(share("contributions.employee.individual_share")).otherwise(zero),
        "city_budget": pl.when(resident).then(share("contributions.resident.government_share")).otherwise(zero),
        "individual": pl.when(resident & ~subsidised).then(resident_individual).otherwise(zero),
        "government_subsidy": pl.when(subsidised).then(resident_individual).otherwise(zero),
    }
    age_on = {"year_start": on, "year_end": end}.get(pack.param("coverage.age_reference").at(on))
    if age_on is None:
        raise RulesError("coverage.age_reference must be year_start or year_end")
    members = persons.filter(
        (employee | resident)
        & (pl.col("death_date").is_null() | (pl.col("death_date") >= pl.lit(on)))
        & ~not_covered_student(pack, on)
        & ~not_covered_child(pack, on, pl.lit(age_on))
    )
    return dues_long(members.with_columns(**shares), period)


def not_covered_student(pack: Pack, on: dt.date) -> pl.Expr:
    """三(一) 暂不含学生."""
    return pl.lit(bool(pack.param("coverage.excludes_students").at(on))) & pl.col("student").fill_null(False)


def not_covered_child(pack: Pack, on: dt.date, age_on: pl.Expr) -> pl.Expr:
    """三(一) 暂不含儿童: younger than the child age limit on `age_on`."""
    limit = int(pack.param("coverage.child_age_limit").at(on))
    young = (age(pl.col("birth_date"), age_on) < limit).fill_null(False)
    return pl.lit(bool(pack.param("coverage.excludes_children").at(on))) & young


@formula(PACK, "eligibility", since="2020-11-15")
def eligibility(inputs: dict[str, pl.DataFrame], pack: Pack) -> pl.DataFrame:
    """三(一): who may receive benefits, from when, and every reason why not.

    Covered: employee and resident medical insurance members, except students and children. Benefits: severe
    disability (grade >= 3) lasting 6 months or more after standard treatment, assessed on application. Benefits
    start on the conclusion day (an assumption), never before care services start (附件 三(三)9: 2020-12-01),
    and end on death. One row per assessed application; parameters resolved on the day of application.
    """
    apps = inputs["apps"]
    check_dates(apps, "received_on", pack)
    if apps.is_empty():
        return pl.DataFrame(schema=OUTPUT_DECISIONS)
    f = with_params(
        apps,
        pack,
        {
            "_employee_types": "coverage.employee_insurance_types",
            "_resident_types": "coverage.resident_insurance_types",
            "_excl_students": "coverage.excludes_students",
            "_excl_children": "coverage.excludes_children",
            "_child_age": "coverage.child_age_limit",
            "_min_grade": "eligibility.min_grade",
            "_min_months": "eligibility.min_disability_months",
            "_services_start": "eligibility.services_start",
            "_start_from": "eligibility.start_from",
            "_req_paid": "eligibility.requires_paid_contribution",
        },
        on="received_on",
    )
    bad_start = set(f["_start_from"].unique().to_list()) - {"conclusion", "application"}
    if bad_start:
        raise RulesError(f"eligibility.start_from must be conclusion or application, not {sorted(bad_start)}")
    f = f.join(_paid_in_full(f, inputs["contributions"]), on="application_id", how="left")
    checks = {
        "NOT_COVERED_INSURANCE_TYPE": ~(
            pl.col("_employee_types").list.contains(pl.col("insurance_type"))
            | pl.col("_resident_types").list.contains(pl.col("insurance_type"))
        ).fill_null(False),
        "NOT_COVERED_STUDENT": pl.col("_excl_students") & pl.col("student").fill_null(False),
        "NOT_COVERED_CHILD": pl.col("_excl_children")
        & (age(pl.col("birth_date"), pl.col("received_on")) < pl.col("_child_age")).fill_null(False),
        "DECEASED": pl.col("death_date").is_not_null()
        & (pl.col("death_date") <= pl.coalesce("published_on", "received_on")),
        "NOT_SEVERE": pl.col("grade").is_null() | (pl.col("grade") < pl.col("_min_grade")),
        "DISABILITY_UNDER_6_MONTHS": (
            pl.col("disabled_since").dt.offset_by(pl.format("{}mo", pl.col("_min_months"))) > pl.col("received_on")
        ).fill_null(True),
        "CONTRIBUTION_NOT_PAID": pl.col("_req_paid") & ~pl.col("_paid_in_full").fill_null(False),
    }
    out = with_reasons(f, checks)
    base = pl.when(pl.col("_start_from") == "application").then(pl.col("received_on")).otherwise(pl.col("published_on"))
    start = pl.when(base.is_not_null()).then(pl.max_horizontal(base, pl.col("_services_start")))
    return out.select(
        "application_id",
        "person_id",
        "approved",
        "grade",
        pl.when("approved").then(start).cast(pl.Date).alias("start_date"),
        pl.when("approved").then(pl.col("death_date")).alias("end_date"),
        "reason_codes",
    )


def _paid_in_full(apps: pl.DataFrame, contributions: pl.DataFrame) -> pl.DataFrame:
    """Per application: the contribution year of the application (`YYYY`) paid in full by the day of
    application (a payment with no date counts)."""
    year = apps.select(
        "application_id", "person_id", "received_on", _period=pl.col("received_on").dt.year().cast(pl.Utf8)
    )
    on_time = pl.col("paid_on").is_null() | (pl.col("paid_on") <= pl.col("received_on"))
    return (
        year.join(contributions, left_on=["person_id", "_period"], right_on=["person_id", "period"])
        .group_by("application_id")
        .agg(
            _due=pl.col("due_fen").fill_null(0).sum(),
            _paid=pl.when(on_time).then(pl.col("paid_fen").fill_null(0)).otherwise(0).sum(),
        )
        .select("application_id", _paid_in_full=pl.col("_paid") >= pl.col("_due"))
    )


@formula(PACK, "bill", since="2020-11-15")
def bill(inputs: dict[str, pl.DataFrame], pack: Pack, period: str) -> pl.DataFrame:
    """三(五): a month's eligible care costs become claim lines, one per person, provider and care mode.

    Care rows carry the eligible cost (符合规定的长期护理费用). A day is not paid before the entitlement, after its
    end or death, from a provider that was not designated that day (四(二)), from an individual carer when the
    fund pays none, or inside a hospital stay (an assumption: the document is silent). The paid costs of a
    person's month count up to the monthly ceiling (3000), filled line by line in provider order; the fund pays
    its ratio (about 70%) of what counts, rounded half-up once per line; the rest is the member's.
    """
    first, last = period_bounds(period)
    pack.check_period(period)
    days = care_day_status(
        inputs,
        stay_kinds=list(pack.param("billing.hospital.stay_kinds").at(first)),
        stay_first_day_paid=bool(pack.param("billing.hospital.admission_day_paid").at(first)),
        stay_last_day_paid=bool(pack.param("billing.hospital.discharge_day_paid").at(first)),
    )
    pays_carers = bool(pack.param("payment.pays_individual_carers").at(first))
    carer_refused = (
        pl.col("reason").is_null() & pl.col("provider_kind").is_in(INDIVIDUAL_CARER_KINDS) & pl.lit(not pays_carers)
    )
    days = days.with_columns(
        reason=pl.when(carer_refused).then(pl.lit("INDIVIDUAL_CARER_NOT_PAID")).otherwise(pl.col("reason")),
        day_gross_fen=pl.col("submitted_fen"),
    )
    lines = claim_lines(days)
    lines = _within_ceiling(lines, inputs, pack, first, last)
    ratios = {mode: pack.param(name).at(first) for mode, name in pack.children("billing.fund_ratio").items()}
    unknown = set(lines["care_mode"].unique().to_list()) - set(ratios)
    if unknown:
        raise RulesError(f"pack {PACK} has no billing.fund_ratio for care mode(s) {', '.join(sorted(unknown))}")
    payable = pl.lit(0, dtype=pl.Int64)
    for mode, r in ratios.items():
        payable = (
            pl.when(pl.col("care_mode") == mode).then(times_half_up(pl.col("within_ceiling_fen"), r)).otherwise(payable)
        )
    fixed = [
        "billing.monthly_cost_ceiling",
        "billing.ceiling_partial_month",
        "billing.ceiling_sharing",
        "billing.hospital.stay_kinds",
        "billing.hospital.admission_day_paid",
        "billing.hospital.discharge_day_paid",
        "payment.pays_individual_carers",
    ]
    over = pl.col("gross_fen") - pl.col("within_ceiling_fen")
    lines = lines.with_columns(
        payable_fen=payable,
        over_cap_fen=over,
        cap_reason=pl.when(over > 0).then(pl.lit("OVER_MONTHLY_CEILING")).otherwise(pl.lit(None, dtype=pl.Utf8)),
        rule_params=pl.concat_list(
            pl.lit(fixed[0]), pl.format("billing.fund_ratio.{}", "care_mode"), *[pl.lit(n) for n in fixed[1:]]
        ),
    )
    return finish(lines, period)


def _within_ceiling(
    lines: pl.DataFrame, inputs: dict[str, pl.DataFrame], pack: Pack, first: dt.date, last: dt.date
) -> pl.DataFrame:
    """三(五) 3000元/月: the part of each line's paid costs that fits under the person's monthly ceiling, the
    ceiling filled in provider id order, then care mode (`billing.ceiling_sharing`)."""
    ceiling = pack.param("billing.monthly_cost_ceiling").fen(first)
    sharing = pack.param("billing.ceiling_sharing").at(first)
    if sharing != "provider_order":
        raise RulesError(f"billing.ceiling_sharing must be provider_order, not {sharing!r}")
    mode = pack.param("billing.ceiling_partial_month").at(first)
    lines = lines.with_columns(ceiling_fen=pl.lit(ceiling, dtype=pl.Int64))
    if mode == "prorate":
        month_days = (last - first).days + 1
        span = eligible_days(inputs, first, last)
        lines = lines.join(span, on="person_id", how="left").with_columns(
            ceiling_fen=(pl.lit(ceiling) * pl.col("eligible_days").fill_null(0) * 2 + month_days) // (2 * month_days)
        )
    elif mode != "full":
        raise RulesError(f"billing.ceiling_partial_month must be full or prorate, not {mode!r}")
    gross = pl.col("gross_fen")
    cum = gross.cum_sum().over("person_id", order_by=["provider_id", "care_mode"])
    fitted = (pl.min_horizontal(cum, pl.col("ceiling_fen")) - (cum - gross)).clip(0)
    return lines.with_columns(within_ceiling_fen=fitted.cast(pl.Int64))


@formula(PACK, "assessment_fees", since="2020-11-15")
def assessment_fees(assessments: pl.DataFrame, pack: Pack, on: dt.date) -> pl.DataFrame:
    """三(四) (silent on fees): who pays each assessment's fee, all assumptions. The fund pays the first
    assessment of an application and any later one the agency specified; the applicant pays a reassessment
    they asked for. No fee cap is set."""
    pack.check_date(on)
    first = pl.col("sequence") == 1
    bureau = pl.col("requested_by") == "bureau"
    funded = (
        pl.when(first)
        .then(pl.lit(bool(pack.param("assessment.fund_pays_first").at(on))))
        .when(bureau)
        .then(pl.lit(bool(pack.param("assessment.fund_pays_bureau_requested").at(on))))
        .otherwise(pl.lit(bool(pack.param("assessment.fund_pays_applicant_requested").at(on))))
    )
    code = (
        pl.when(first)
        .then(pl.lit("ASSESSMENT_FEE_FIRST_NOT_FUNDED"))
        .when(bureau)
        .then(pl.lit("ASSESSMENT_FEE_BUREAU_NOT_FUNDED"))
        .otherwise(pl.lit("ASSESSMENT_FEE_ON_REQUEST"))
    )
    fee = pl.col("fee_fen").fill_null(0)
    return assessments.with_columns(_funded=funded.fill_null(False)).select(
        "application_id",
        "sequence",
        fund_fen=pl.when("_funded").then(fee).otherwise(0).cast(pl.Int64),
        applicant_fen=pl.when("_funded").then(0).otherwise(fee).cast(pl.Int64),
        reason_codes=pl.concat_list(
            pl.when(~pl.col("_funded")).then(code).otherwise(pl.lit(None, dtype=pl.Utf8))
        ).list.drop_nulls(),
    )
