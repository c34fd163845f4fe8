"""Jilin (《吉林省关于完善长期护理保险制度的实施方案（征求意见稿）》, a draft): contributions, eligibility, billing and
assessment fees as vectorised rules on frames.

Every number comes from the pack's parameters, resolved on the date the rule is about: the month or year of a
contribution, the day an application was received, the day care was given (the annual cap on 1 January of the year).

Enrolment history (二(六)): `inputs["contributions"]` holds one row per person and period, `YYYY-MM` (employee-policy
members) or `YYYY` (resident-policy members, a whole year). A period falls due when it ends. A gap, begun by a
period not paid when it falls due, is *insured* time when made good no later than `enrolment.continuity_grace_months`
after its first period ends; otherwise the whole gap is a lapse, and its periods paid later are arrears made good
(补缴), which shorten the waiting period but are not insured time (二(六)3); unpaid, or missing, they stay lapsed. A
first enrolment after the scheme start counts as a lapse from the start (二(六)2). A lapse counts as its months / 12
rounded up (不足1年的按1年计算).

The formulas are in force from the pack's date of effect (`pack.valid_from`), which the draft does not fix: an
operator sets it, and the scheme start, in the override file.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import polars as pl

from rules.common import LINE_KEYS, care_day_status, claim_lines, dues_long, finish, times_half_up
from rules.engine import OVERRIDES_ENV, VALID_FROM, Pack, RulesError, period_bounds, with_params
from rules.formulas import DATE_OF_EFFECT, formula
from rules.inputs import OUTPUT_CLAIMS, OUTPUT_DECISIONS, PAYERS

PACK = "jilin"
HOME_COMMUNITY = ["home", "community"]
CARER_KINDS = ["carer_trained", "carer_untrained"]
READINGS = ("reenrolment_from", "lapse_months_from")
# What a decision counted, beside the contract's columns (see `eligibility`).
DECISION_DETAILS: dict[str, Any] = {
    "waiting_days": pl.Int64,
    "waiting_from": pl.Date,
    "lapsed_years": pl.Int64,
    "repaid_years": pl.Int64,
    "continuous_years": pl.Int64,
}


def _bp(value: Any) -> int:
    """A ratio parameter in basis points (0.7 -> 7000), exactly."""
    bp = Decimal(str(value)) * 10000
    if bp != bp.to_integral_value():
        raise RulesError(f"ratio {value} is finer than a basis point")
    return int(bp)


def _month_index(date: pl.Expr) -> pl.Expr:
    return date.dt.year().cast(pl.Int64) * 12 + date.dt.month().cast(pl.Int64) - 1


def _month_start(index: pl.Expr) -> pl.Expr:
    return pl.date(index // 12, index % 12 + 1, 1)


def _month_end(index: pl.Expr) -> pl.Expr:
    return _month_start(index).dt.month_end()


def _year_bounds(period: str) -> tuple[dt.date, dt.date]:
    if len(period) != 4 or not period.isdigit():
        raise RulesError(f"period {period!r} is not of the form YYYY or YYYY-MM")
    return dt.date(int(period), 1, 1), dt.date(int(period), 12, 31)


# --- contributions -------------------------------------------------------------------------------------------------


@formula(PACK, "contributions_due", since=DATE_OF_EFFECT)
def contributions_due(persons: pl.DataFrame, pack: Pack, period: str) -> pl.DataFrame:
    """二(三)1-5: dues by who pays, each share rounded half-up to the fen.

    A month (`YYYY-MM`) gives the employee-policy members' dues on their own base (二(三)2: the medical insurance base;
    retirees their basic pension): employees share the rate with the employer in equal parts; retirees pay the
    employee's share rate alone; members without an employer pay the whole rate. A year (`YYYY`) gives the
    resident-policy members' dues on the province's prior-year disposable income, split 1:1 between the individual
    and the government; residents under 18 on 1 January follow a parent and owe nothing, and a fully subsidised
    member's individual share is paid by the medical assistance fund. Members on a work-injury care allowance are
    insured and contribute (they are not paid benefits, 二(五)).
    """
    if len(period) == 4:
        return _resident_dues(persons, pack, period)
    first, _ = period_bounds(period)
    pack.check_period(period)
    rate = pack.param("contributions.employee.rate").decimal(first)
    employer_share = pack.param("contributions.employee.employer_share").decimal(first)
    own_payer = pack.param("contributions.employee.individual_payer").at(first)
    retiree_payer = pack.param("contributions.retiree.payer").at(first)
    sole = pack.param("contributions.sole_payer_types").at(first)
    for payer in (own_payer, retiree_payer):
        if payer not in PAYERS:
            raise RulesError(f"pack {pack.id}: payer {payer!r} is not one of {', '.join(PAYERS)}")
    base = pl.col("contribution_base_fen")
    kind = pl.col("insurance_type")
    employer_part = times_half_up(base, rate * employer_share)
    own_part = times_half_up(base, rate * (1 - employer_share))
    whole = times_half_up(base, rate)
    shares: dict[str, pl.Expr] = {p: pl.lit(0, dtype=pl.Int64) for p in PAYERS}
    shares["employer"] = pl.when(kind == "employee").then(employer_part).otherwise(shares["employer"])
    shares[own_payer] = pl.when(kind == "employee").then(own_part).otherwise(shares[own_payer])
    shares[retiree_payer] = pl.when(kind == "retiree").then(own_part).otherwise(shares[retiree_payer])
    shares["individual"] = pl.when(kind.is_in(sole)).then(whole).otherwise(shares["individual"])
    covered = set(pack.param("coverage.insurance_types").at(first))
    monthly = [t for t in pack.param("coverage.employee_policy_types").at(first) if t in covered]
    alive = pl.col("death_date").is_null() | (pl.col("death_date") >= pl.lit(first))
    enrolled = persons.filter(kind.is_in(monthly) & alive)
    return dues_long(enrolled.with_columns(**shares), period)


def _resident_dues(persons: pl.DataFrame, pack: Pack, period: str) -> pl.DataFrame:
    """二(三)1-2, 3, 5: a resident-policy member's dues for a year."""
    first, last = _year_bounds(period)
    pack.check_date(first)
    pack.check_date(last)
    income = pack.param("contributions.resident.base_disposable_income").fen(first)
    rate = pack.param("contributions.resident.rate").decimal(first)
    own_share = pack.param("contributions.resident.individual_share").decimal(first)
    subsidised = bool(pack.param("contributions.resident.fully_subsidised_by_medical_assistance").at(first))
    minor_age = int(pack.param("coverage.minors_follow_parents_under_age").at(first))
    covered = set(pack.param("coverage.insurance_types").at(first))
    yearly = [t for t in pack.param("coverage.resident_policy_types").at(first) if t in covered]
    own = times_half_up(pl.lit(income, dtype=pl.Int64), rate * own_share)
    government = times_half_up(pl.lit(income, dtype=pl.Int64), rate * (1 - own_share))
    full_subsidy = pl.col("medical_premium_fully_subsidised").fill_null(False) & pl.lit(subsidised)
    minor = pl.col("birth_date").is_not_null() & (pl.col("birth_date").dt.offset_by(f"{minor_age}y") > pl.lit(first))
    alive = pl.col("death_date").is_null() | (pl.col("death_date") >= pl.lit(first))
    members = persons.filter(pl.col("insurance_type").is_in(yearly) & ~minor & alive)
    wide = members.with_columns(
        individual=pl.when(full_subsidy).then(0).otherwise(own),
        medical_assistance=pl.when(full_subsidy).then(own).otherwise(0),
        government=government,
    )
    return dues_long(wide, period)


