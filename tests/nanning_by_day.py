"""Nanning's billing (南府规〔2023〕26号 三(三)3-4) written a second way: one row per person, provider, mode and
care day, with the day-row building blocks of `rules.common` the other packs use. The pack bills on sets of days
(`rules.daysets`); `tests/test_daysets.py` checks that both give the same claim lines to the fen."""

from __future__ import annotations

import datetime as dt

import polars as pl

from rules.common import care_day_status, claim_lines, finish, join_dated, not_first_of_day
from rules.engine import Pack, period_bounds
from rules.packs.nanning.formulas import _home_quota, pay_lines


def bill(inputs: dict[str, pl.DataFrame], pack: Pack, period: str) -> pl.DataFrame:
    first, last = period_bounds(period)
    pack.check_period(period)
    days = care_day_status(inputs, stay_kinds=["inpatient"], stay_first_day_paid=True, stay_last_day_paid=False)
    days = _modes_and_bed_days(days, pack, first)
    rates = pack.series(pack.children("billing.institutional_daily_rate"), "rate_fen")
    days = join_dated(days, rates, pl.format("grade_{}", pl.col("grade")))
    days = days.with_columns(
        day_gross_fen=pl.when(pl.col("care_mode") == "institutional")
        .then(pl.col("rate_fen"))
        .when(pl.col("care_mode") == "home")
        .then(pl.col("submitted_fen"))
        .otherwise(0)
        .fill_null(0)
    )
    lines = claim_lines(days)
    return finish(pay_lines(_home_quota(lines, inputs, pack, first, last)), period)


def _modes_and_bed_days(days: pl.DataFrame, pack: Pack, first: dt.date) -> pl.DataFrame:
    """三(三)2(1): only the two modes the document names, each from the kinds of designated provider that give
    it; 三(三)3(2): a bed-day is paid once a person and day (按床日付费), to the first provider by id."""
    kinds = {mode: pack.param(name).at(first) for mode, name in pack.children("billing.provider_kinds").items()}
    still = pl.col("reason").is_null()
    mode_ok = pl.col("care_mode").is_in(list(kinds))
    kind_ok = pl.lit(False)
    for mode, allowed in kinds.items():
        kind_ok = kind_ok | ((pl.col("care_mode") == mode) & pl.col("provider_kind").is_in(allowed))
    days = days.with_columns(
        reason=pl.when(still & ~mode_ok)
        .then(pl.lit("CARE_MODE_NOT_COVERED"))
        .when(still & ~kind_ok)
        .then(pl.lit("NOT_DESIGNATED_PROVIDER"))
        .otherwise(pl.col("reason"))
    )
    bed = (pl.col("care_mode") == "institutional") & pl.col("reason").is_null()
    again = not_first_of_day(days, bed, ["provider_id"])
    return days.with_columns(reason=pl.when(again).then(pl.lit("BED_DAY_ALREADY_PAID")).otherwise(pl.col("reason")))
