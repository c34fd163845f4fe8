"""Building blocks the packs' formulas share: money arithmetic, the status of each care day, claim lines.

Nothing here is policy: every number and every choice a document makes comes in as an argument, from the
pack's parameters.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import polars as pl

from rules.engine import Pack
from rules.inputs import OUTPUT_CLAIMS, PAYERS

EXCLUSION = OUTPUT_CLAIMS["exclusions"]
EXCLUDED_RANGES = OUTPUT_CLAIMS["excluded_ranges"]


def ratio(value: Any) -> tuple[int, int]:
    """A parameter's decimal value as an exact fraction (0.0015 -> (3, 2000))."""
    return Decimal(str(value)).as_integer_ratio()


def times_half_up(amount: pl.Expr, value: Any) -> pl.Expr:
    """amount x value, rounded half-up to the fen once (amount >= 0, integer fen)."""
    num, den = ratio(value)
    return (amount * (2 * num) + den) // (2 * den)


def times_ratio_column_half_up(amount: pl.Expr, num: pl.Expr, den: int) -> pl.Expr:
    """amount x num / den, rounded half-up, where num varies by row (e.g. percentage points x 100)."""
    return (amount * num * 2 + den) // (2 * den)


def dues_long(wide: pl.DataFrame, period: str) -> pl.DataFrame:
    """From one row per person with an Int64 column per payer (names from `PAYERS`) to the contract's long
    form: person_id, period, payer, amount_fen, keeping amounts above zero."""
    payers = [p for p in PAYERS if p in wide.columns]
    if not payers:
        return pl.DataFrame(schema={"person_id": pl.Utf8, "period": pl.Utf8, "payer": pl.Utf8, "amount_fen": pl.Int64})
    return (
        wide.select("person_id", *payers)
        .unpivot(index="person_id", on=payers, variable_name="payer", value_name="amount_fen")
        .with_columns(pl.col("amount_fen").cast(pl.Int64), period=pl.lit(period))
        .filter(pl.col("amount_fen") > 0)
        .select("person_id", "period", "payer", "amount_fen")
        .sort("person_id", "payer")
    )


def check_dates(frame: pl.DataFrame, column: str, pack: Pack) -> None:
    """Refuse a frame holding a date outside the pack's validity (RulesError naming the pack and its dates)."""
    for d in frame.select(pl.col(column).drop_nulls().unique()).to_series().to_list():
        pack.check_date(d)


def with_reasons(frame: pl.DataFrame, checks: dict[str, pl.Expr]) -> pl.DataFrame:
    """Add `reason_codes` (every check that holds, in the order given) and `approved` (none holds)."""
    codes = pl.concat_list(
        [pl.when(cond).then(pl.lit(code)).otherwise(pl.lit(None, dtype=pl.Utf8)) for code, cond in checks.items()]
    ).list.drop_nulls()
    return frame.with_columns(reason_codes=codes).with_columns(approved=pl.col("reason_codes").list.len() == 0)


