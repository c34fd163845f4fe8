"""A month's calendars as sets of days: billing by claim line, never by day row.

Each set is an Int64 whose bit k is the month's day k + 1 (bit 0 the first, bit 30 the 31st): the days a claim
line bills, the days a person was alive, entitled, in hospital or of each grade, the days a provider was
designated. The care rows are read once and summed into claim lines with their set of days; every rule after that
works on lines, by intersections of sets and counts of their days (`bitwise_count_ones`). Only the lines with days
not paid are turned back into dates, for their ranges.

Nothing here is policy: the order of the reasons, which stays count, whether a stay's first and last days are
paid, the rates and their dates come in as arguments from the pack.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import polars as pl

from rules import ROWS_ENGINE
from rules.common import EXCLUDED_RANGES, EXCLUSION, GRADE_SLOTS, LINE_KEYS, excluded_ranges

DAYS = 31  # bits 0-30: the longest month
ALL = (1 << DAYS) - 1
EMPTY = pl.lit(0, dtype=pl.Int64)


def day_index(date: pl.Expr, first: dt.date) -> pl.Expr:
    """The day's bit number in the month that begins on `first`."""
    return (date - pl.lit(first)).dt.total_days()


def bit(date: pl.Expr, first: dt.date) -> pl.Expr:
    """The set holding one day."""
    return pl.lit(2, dtype=pl.Int64).pow(day_index(date, first).cast(pl.Int64))


def span(lo: pl.Expr, hi: pl.Expr, first: dt.date, last: dt.date) -> pl.Expr:
    """The set of days from `lo` to `hi` (both included; null: open on that side), cut to the month; empty when
    `hi` is before `lo` or the span misses the month."""
    a = day_index(lo.fill_null(first), first).clip(0, DAYS).cast(pl.Int64)
    b = day_index(hi.fill_null(last), first).clip(-1, (last - first).days).cast(pl.Int64) + 1
    two = pl.lit(2, dtype=pl.Int64)
    return pl.when(b > a).then(two.pow(b) - two.pow(a)).otherwise(EMPTY)


def _given(column: str, days: pl.Expr) -> pl.Expr:
    """`days`, or the empty set where the date it starts from (`column`) is not given."""
    return pl.when(pl.col(column).is_not_null()).then(days).otherwise(EMPTY)


def count(days: pl.Expr) -> pl.Expr:
    """How many days a set holds."""
    return days.bitwise_count_ones().cast(pl.Int64)


def last_day(days: pl.Expr) -> pl.Expr:
    """The bit number of a set's last day (null when empty)."""
    return pl.when(days != 0).then(63 - days.bitwise_leading_zeros().cast(pl.Int64))


def care_lines(care: pl.DataFrame, first: dt.date, last: dt.date) -> pl.DataFrame:
    """One row per claim line (person, provider, mode): the set of days billed (`billed`), the amount and the
    number of items submitted. One pass over the care rows."""
    bad = care.filter((pl.col("care_date") < first) | (pl.col("care_date") > last))
    if bad.height:
        raise ValueError(f"{bad.height} care day(s) outside {first.isoformat()}..{last.isoformat()}")
    return (
        care.lazy()
        .group_by(LINE_KEYS)
        .agg(
            billed=bit(pl.col("care_date"), first).bitwise_or(),
            submitted_fen=pl.col("amount_fen").sum().cast(pl.Int64),
            items=pl.len().cast(pl.Int64),
        )
        .collect(engine=ROWS_ENGINE)
    )