# --- enrolment history ---------------------------------------------------------------------------------------------


def _history(keys: pl.DataFrame, contributions: pl.DataFrame) -> pl.DataFrame:
    """二(六): each key's enrolment as of its `as_of` date, from the contribution history up to that month.

    Payments made after `as_of` are not known on that day. `keys` columns: key, person_id, as_of, floor (where a
    late first enrolment's lapse begins; null if it does not count), grace (months), pen_from, inc_from (dates),
    reading, part_year (bool: a part year counts as a year).

    Each month up to `as_of` is insured, lapsed or not yet due. A month falls due at the end of its period. A gap
    begins with a month not paid when it falls due; it is made good when paid no later than `grace` months after
    that month's period ends. A gap not made good by then is a lapse, and so is every later month of it: a month
    not paid when it falls due while the month before is still unpaid, and that month lapsed. Arrears of a lapse
    paid later (补缴) do not make it insured time; they count only as months paid back. A month unpaid whose grace
    has not run out at `as_of`, outside a lapse, is not (yet) a lapse.

    Returns per key: enrolled (insured at as_of: an insured month and no lapse after it), pen_years (all penalised
    lapses' years), reenrol (first day of the last penalised re-enrolment), lapse_years, unrepaid_years and
    repaid_years (whole years paid back) of that lapse, run_years (full continuous years of the current run counted
    from inc_from; 0 when no longer insured at as_of).
    """
    out_schema = {
        "key": pl.Utf8,
        "enrolled": pl.Boolean,
        "pen_years": pl.Int64,
        "reenrol": pl.Date,
        "lapse_years": pl.Int64,
        "unrepaid_years": pl.Int64,
        "repaid_years": pl.Int64,
        "run_years": pl.Int64,
    }
    yearly = pl.col("period").str.len_chars() == 4
    rows = (
        contributions.with_columns(
            start=pl.col("period").str.slice(0, 4).cast(pl.Int64) * 12
            + pl.when(yearly).then(0).otherwise(pl.col("period").str.slice(5, 2).cast(pl.Int64) - 1),
            n=pl.when(yearly).then(12).otherwise(1),
            paid_full=pl.col("paid_fen").fill_null(0) >= pl.col("due_fen").fill_null(0),
        )
        .with_columns(end=pl.col("start") + pl.col("n") - 1, mi=pl.int_ranges("start", pl.col("start") + pl.col("n")))
        .explode("mi")
        .select("person_id", "mi", "end", "paid_full", "paid_on")
    )
    k = keys.with_columns(
        as_of_mi=_month_index(pl.col("as_of")),
        pen_mi=_month_index(pl.col("pen_from")),
        inc_mi=_month_index(pl.col("inc_from")),
        floor_mi=_month_index(pl.col("floor")),
    )
    known = pl.col("paid_full") & (pl.col("paid_on").is_null() | (pl.col("paid_on") <= pl.col("as_of")))

    def paid_by(day: str) -> pl.Expr:
        return pl.col("paid") & (pl.col("paid_on").is_null() | (pl.col("paid_on") <= pl.col(day)))

    status = (
        k.select("key", "person_id", "as_of", "as_of_mi", "grace")
        .join(rows, on="person_id")
        .filter(pl.col("mi") <= pl.col("as_of_mi"))
        .with_columns(paid=known, due=_month_end(pl.col("end")), deadline=_month_end(pl.col("end") + pl.col("grace")))
        .with_columns(
            punctual=paid_by("due"),
            in_grace=paid_by("deadline"),
            undated=pl.col("paid") & pl.col("paid_on").is_null(),
        )
        .group_by("key", "mi")
        .agg(
            paid=pl.col("paid").any(),
            punctual=pl.col("punctual").any(),
            in_grace=pl.col("in_grace").any(),
            undated=pl.col("undated").any(),
            paid_at=pl.col("paid_on").filter(pl.col("paid")).min(),
            due=pl.col("due").min(),
            deadline=pl.col("deadline").min(),
        )
    )
    first = status.group_by("key").agg(first_mi=pl.col("mi").min())
    if first.is_empty():
        return keys.select("key").join(pl.DataFrame(schema=out_schema), on="key", how="left").pipe(_history_defaults)
    months = (
        first.join(k, on="key")
        .with_columns(origin=pl.min_horizontal("first_mi", pl.col("floor_mi").fill_null(pl.col("first_mi"))))
        .with_columns(mi=pl.int_ranges("origin", pl.col("as_of_mi") + 1))
        .explode("mi")
        .select("key", "mi", "as_of", "grace", "pen_mi", "inc_mi", "reading", "part_year")
        .join(status, on=["key", "mi"], how="left")
        .with_columns(
            pl.col("paid", "punctual", "in_grace", "undated").fill_null(False),
            pl.col("due").fill_null(_month_end(pl.col("mi"))),
            pl.col("deadline").fill_null(_month_end(pl.col("mi") + pl.col("grace"))),
        )
        .with_columns(pl.when(pl.col("undated")).then(None).otherwise(pl.col("paid_at")).alias("paid_at"))
        .sort("key", "mi")
    )
    as_of = pl.col("as_of")
    # Not paid when it fell due; not made good within the grace of its own period.
    behind = ~pl.col("punctual") & (pl.col("paid") | (pl.col("due") < as_of))
    missed = ~pl.col("in_grace") & (pl.col("paid") | (pl.col("deadline") < as_of))
    # The month before was still unpaid when this one fell due (the same gap goes on).
    prev_paid, prev_at = pl.col("paid").shift(1).over("key"), pl.col("paid_at").shift(1).over("key")
    same_gap = prev_paid.is_not_null() & (~prev_paid | (prev_at.is_not_null() & (prev_at > pl.col("due"))))
    months = (
        months.with_columns(gap=(~(behind & same_gap)).cast(pl.Int64).cum_sum().over("key"))
        .with_columns(lapsed=missed.cast(pl.Int64).cum_max().over("key", "gap") > 0)
        .with_columns(insured=pl.col("paid") & ~pl.col("lapsed"))
    )
    span = (
        months.group_by("key")
        .agg(
            last_on=pl.col("mi").filter(pl.col("insured")).max(),
            last_lapsed=pl.col("mi").filter(pl.col("lapsed")).max(),
        )
        .filter(pl.col("last_on").is_not_null())
        .with_columns(enrolled=pl.col("last_lapsed").is_null() | (pl.col("last_lapsed") < pl.col("last_on")))
    )
    months = months.join(span.select("key", "last_on"), on="key").filter(pl.col("mi") <= pl.col("last_on"))
    prev = pl.col("lapsed").shift(1).over("key")
    months = months.with_columns(run=(prev.is_null() | (prev != pl.col("lapsed"))).cast(pl.Int64).cum_sum().over("key"))
    after = pl.col("mi") >= pl.col("pen_mi")
    unpaid = ~pl.col("paid")
    runs = months.group_by("key", "run").agg(
        lapsed=pl.col("lapsed").first(),
        end=pl.col("mi").max(),
        months=pl.len().cast(pl.Int64),
        unpaid=unpaid.sum().cast(pl.Int64),
        months_after=after.sum().cast(pl.Int64),
        unpaid_after=(after & unpaid).sum().cast(pl.Int64),
        counted=(pl.col("insured") & (pl.col("mi") >= pl.col("inc_mi"))).sum().cast(pl.Int64),
        pen_mi=pl.col("pen_mi").first(),
        reading=pl.col("reading").first(),
        part_year=pl.col("part_year").first(),
    )

    def years(m: pl.Expr) -> pl.Expr:
        return pl.when(pl.col("part_year")).then((m + 11) // 12).otherwise(m // 12)

    by_months = pl.col("reading") == "lapse_months_from"
    from_reenrol = pl.col("end") + 1 >= pl.col("pen_mi")
    lapses = (
        runs.filter(pl.col("lapsed"))
        .with_columns(
            pen_months=pl.when(by_months).then("months_after").when(from_reenrol).then("months").otherwise(0),
            pen_unpaid=pl.when(by_months).then("unpaid_after").when(from_reenrol).then("unpaid").otherwise(0),
        )
        .filter(pl.col("pen_months") > 0)
        .with_columns(
            lapse_years=years(pl.col("pen_months")),
            unrepaid_years=years(pl.col("pen_unpaid")),
            # 二(六)3 每补缴1年可减少30天, with 二(六)1 不足1年的按1年计算，下同: the lapse's years (a part year
            # counted as a year) less the years still unpaid (likewise), whichever months they are; a lapse paid
            # back in full is wholly made good.
            repaid_years=years(pl.col("pen_months")) - years(pl.col("pen_unpaid")),
        )
        .sort("key", "end")
        .group_by("key")
        .agg(
            pen_years=pl.col("lapse_years").sum(),
            reenrol=_month_start(pl.col("end").last() + 1),
            lapse_years=pl.col("lapse_years").last(),
            unrepaid_years=pl.col("unrepaid_years").last(),
            repaid_years=pl.col("repaid_years").last(),
        )
    )
    current = runs.sort("key", "run").group_by("key").agg(run_years=pl.col("counted").last() // 12)
    enrolled = (
        span.select("key", "enrolled")
        .join(current, on="key")
        .with_columns(run_years=pl.when("enrolled").then("run_years").otherwise(0))
    )
    return (
        keys.select("key")
        .join(enrolled, on="key", how="left")
        .join(lapses, on="key", how="left")
        .select(list(out_schema))
        .pipe(_history_defaults)
    )


def _history_defaults(h: pl.DataFrame) -> pl.DataFrame:
    return h.with_columns(
        pl.col("enrolled").fill_null(False),
        pl.col("pen_years").fill_null(0),
        pl.col("lapse_years").fill_null(0),
        pl.col("unrepaid_years").fill_null(0),
        pl.col("repaid_years").fill_null(0),
        pl.col("run_years").fill_null(0),
    )


def _history_keys(frame: pl.DataFrame, key: str, as_of: pl.Expr, pack: Pack, on: dt.date) -> pl.DataFrame:
    """The per-key settings of `_history`, from the parameters in force on `on`."""
    reading = pack.param("penalties.reading").at(on)
    if reading not in READINGS:
        raise RulesError(f"penalties.reading must be one of {', '.join(READINGS)}, not {reading!r}")
    start = pack.param("scheme.start_date").at(on)
    if start > pack.valid_from:
        raise RulesError(
            f"scheme.start_date {start.isoformat()} ({pack.param('scheme.start_date').entry(on).source}) is after "
            f"pack {pack.id}'s date of effect {pack.valid_from.isoformat()}: the scheme starts no later than the "
            f"rules apply; set scheme.start_date in the override file ({OVERRIDES_ENV}/{pack.id}.yaml), dated on the "
            f"date of effect"
        )
    inc_from = max(start, pack.param("incentives.not_before").at(on))
    minor_age = int(pack.param("coverage.minors_follow_parents_under_age").at(on))
    adult = pl.col("birth_date").dt.offset_by(f"{minor_age}y")
    own_dues_from = (
        pl.when((adult.dt.month() == 1) & (adult.dt.day() == 1))
        .then(adult)
        .otherwise(pl.date(adult.dt.year() + 1, 1, 1))
    )
    floor = pl.max_horizontal(pl.lit(start), own_dues_from.fill_null(pl.lit(start)))
    counts = bool(pack.param("enrolment.first_enrolment_counts_as_lapse").at(on))
    return frame.select(
        pl.col(key).alias("key"),
        "person_id",
        as_of.alias("as_of"),
        floor=floor if counts else pl.lit(None, dtype=pl.Date),
        grace=pl.lit(int(pack.param("enrolment.continuity_grace_months").at(on)), dtype=pl.Int64),
        pen_from=pl.lit(pack.param("penalties.count_from").at(on), dtype=pl.Date),
        inc_from=pl.lit(inc_from, dtype=pl.Date),
        reading=pl.lit(reading),
        part_year=pl.lit(bool(pack.param("enrolment.lapse_part_year_counts_as_year").at(on))),
    )


# --- eligibility ---------------------------------------------------------------------------------------------------


@formula(PACK, "eligibility", since=DATE_OF_EFFECT)
def eligibility(inputs: dict[str, pl.DataFrame], pack: Pack) -> pl.DataFrame:
    """二(一), 二(四)1, 二(五), 二(六)3: who may receive benefits, from when, and every reason why not.

    One row per assessed application; parameters are resolved on the day of application. Under-18 residents count
    as insured without dues of their own (二(三)1). A re-enrolment after a lapse, or a late first enrolment, starts a
    waiting period (fixed days + days per lapsed year - days per year made good, at least the floor after a long
    lapse); benefits start on the later of the start day and the end of the waiting period, and WAITING_PERIOD is
    listed (the application is approved) while the waiting period is not over on the day of the conclusion.

    Besides the contract's columns, each decision says what it counted (`DECISION_DETAILS`): on an approval after a
    lapse, the waiting period's length in days (`waiting_days`, null where none applies), the day it counts from
    (`waiting_from`, the first day of the re-enrolment), the years lapsed and the whole years paid back it rests on;
    and on every decision the full years of continuous enrolment counted on the day of application
    (`continuous_years`, 二(六)1: from the scheme start, not before 2022, restarting after a lapse).
    """
    apps = inputs["apps"]
    if apps.is_empty():
        return pl.DataFrame(schema={**OUTPUT_DECISIONS, **DECISION_DETAILS})
    days = apps.select(pl.col("received_on").unique()).to_series().to_list()
    for d in days:
        pack.check_date(d)
    f = with_params(
        apps,
        pack,
        {
            "_types": "coverage.insurance_types",
            "_resident_types": "coverage.resident_policy_types",
            "_minor_age": "coverage.minors_follow_parents_under_age",
            "_excl_wi": "coverage.excludes_work_injury_care_allowance",
            "_min_grade": "eligibility.min_grade",
            "_min_months": "eligibility.min_disability_months",
            "_start_on": "eligibility.start_on",
            "_fixed": "waiting.fixed_days",
            "_per_year": "waiting.variable_days_per_lapsed_year",
            "_repair": "waiting.repair_days_per_year_paid",
            "_long_years": "waiting.long_lapse_min_years",
            "_long_min": "waiting.long_lapse_min_total_days",
        },
        on="received_on",
    )
    starts = set(f["_start_on"].unique().to_list())
    if not starts <= {"published_on", "received_on"}:
        raise RulesError(f"eligibility.start_on must be published_on or received_on, not {sorted(starts)}")
    f = f.with_row_index("_row").with_columns(pl.col("_row").cast(pl.Utf8))
    keys = pl.concat(
        [_history_keys(f.filter(pl.col("received_on") == d), "_row", pl.col("received_on"), pack, d) for d in days]
    )
    hist = _history(keys, inputs["contributions"]).rename({"key": "_row"})
    f = f.join(hist, on="_row", how="left")
    minor = (
        pl.col("_resident_types").list.contains(pl.col("insurance_type"))
        & pl.col("birth_date").is_not_null()
        & (pl.col("birth_date").dt.offset_by(pl.format("{}y", pl.col("_minor_age"))) > pl.col("received_on"))
    )
    variable = (pl.col("_per_year") * pl.col("lapse_years") - pl.col("_repair") * pl.col("repaid_years")).clip(0)
    total = pl.col("_fixed") + variable
    total = (
        pl.when(pl.col("lapse_years") >= pl.col("_long_years"))
        .then(pl.max_horizontal(total, "_long_min"))
        .otherwise(total)
    )
    f = f.with_columns(
        _wait_days=pl.when(pl.col("reenrol").is_not_null() & ~minor).then(total),
        _start=pl.when(pl.col("_start_on") == "received_on").then(pl.col("received_on")).otherwise("published_on"),
    ).with_columns(_wait_end=pl.col("reenrol") + pl.duration(days=pl.col("_wait_days")))
    checks = {
        "NOT_COVERED_INSURANCE_TYPE": ~pl.col("_types").list.contains(pl.col("insurance_type")),
        "WORK_INJURY_CARE_ALLOWANCE": pl.col("_excl_wi") & pl.col("work_injury_care_allowance").fill_null(False),
        "DECEASED": pl.col("death_date").is_not_null()
        & (pl.col("death_date") <= pl.coalesce("published_on", "received_on")),
        "NOT_SEVERE": pl.col("grade").is_null() | (pl.col("grade") < pl.col("_min_grade")),
        "DISABILITY_UNDER_6_MONTHS": pl.col("disabled_since").dt.offset_by(pl.format("{}mo", pl.col("_min_months")))
        > pl.col("received_on"),
        "NOT_ENROLLED": ~minor & ~pl.col("enrolled").fill_null(False),
    }
    refusals = pl.concat_list(
        [pl.when(cond).then(pl.lit(code)).otherwise(pl.lit(None, dtype=pl.Utf8)) for code, cond in checks.items()]
    ).list.drop_nulls()
    f = f.with_columns(_refusals=refusals).with_columns(approved=pl.col("_refusals").list.len() == 0)
    waits = pl.when(pl.col("approved") & pl.col("_wait_days").is_not_null())
    waiting_open = (
        pl.col("approved")
        & pl.col("_wait_end").is_not_null()
        & (pl.col("_wait_end") > pl.coalesce("published_on", "received_on"))
    )
    return f.select(
        "application_id",
        "person_id",
        "approved",
        "grade",
        pl.when("approved").then(pl.max_horizontal("_start", "_wait_end")).alias("start_date"),
        pl.when("approved").then(pl.col("death_date")).alias("end_date"),
        pl.when(waiting_open)
        .then(pl.concat_list(pl.col("_refusals"), pl.lit(["WAITING_PERIOD"])))
        .otherwise(pl.col("_refusals"))
        .alias("reason_codes"),
        waiting_days=waits.then(pl.col("_wait_days")),
        waiting_from=waits.then(pl.col("reenrol")),
        lapsed_years=waits.then(pl.col("lapse_years")),
        repaid_years=waits.then(pl.col("repaid_years")),
        continuous_years=pl.col("run_years").fill_null(0),
    )


# --- billing -------------------------------------------------------------------------------------------------------


@formula(PACK, "bill", since=DATE_OF_EFFECT)
def bill(inputs: dict[str, pl.DataFrame], pack: Pack, period: str) -> pl.DataFrame:
    """二(四)2-3, 二(五), 二(六)1, 4-5: a month's care becomes claim lines, one per person, provider and care mode.

    The fund pays a share of the eligible cost of care on each paid day (no deductible): 50% for resident-policy
    members in an institution, 20 points more under the employee policy, 10 points more for home and community care,
    less 10/20/30 points in the first benefit year after a penalised re-enrolment; rounded half-up once per line. It
    pays up to the person's annual cap (50% of the area's prior-year disposable income, +1% per continuous year after
    the 4th up to +20%, -1% per lapsed year down to -20%), of which home and community care together take at most half,
    less what the fund already paid earlier in the year, filled in provider and mode order.

    Not paid: bed, meal and other non-care items (their cost is not eligible); days with a provider that is not
    designated, after death, outside an entitlement, in hospital (a stay of `billing.hospital_stay_kinds`), of a
    member on a work-injury care allowance, or by an individual carer (the fund pays no cash to beneficiaries).
    """
    first, last = period_bounds(period)
    pack.check_period(period)
    if inputs["care"].is_empty():
        return pl.DataFrame(schema=OUTPUT_CLAIMS)
    days = care_day_status(
        inputs,
        stay_kinds=pack.param("billing.hospital_stay_kinds").at(first),
        stay_first_day_paid=bool(pack.param("billing.hospital_admission_day_paid").at(first)),
        stay_last_day_paid=bool(pack.param("billing.hospital_discharge_day_paid").at(first)),
    )
    non_care = pack.param("billing.non_care_item_codes").at(first)
    eligible = (
        inputs["care"]
        .group_by(*LINE_KEYS, "care_date")
        .agg(
            eligible_fen=pl.col("amount_fen")
            .filter(~pl.col("item_code").fill_null("").is_in(non_care))
            .sum()
            .cast(pl.Int64)
        )
    )
    persons = inputs["persons"].select("person_id", "insurance_type", "birth_date", "work_injury_care_allowance")
    days = days.join(eligible, on=[*LINE_KEYS, "care_date"], how="left").join(persons, on="person_id", how="left")
    excl_wi = bool(pack.param("coverage.excludes_work_injury_care_allowance").at(first))
    pays_carers = bool(pack.param("payment.pays_individual_carers").at(first))
    open_day = pl.col("reason").is_null()
    days = days.with_columns(
        reason=pl.when(open_day & pl.lit(excl_wi) & pl.col("work_injury_care_allowance").fill_null(False))
        .then(pl.lit("WORK_INJURY_CARE_ALLOWANCE"))
        .when(open_day & pl.lit(not pays_carers) & pl.col("provider_kind").is_in(CARER_KINDS))
        .then(pl.lit("INDIVIDUAL_CARER"))
        .otherwise(pl.col("reason"))
    )

    people = days.select("person_id").unique().join(persons, on="person_id", how="left")
    hist = _history(_history_keys(people, "person_id", pl.lit(last), pack, first), inputs["contributions"])
    prior_year_end = dt.date(first.year - 1, 12, 31)
    prior = _history(_history_keys(people, "person_id", pl.lit(prior_year_end), pack, first), inputs["contributions"])
    hist = hist.rename({"key": "person_id"}).join(
        prior.select(person_id="key", run_years="run_years"), on="person_id", how="left", suffix="_prior"
    )
    days = _daily_ratio(days, inputs["entitlements"], hist, pack)
    days = days.with_columns(day_gross_fen=pl.col("eligible_fen").fill_null(0))
    paid = pl.col("reason").is_null()
    weights = days.group_by(LINE_KEYS).agg(
        weighted=pl.when(paid).then(pl.col("day_gross_fen") * pl.col("_bp")).otherwise(0).sum().cast(pl.Int64),
        band=pl.col("_band").filter(paid).drop_nulls().first(),
    )
    lines = claim_lines(days).join(weights, on=LINE_KEYS, how="left").join(persons, on="person_id", how="left")
    lines = lines.with_columns(share=(2 * pl.col("weighted") + 10000) // 20000)
    lines = _annual_caps(lines, inputs["ytd"], hist, pack, first)
    return finish(lines, period)


def _daily_ratio(days: pl.DataFrame, entitlements: pl.DataFrame, hist: pl.DataFrame, pack: Pack) -> pl.DataFrame:
    """二(四)2, 二(六)5: each day's fund share in basis points, from the parameters in force on the care date."""
    ratios = {
        "_base": "billing.ratio.institutional_resident",
        "_emp": "billing.ratio.employee_policy_increase",
        "_hc": "billing.ratio.home_community_increase",
        "_b1": "penalties.ratio_reduction.band_1",
        "_b2": "penalties.ratio_reduction.band_2",
        "_b3": "penalties.ratio_reduction.band_3",
    }
    days = with_params(
        days,
        pack,
        {
            **ratios,
            "_emp_types": "coverage.employee_policy_types",
            "_b1y": "penalties.ratio_reduction.band_1_max_years",
            "_b2y": "penalties.ratio_reduction.band_2_max_years",
            "_first_year": "penalties.first_benefit_year",
        },
        on="care_date",
    ).with_columns([(pl.col(c) * 10000).round().cast(pl.Int64) for c in ratios])
    modes = set(days["_first_year"].unique().to_list())
    if not modes <= {"calendar_year", "twelve_months"}:
        raise RulesError(f"penalties.first_benefit_year must be calendar_year or twelve_months, not {sorted(modes)}")
    first_benefit = (
        entitlements.join(hist.select("person_id", "reenrol"), on="person_id")
        .filter(
            pl.col("reenrol").is_not_null() & (pl.col("end_date").is_null() | (pl.col("end_date") >= pl.col("reenrol")))
        )
        .group_by("person_id")
        .agg(_first_benefit=pl.max_horizontal("start_date", "reenrol").min())
    )
    days = days.join(hist.select("person_id", "lapse_years"), on="person_id", how="left").join(
        first_benefit, on="person_id", how="left"
    )
    fb = pl.col("_first_benefit")
    in_first_year = (
        pl.when(pl.col("_first_year") == "twelve_months")
        .then((pl.col("care_date") >= fb) & (pl.col("care_date") < fb.dt.offset_by("12mo")))
        .otherwise(pl.col("care_date").dt.year() == fb.dt.year())
    )
    reduced = fb.is_not_null() & in_first_year.fill_null(False)
    band = (
        pl.when(pl.col("lapse_years") <= pl.col("_b1y"))
        .then(pl.lit("band_1"))
        .when(pl.col("lapse_years") <= pl.col("_b2y"))
        .then(pl.lit("band_2"))
        .otherwise(pl.lit("band_3"))
    )
    cut = pl.when(band == "band_1").then("_b1").when(band == "band_2").then("_b2").otherwise("_b3")
    ratio = (
        pl.col("_base")
        + pl.when(pl.col("_emp_types").list.contains(pl.col("insurance_type"))).then("_emp").otherwise(0)
        + pl.when(pl.col("care_mode").is_in(HOME_COMMUNITY)).then("_hc").otherwise(0)
        - pl.when(reduced).then(cut).otherwise(0)
    )
    return days.with_columns(_bp=ratio.clip(0), _band=pl.when(reduced).then(band))


def _annual_caps(
    lines: pl.DataFrame, ytd: pl.DataFrame, hist: pl.DataFrame, pack: Pack, first: dt.date
) -> pl.DataFrame:
    """二(四)3, 二(六)1, 4: fill each person's remaining annual cap, home and community care within their part first."""
    on = max(dt.date(first.year, 1, 1), pack.valid_from)
    income = pack.param("caps.area_disposable_income").fen(on)
    cap_num, cap_den = pack.param("caps.annual_ratio").decimal(on).as_integer_ratio()
    hc_num, hc_den = pack.param("caps.home_community_share").decimal(on).as_integer_ratio()
    after = int(pack.param("incentives.bonus_after_years").at(on))
    bonus_bp, bonus_max = (
        _bp(pack.param("incentives.bonus_per_year").at(on)),
        _bp(pack.param("incentives.bonus_max").at(on)),
    )
    cut_bp = _bp(pack.param("penalties.cap_reduction_per_year").at(on))
    cut_max = _bp(pack.param("penalties.cap_reduction_max").at(on))
    caps = hist.select(
        "person_id",
        bonus=((pl.col("run_years_prior").fill_null(0) - after).clip(0) * bonus_bp).clip(0, bonus_max),
        cut=(pl.col("pen_years") * cut_bp).clip(0, cut_max),
    ).with_columns(factor=10000 + pl.col("bonus") - pl.col("cut"))
    caps = caps.with_columns(
        cap=(2 * income * cap_num * pl.col("factor") + cap_den * 10000) // (2 * cap_den * 10000),
        hc_cap=(2 * income * cap_num * hc_num * pl.col("factor") + cap_den * hc_den * 10000)
        // (2 * cap_den * hc_den * 10000),
    )
    hc_mode = pl.col("care_mode").is_in(HOME_COMMUNITY)
    used = ytd.group_by("person_id").agg(
        ytd_all=pl.col("payable_fen").sum().cast(pl.Int64),
        ytd_hc=pl.col("payable_fen").filter(hc_mode).sum().cast(pl.Int64),
    )
    lines = (
        lines.join(caps, on="person_id", how="left")
        .join(used, on="person_id", how="left")
        .with_columns(
            left_all=(pl.col("cap") - pl.col("ytd_all").fill_null(0)).clip(0),
            left_hc=(pl.col("hc_cap") - pl.col("ytd_hc").fill_null(0)).clip(0),
        )
        .sort("person_id", "provider_id", "care_mode")
    )
    hc_amount = pl.when(hc_mode).then(pl.col("share")).otherwise(0)
    lines = lines.with_columns(
        _within_hc=pl.when(hc_mode).then(_fill(hc_amount, pl.col("left_hc"))).otherwise(pl.col("share"))
    ).with_columns(payable_fen=_fill(pl.col("_within_hc"), pl.col("left_all")))
    names = [
        pl.lit("billing.ratio.institutional_resident"),
        pl.when(pl.col("insurance_type").is_in(pack.param("coverage.employee_policy_types").at(first))).then(
            pl.lit("billing.ratio.employee_policy_increase")
        ),
        pl.when(hc_mode).then(pl.lit("billing.ratio.home_community_increase")),
        pl.when(pl.col("band").is_not_null()).then(pl.format("penalties.ratio_reduction.{}", "band")),
        pl.lit("caps.annual_ratio"),
        pl.lit("caps.area_disposable_income"),
        pl.when(hc_mode).then(pl.lit("caps.home_community_share")),
        pl.when(pl.col("bonus") > 0).then(pl.lit("incentives.bonus_per_year")),
        # Continuous years count from the scheme start, not before incentives.not_before (二(六) 末段).
        pl.when(pl.col("bonus") > 0).then(pl.lit("scheme.start_date")),
        pl.when(pl.col("bonus") > 0).then(pl.lit("incentives.not_before")),
        pl.when(pl.col("cut") > 0).then(pl.lit("penalties.cap_reduction_per_year")),
        pl.lit("billing.non_care_item_codes"),
        pl.lit(VALID_FROM),  # the date of effect the month is billed under (an assumption, or the operator's)
    ]
    return lines.with_columns(
        over_cap_fen=pl.col("share") - pl.col("payable_fen"),
        rule_params=pl.concat_list(names).list.drop_nulls(),
    )


def _fill(amount: pl.Expr, cap: pl.Expr) -> pl.Expr:
    """The part of each line's `amount` that fits under the person's `cap`, lines taken in frame order."""
    cum = amount.cum_sum().over("person_id")
    return (pl.min_horizontal(cum, cap.fill_null(0)) - (cum - amount)).clip(0).cast(pl.Int64)


# --- assessment fees -----------------------------------------------------------------------------------------------


@formula(PACK, "assessment_fees", since=DATE_OF_EFFECT)
def assessment_fees(assessments: pl.DataFrame, pack: Pack, on: dt.date) -> pl.DataFrame:
    """三(七): 评估服务费可按规定在长期护理保险基金中列支.

    The fund pays the first assessment and the later ones requested by the parties in
    `assessment.fund_pays_later_requested_by`; the applicant pays any other. No fee cap is fixed.
    """
    pack.check_date(on)
    first = bool(pack.param("assessment.fund_pays_first").at(on))
    later = pack.param("assessment.fund_pays_later_requested_by").at(on)
    pays = pl.when(pl.col("sequence") <= 1).then(pl.lit(first)).otherwise(pl.col("requested_by").is_in(later))
    fee = pl.col("fee_fen").fill_null(0)
    fund = pl.when(pays).then(fee).otherwise(0).cast(pl.Int64)
    return assessments.select(
        "application_id",
        "sequence",
        fund_fen=fund,
        applicant_fen=(fee - fund).cast(pl.Int64),
        reason_codes=pl.concat_list(pl.when(~pays).then(pl.lit("ASSESSMENT_FEE_NOT_COVERED"))).list.drop_nulls(),
    )