def care_day_status(
    inputs: dict[str, pl.DataFrame],
    *,
    stay_kinds: list[str],
    stay_first_day_paid: bool,
    stay_last_day_paid: bool,
) -> pl.DataFrame:
    """One row per person, provider, mode and care day, with the entitlement in force that day and the
    reason it is not paid (null if paid), in this order: NOT_DESIGNATED_PROVIDER, AFTER_DEATH, NOT_ELIGIBLE,
    IN_HOSPITAL. Columns: person_id, provider_id, care_mode, care_date, submitted_fen, items, provider_kind,
    grade, start_date, end_date, death_date, reason.

    A hospital day is one inside a stay of one of `stay_kinds`; whether the admission and discharge days
    themselves are paid is the pack's to say.
    """
    care, providers = inputs["care"], inputs["providers"]
    # One lazy query, collected once: polars' query engine groups and joins on several keys several times faster
    # than its eager frames do.
    grouped = (
        care.lazy()
        .group_by("person_id", "provider_id", "care_mode", "care_date")
        .agg(submitted_fen=pl.col("amount_fen").sum().cast(pl.Int64), items=pl.len().cast(pl.Int64))
        .join(
            providers.lazy().select(
                "provider_id", pl.col("kind").alias("provider_kind"), "status", "contract_start", "contract_end"
            ),
            on="provider_id",
            how="left",
        )
        .with_columns(
            designated=(pl.col("status") == "active")
            & (pl.col("contract_start") <= pl.col("care_date"))
            & (pl.col("contract_end").is_null() | (pl.col("care_date") <= pl.col("contract_end")))
        )
    )
    days = (
        _entitlement_on_day(grouped, inputs["entitlements"].select("person_id", "grade", "start_date", "end_date"))
        .join(inputs["persons"].lazy().select("person_id", "death_date"), on="person_id", how="left")
        .collect()
    )
    after_admission = (
        pl.col("care_date") > pl.col("admitted_on")
        if stay_first_day_paid
        else pl.col("care_date") >= pl.col("admitted_on")
    )
    before_discharge = (
        pl.col("care_date") < pl.col("discharged_on")
        if stay_last_day_paid
        else pl.col("care_date") <= pl.col("discharged_on")
    )
    in_hospital = (
        days.lazy()
        .select("person_id", "care_date")
        .join(  # the few persons with a stay first, then their days: never a pass over every distinct day
            inputs["stays"]
            .lazy()
            .filter(pl.col("kind").is_in(stay_kinds))
            .select("person_id", "admitted_on", "discharged_on"),
            on="person_id",
        )
        .filter(after_admission & (pl.col("discharged_on").is_null() | before_discharge))
        .select("person_id", "care_date")
        .unique()
        .with_columns(in_hospital=pl.lit(True))
    )
    days = days.lazy().join(in_hospital, on=["person_id", "care_date"], how="left").collect()
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
    return days.with_columns(reason=reason).drop(
        "status", "designated", "in_hospital", "contract_start", "contract_end"
    )


def _entitlement_on_day(days: pl.LazyFrame, entitlements: pl.DataFrame) -> pl.LazyFrame:
    """Each day with the entitlement in force on it: the one that started last on or before the day (grade,
    start_date, end_date; null if none had started). Most persons have one entitlement, and a plain join serves
    them; only the days of persons with several go through an as-of join."""
    several = entitlements["person_id"].is_duplicated()
    one, many = entitlements.filter(~several), entitlements.filter(several)
    cols = ["grade", "start_date", "end_date"]
    started = pl.col("start_date") <= pl.col("care_date")
    single = (
        days.join(many.lazy().select("person_id").unique(), on="person_id", how="anti")
        .join(one.lazy(), on="person_id", how="left")
        .with_columns([pl.when(started).then(pl.col(c)).alias(c) for c in cols])
    )
    if many.is_empty():
        return single
    multiple = (
        days.join(many.lazy().select("person_id").unique(), on="person_id", how="semi")
        .sort("care_date")
        .join_asof(
            many.lazy().sort("start_date"),
            left_on="care_date",
            right_on="start_date",
            by="person_id",
            strategy="backward",
            check_sortedness=False,
        )
    )
    return pl.concat([single, multiple], how="vertical")


def not_first_of_day(days: pl.DataFrame, among: pl.Expr, order: list[str]) -> pl.Expr:
    """True on the rows where `among` holds that are not the first of their person and care date in `order`
    (e.g. a second institution billing the same bed-day). Only person-days with several such rows are ranked,
    so the cost is one duplicate check over the month, not a window over every row."""
    candidates = days.lazy().with_row_index("_row").filter(among).select("_row", "person_id", "care_date", *order)
    shared = candidates.group_by("person_id", "care_date").agg(pl.len().alias("_n")).filter(pl.col("_n") > 1)
    day = pl.struct("person_id", "care_date")
    later = (
        candidates.join(shared, on=["person_id", "care_date"], how="semi")
        .collect()
        .sort(*order)
        .filter(~day.is_first_distinct())
        .get_column("_row")
    )
    return pl.int_range(pl.len(), dtype=pl.UInt32).is_in(later.implode())