def person_calendars(
    inputs: dict[str, pl.DataFrame],
    first: dt.date,
    last: dt.date,
    *,
    stay_kinds: list[str],
    stay_first_day_paid: bool,
    stay_last_day_paid: bool,
) -> pl.DataFrame:
    """Per person, the month's days after death (`dead`), inside the entitlement in force (`entitled`) and in
    hospital (`in_hospital`), and for each grade g any entitlement has, the days g is the grade in force
    (`grade_days_g`, `grade_column`).

    The entitlement in force on a day is the one that started last on or before it; it ends at its end date (a
    later start replaces an earlier entitlement from that day). A day's grade is that entitlement's, also after
    its end date. A hospital day is one inside a stay of one of `stay_kinds`; whether the admission and
    discharge days themselves are hospital days is the pack's to say."""
    one = pl.duration(days=1)
    ents = (
        inputs["entitlements"]
        .lazy()
        .select("person_id", "grade", "start_date", "end_date")
        .sort("person_id", "start_date", maintain_order=True)
        .with_columns(  # the next entitlement's start, on the rows sorted by person: no window
            _next=pl.when(pl.col("person_id") == pl.col("person_id").shift(-1)).then(pl.col("start_date").shift(-1))
            - one
        )
        .with_columns(
            _grade_days=_given("start_date", span(pl.col("start_date"), pl.col("_next"), first, last)),
            _days=_given("start_date", span(pl.col("start_date"), pl.min_horizontal("end_date", "_next"), first, last)),
        )
    )
    grades = sorted(g for g in inputs["entitlements"]["grade"].unique().to_list() if g is not None)
    if any(not 0 <= g < GRADE_SLOTS for g in grades):
        raise ValueError(f"a disability grade outside 0..{GRADE_SLOTS - 1}")
    entitled = ents.group_by("person_id").agg(
        pl.col("_days").bitwise_or().alias("entitled"),
        *(pl.col("_grade_days").filter(pl.col("grade") == g).bitwise_or().alias(grade_column(g)) for g in grades),
    )
    admitted, discharged = pl.col("admitted_on"), pl.col("discharged_on")
    hospital = (
        inputs["stays"]
        .lazy()
        .filter(pl.col("kind").is_in(stay_kinds))
        .select(
            "person_id",
            _days=_given(
                "admitted_on",
                span(
                    admitted + one if stay_first_day_paid else admitted,
                    discharged - one if stay_last_day_paid else discharged,
                    first,
                    last,
                ),
            ),
        )
        .group_by("person_id")
        .agg(in_hospital=pl.col("_days").bitwise_or())
    )
    persons = (
        inputs["persons"]
        .lazy()
        .select("person_id", dead=_given("death_date", span(pl.col("death_date") + one, pl.lit(last), first, last)))
        .join(entitled, on="person_id", how="full", coalesce=True)
        .join(hospital, on="person_id", how="full", coalesce=True)
        .with_columns(pl.col("dead", "entitled", "in_hospital", *map(grade_column, grades)).fill_null(0))
        .collect()
    )
    return persons


def provider_calendars(providers: pl.DataFrame, first: dt.date, last: dt.date) -> pl.DataFrame:
    """Per provider, its kind and the month's days it was designated: active, inside its contract."""
    return providers.select(
        "provider_id",
        pl.col("kind").alias("provider_kind"),
        designated=pl.when((pl.col("status") == "active") & pl.col("contract_start").is_not_null())
        .then(span(pl.col("contract_start"), pl.col("contract_end"), first, last))
        .otherwise(EMPTY),
    )


def with_status(lines: pl.DataFrame, persons: pl.DataFrame, providers: pl.DataFrame) -> pl.DataFrame:
    """Each line's days not paid by the reasons every pack shares, in this order: NOT_DESIGNATED_PROVIDER,
    AFTER_DEATH, NOT_ELIGIBLE, IN_HOSPITAL (a day has the first that holds); `payable`: the days left. The
    person's grade columns come along (`grade_columns`)."""
    f = (
        lines.lazy()
        .join(providers.lazy(), on="provider_id", how="left")
        .join(persons.lazy(), on="person_id", how="left")
        .with_columns(pl.col("designated", "dead", "entitled", "in_hospital", *grade_columns(persons)).fill_null(0))
    )
    left = pl.col("billed")
    steps = {
        "NOT_DESIGNATED_PROVIDER": ~pl.col("designated"),
        "AFTER_DEATH": pl.col("dead"),
        "NOT_ELIGIBLE": ~pl.col("entitled"),
        "IN_HOSPITAL": pl.col("in_hospital"),
    }
    for reason, days in steps.items():
        f = f.with_columns((left & days).alias(f"x_{reason}")).with_columns((left & ~days).alias("billed_left"))
        left = pl.col("billed_left")
    return f.rename({"billed_left": "payable"}).drop("designated", "dead", "entitled", "in_hospital").collect()