def join_dated(days: pl.DataFrame, series: pl.DataFrame, key: pl.Expr) -> pl.DataFrame:
    """Attach a parameter series (`Pack.series`: key, effective_from, value column) to each day by key, as in
    force on the care date. The series is resolved once per key and distinct care date (a month has at most 31),
    then joined to the days."""
    keyed = days.with_columns(key=key)
    dates = keyed.select(pl.col("care_date").unique()).lazy()
    in_force = (
        series.lazy()
        .select("key")
        .unique()
        .join(dates, how="cross")
        .sort("care_date")
        .join_asof(
            series.lazy().sort("effective_from"),
            left_on="care_date",
            right_on="effective_from",
            by="key",
            check_sortedness=False,
        )
        .drop("effective_from")
    )
    return keyed.lazy().join(in_force, on=["key", "care_date"], how="left").drop("key").collect()


def eligible_days(inputs: dict[str, pl.DataFrame], first: dt.date, last: dt.date) -> pl.DataFrame:
    """Per person, the days from `first` to `last` inside an entitlement and not after death: what a pack that
    prorates a monthly quota or ceiling for a partial month counts."""
    month_days = (last - first).days + 1
    return (
        inputs["entitlements"]
        .join(inputs["persons"].select("person_id", "death_date"), on="person_id", how="left")
        .with_columns(
            lo=pl.max_horizontal(pl.col("start_date"), pl.lit(first)),
            hi=pl.min_horizontal(
                pl.col("end_date").fill_null(last), pl.col("death_date").fill_null(last), pl.lit(last)
            ),
        )
        .with_columns(d=((pl.col("hi") - pl.col("lo")).dt.total_days() + 1).clip(0))
        .group_by("person_id")
        .agg(eligible_days=pl.col("d").sum().clip(0, month_days))
    )


LINE_KEYS = ["person_id", "provider_id", "care_mode"]
GRADE_SLOTS = 16  # disability grades are 0-5 (医保办发〔2021〕37号); room to spare


def excluded_ranges(days: pl.LazyFrame, line: list[str] = LINE_KEYS) -> pl.LazyFrame:
    """Per claim line (named by the columns `line`), its days not paid as ranges: each run of consecutive care
    dates with one reason is one {reason, from, to, days}, in date order. One sort and a comparison with the row
    before: where the line or the reason changes, or a date is more than a day after the one before, a new range
    begins."""
    keys = [*line, "reason"]
    excluded = days.filter(pl.col("reason").is_not_null()).select(*keys, "care_date").unique().sort(*keys, "care_date")
    same = pl.all_horizontal([pl.col(k) == pl.col(k).shift(1) for k in keys])
    next_day = pl.col("care_date") == pl.col("care_date").shift(1) + pl.duration(days=1)
    return (
        excluded.with_columns(_range=(~(same & next_day).fill_null(False)).cum_sum())
        .group_by(*keys, "_range")
        .agg(pl.col("care_date").min().alias("from"), pl.col("care_date").max().alias("to"), days=pl.len())
        .sort(*line, "from")
        .group_by(line, maintain_order=True)
        .agg(excluded_ranges=pl.struct("reason", "from", "to", pl.col("days").cast(pl.Int64)))
    )


def claim_lines(days: pl.DataFrame) -> pl.DataFrame:
    """Claim lines from day rows that carry `reason` and `day_gross_fen` (0 on days not paid): one per person,
    provider and mode, with days, submitted and gross amounts, grade (on the line's last day with one), the
    excluded days by reason and the excluded dates as ranges with their reason (`excluded_ranges`)."""
    paid = pl.col("reason").is_null()
    if days["grade"].drop_nulls().is_between(0, GRADE_SLOTS - 1).not_().any():
        raise ValueError(f"a disability grade outside 0..{GRADE_SLOTS - 1}")
    # The grade on the last day that has one, as a plain max: day number x GRADE_SLOTS + grade.
    dated_grade = pl.when(pl.col("grade").is_not_null()).then(
        pl.col("care_date").cast(pl.Int32).cast(pl.Int64) * GRADE_SLOTS + pl.col("grade")
    )
    exclusions = (
        days.lazy()
        .filter(~paid)
        .group_by(*LINE_KEYS, "reason")
        .agg(days=pl.len().cast(pl.Int64))
        .sort("reason")
        .group_by(LINE_KEYS)
        .agg(exclusions=pl.struct("reason", "days"))
    )
    return (
        days.lazy()
        .group_by(LINE_KEYS)
        .agg(
            _dated_grade=dated_grade.max(),
            days_submitted=pl.len().cast(pl.Int64),
            days_paid=paid.sum().cast(pl.Int64),
            submitted_fen=pl.col("submitted_fen").sum().cast(pl.Int64),
            gross_fen=pl.when(paid).then(pl.col("day_gross_fen")).otherwise(0).sum().cast(pl.Int64),
        )
        .with_columns(grade=(pl.col("_dated_grade") % GRADE_SLOTS).cast(days.schema["grade"]))
        .drop("_dated_grade")
        .join(exclusions, on=LINE_KEYS, how="left")
        .join(excluded_ranges(days.lazy()), on=LINE_KEYS, how="left")
        .with_columns(
            pl.col("exclusions").fill_null(pl.lit([], dtype=EXCLUSION)),
            pl.col("excluded_ranges").fill_null(pl.lit([], dtype=EXCLUDED_RANGES)),
        )
        .collect()
    )


def cap_in_order(lines: pl.DataFrame, amount: str, cap: str, over: list[str], out: str) -> pl.DataFrame:
    """Fill a cap shared by several lines (e.g. one quota per person across providers) in provider order:
    `out` is each line's part of `amount` that fits under `cap` for its group `over` (filled in provider, then
    care mode order).

    One sort and running sums, no window: a group's running sum is the month's running sum less its value where
    the group begins. Only the lines with an amount are sorted: a line of 0 fits 0 and moves no running sum."""
    order = [*over, *(c for c in ("provider_id", "care_mode") if c not in over)]
    before = pl.col(amount)
    begins = ~pl.all_horizontal([pl.col(c) == pl.col(c).shift(1) for c in over]).fill_null(False)
    running = pl.col("_running")
    fitted = (pl.min_horizontal(running, pl.col(cap).fill_null(0)) - (running - before)).clip(0)
    some = (
        lines.lazy()
        .with_row_index("_line")
        .filter(before != 0)
        .select("_line", *order, amount, cap)
        .sort(order)
        .with_columns(_all=before.cum_sum())
        .with_columns(_start=pl.when(begins).then(pl.col("_all") - before).forward_fill())
        .with_columns(_running=pl.col("_all") - pl.col("_start"))
        .select("_line", fitted.cast(pl.Int64).alias(out))
        .collect()
    )
    filled = pl.zeros(lines.height, dtype=pl.Int64, eager=True).scatter(some["_line"], some[out])
    return lines.with_columns(filled.alias(out))


def finish(lines: pl.DataFrame, period: str) -> pl.DataFrame:
    """The contract's output: lines carrying gross_fen, payable_fen and rule_params; personal_fen and days
    excluded derived, over_cap_fen 0 and cap_reason null unless given."""
    if "over_cap_fen" not in lines.columns:
        lines = lines.with_columns(over_cap_fen=pl.lit(0, dtype=pl.Int64))
    if "cap_reason" not in lines.columns:
        lines = lines.with_columns(cap_reason=pl.lit(None, dtype=pl.Utf8))
    return (
        lines.with_columns(
            period=pl.lit(period),
            days_excluded=pl.col("days_submitted") - pl.col("days_paid"),
            personal_fen=pl.col("gross_fen") - pl.col("payable_fen"),
        )
        .select([pl.col(c).cast(t) for c, t in OUTPUT_CLAIMS.items()])
        .sort("person_id", "provider_id", "care_mode")
    )