def exclude(lines: pl.DataFrame, reason: str, days: pl.Expr) -> pl.DataFrame:
    """Take the days `days` (a set, per line) from the payable days, as not paid for `reason` (added to any days
    already not paid for it)."""
    taken = pl.col("payable") & days
    col = f"x_{reason}"
    before = pl.col(col) if col in lines.columns else EMPTY
    return lines.with_columns((before | taken).alias(col), payable=pl.col("payable") & ~days)


def taken_by_earlier(lines: pl.DataFrame, among: pl.Expr, order: str) -> pl.Expr:
    """Per line, the payable days that a line of the same person where `among` holds, earlier in `order`, also has
    (e.g. a bed-day an institution first by id is paid for). Only persons with several such lines are looked at."""
    candidates = lines.lazy().with_row_index("_row").filter(among).select("_row", "person_id", order, "payable")
    several = candidates.group_by("person_id").agg(pl.len().alias("_n")).filter(pl.col("_n") > 1)
    mine = candidates.join(several, on="person_id", how="semi")
    earlier = (
        mine.join(mine.select("person_id", pl.col(order).alias("_o"), pl.col("payable").alias("_p")), on="person_id")
        .filter(pl.col("_o") < pl.col(order))
        .group_by("_row")
        .agg(_taken=pl.col("_p").bitwise_or())
        .collect()
    )
    rows = pl.int_range(pl.len(), dtype=pl.UInt32)
    return rows.replace_strict(earlier["_row"], earlier["_taken"], default=0, return_dtype=pl.Int64)


def dated_segments(series: pl.DataFrame, value: str, first: dt.date, last: dt.date) -> pl.DataFrame:
    """From a parameter series (`Pack.series`: key, effective_from, value), per key the value in force on each
    part of the month, with the set of those days: key, value, days."""
    rows: list[dict[str, Any]] = []
    for (key,), entries in series.sort("effective_from").group_by(["key"], maintain_order=True):
        dated = list(zip(entries["effective_from"].to_list(), entries[value].to_list(), strict=True))
        for i, (start, v) in enumerate(dated):
            end = dated[i + 1][0] - dt.timedelta(days=1) if i + 1 < len(dated) else last
            lo, hi = max(start, first), min(end, last)
            if lo <= hi:
                a, b = (lo - first).days, (hi - first).days + 1
                rows.append({"key": key, value: v, "days": (1 << b) - (1 << a)})
    schema: dict[str, Any] = {"key": pl.Utf8, value: series.schema[value], "days": pl.Int64}
    return pl.DataFrame(rows, schema=schema)


def grade_column(grade: int) -> str:
    return f"grade_days_{grade}"


def grade_columns(frame: pl.DataFrame) -> list[str]:
    """The grade columns a frame carries (`person_calendars`)."""
    return [c for c in frame.columns if c.startswith("grade_days_")]


def _grades(frame: pl.DataFrame) -> list[int]:
    return [int(c.removeprefix("grade_days_")) for c in grade_columns(frame)]


def by_grade_and_date(
    lines: pl.DataFrame, segments: pl.DataFrame, key: Callable[[int], str], value: str, days: pl.Expr
) -> pl.DataFrame:
    """Per line, the sum over the days in `days` of the value in force for the day's grade and date: `key(g)`
    names grade g's parameter key; `segments` are `dated_segments`. Column `_sum`, 0 when none. Sums of counts of
    days, one term per grade and part of the month: no join."""
    terms = [
        count(days & pl.col(grade_column(g)) & pl.lit(seg["days"], dtype=pl.Int64)) * seg[value]
        for g in _grades(lines)
        for seg in segments.filter(pl.col("key") == key(g)).to_dicts()
    ]
    total = pl.sum_horizontal(terms) if terms else EMPTY
    return lines.with_columns(_sum=total.cast(pl.Int64))


def line_grade(lines: pl.DataFrame) -> pl.DataFrame:
    """Each line's grade: the grade in force on the line's last billed day that has one (null if none); the
    grade columns dropped."""
    dated = [last_day(pl.col("billed") & pl.col(grade_column(g))) * GRADE_SLOTS + g for g in _grades(lines)]
    grade = (pl.max_horizontal(dated) % GRADE_SLOTS) if dated else pl.lit(None)
    return lines.with_columns(grade=grade.cast(pl.Int64)).drop(grade_columns(lines))


def amount_on_days(care: pl.DataFrame, lines: pl.DataFrame, days: str, first: dt.date) -> pl.DataFrame:
    """Per line, the amount of its care rows dated on the days of the set column `days` (only lines where it is
    not empty are looked at): column `_amount`, 0 when none."""
    wanted = lines.filter(pl.col(days) != 0).select(*LINE_KEYS, pl.col(days).alias("_days"))
    amounts = (
        care.lazy()
        .filter(pl.col("person_id").is_in(wanted["person_id"].unique().implode()))
        .join(wanted.lazy(), on=LINE_KEYS)
        .filter((bit(pl.col("care_date"), first) & pl.col("_days")) != 0)
        .group_by(LINE_KEYS)
        .agg(_amount=pl.col("amount_fen").sum().cast(pl.Int64))
    )
    return (
        lines.lazy()
        .join(amounts, on=LINE_KEYS, how="left")
        .with_columns(pl.col("_amount").fill_null(0))
        .collect(engine=ROWS_ENGINE)
    )


def reason_columns(lines: pl.DataFrame) -> dict[str, str]:
    """The reasons lines carry sets of days not paid for: reason -> column."""
    return {c[2:]: c for c in lines.columns if c.startswith("x_")}


def finish_lines(lines: pl.DataFrame, first: dt.date) -> pl.DataFrame:
    """The line figures every pack reports, from the sets: days submitted and paid, `exclusions` (days by reason,
    in reason order) and `excluded_ranges` (the dates not paid as runs with one reason); the sets dropped."""
    columns = reason_columns(lines)
    keyed = lines.lazy().with_row_index("_line").select("_line", *columns.values())
    long = pl.concat(
        [
            keyed.select("_line", reason=pl.lit(reason), days=pl.col(col)).filter(pl.col("days") != 0)
            for reason, col in sorted(columns.items())
        ],
        how="vertical",
    ).collect()
    exclusions = long.group_by("_line", maintain_order=True).agg(
        exclusions=pl.struct("reason", days=count(pl.col("days")))
    )
    dates = (
        long.lazy()
        .join(pl.LazyFrame({"_k": pl.int_range(0, DAYS, eager=True, dtype=pl.Int64)}), how="cross")
        .filter((pl.col("days") & pl.lit(2, dtype=pl.Int64).pow(pl.col("_k"))) != 0)
        .select("_line", "reason", care_date=pl.lit(first) + pl.duration(days=pl.col("_k")))
    )
    ranges = excluded_ranges(dates, ["_line"]).collect()
    return (
        lines.lazy()
        .with_row_index("_line")
        .with_columns(days_submitted=count(pl.col("billed")), days_paid=count(pl.col("payable")))
        .drop("billed", "payable", *columns.values())
        .join(exclusions.lazy(), on="_line", how="left")
        .join(ranges.lazy(), on="_line", how="left")
        .with_columns(
            pl.col("exclusions").fill_null(pl.lit([], dtype=EXCLUSION)),
            pl.col("excluded_ranges").fill_null(pl.lit([], dtype=EXCLUDED_RANGES)),
        )
        .drop("_line")
        .collect()
    )
