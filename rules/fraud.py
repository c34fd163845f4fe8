"""Named fraud checks on a month's care days (医疗保障基金使用监督管理条例): each flag names its rule, the care-day
record it is about and the clause (`rules/fraud.yaml`).

The checks run on the same frames as billing, as one lazy query: each narrows the month to the persons who died,
stayed in hospital or were seen by two providers (or the providers outside their contract) before it looks at
days. A flag is for an inspector; whether a
day is paid is the pack's billing rules' to say (they exclude most flagged days with their own reasons).

A check on carers (one carer in two homes at once) needs visits with carer and times, which care-day records do
not carry; it is not run.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from rules import ROWS_ENGINE

CATALOGUE_FILE = Path(__file__).with_name("fraud.yaml")
FLAG_SCHEMA = {
    "rule": pl.Utf8,
    "person_id": pl.Utf8,
    "provider_id": pl.Utf8,
    "care_date": pl.Date,
    "detail": pl.Utf8,
}


@functools.cache
def catalogue() -> dict[str, dict[str, Any]]:
    """Rule code -> clause, source, zh, en."""
    data: dict[str, dict[str, Any]] = yaml.safe_load(CATALOGUE_FILE.read_text(encoding="utf-8"))
    return data


def _flags(frame: pl.LazyFrame, rule: str, detail: pl.Expr) -> pl.LazyFrame:
    return frame.select(
        pl.lit(rule).alias("rule"),
        "person_id",
        "provider_id",
        "care_date",
        detail.cast(pl.Utf8).alias("detail"),
    )


def fraud_flags(inputs: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """One row per (rule, person, provider, care date) flagged, sorted. `inputs` holds the billing frames `care`,
    `persons`, `stays` and `providers`; a hospital stay counts if its kind is one of CARE_IN_HOSPITAL's
    `stay_kinds`.

    REPEATED_ITEM is not among them: the record keeps one care-day row per (person, provider, day, item), so a
    repeat is caught at intake, where every row of a repeated key is quarantined under that rule's name.
    """
    stay_kinds = list(catalogue()["CARE_IN_HOSPITAL"]["stay_kinds"])
    care = inputs["care"].lazy().select("person_id", "provider_id", "care_date")
    key = ["person_id", "provider_id", "care_date"]

    # Each check first narrows the care days to the few persons or providers it concerns (a join with a small
    # frame), and only then looks at their days.
    dead = inputs["persons"].lazy().filter(pl.col("death_date").is_not_null()).select("person_id", "death_date")
    after_death = care.join(dead, on="person_id").filter(pl.col("care_date") > pl.col("death_date")).unique(key)

    stays = (
        inputs["stays"]
        .lazy()
        .filter(pl.col("kind").is_in(stay_kinds))
        .select("person_id", "admitted_on", "discharged_on")
    )
    in_hospital = (
        care.join(stays, on="person_id")
        .filter(
            (pl.col("care_date") > pl.col("admitted_on"))
            & (pl.col("discharged_on").is_null() | (pl.col("care_date") < pl.col("discharged_on")))
        )
        .group_by(key)
        .agg(pl.col("admitted_on").min())
    )

    several = (
        care.group_by("person_id")
        .agg(pl.col("provider_id").min().alias("lo"), pl.col("provider_id").max().alias("hi"))
        .filter(pl.col("lo") != pl.col("hi"))
        .select("person_id")
    )
    theirs = care.join(several, on="person_id").unique(key)
    same_day = theirs.join(
        theirs.group_by("person_id", "care_date").agg(
            pl.col("provider_id").n_unique().alias("n"), pl.col("provider_id").sort().str.join(",").alias("all")
        ),
        on=["person_id", "care_date"],
    ).filter(pl.col("n") > 1)

    providers = inputs["providers"].lazy().select("provider_id", "status", "contract_start", "contract_end")
    known = care.join(providers, on="provider_id", how="left").filter(
        (pl.col("status") != "active").fill_null(True)
        | (pl.col("care_date") < pl.col("contract_start")).fill_null(True)
        | (pl.col("care_date") > pl.col("contract_end")).fill_null(False)
    )
    outside = known.unique(key).with_columns(pl.col("status").fill_null("unknown"))

    found = pl.concat(
        [
            _flags(after_death, "CARE_AFTER_DEATH", pl.format("died {}", pl.col("death_date"))),
            _flags(in_hospital, "CARE_IN_HOSPITAL", pl.format("admitted {}", pl.col("admitted_on"))),
            _flags(same_day, "TWO_PROVIDERS_SAME_DAY", pl.format("providers {}", pl.col("all"))),
            _flags(
                outside,
                "PROVIDER_NOT_IN_CONTRACT",
                pl.format(
                    "status {}, contract {}..{}",
                    pl.col("status"),
                    pl.col("contract_start").cast(pl.Utf8).fill_null(""),
                    pl.col("contract_end").cast(pl.Utf8).fill_null(""),
                ),
            ),
        ]
    )
    return found.collect(engine=ROWS_ENGINE).sort("rule", "person_id", "provider_id", "care_date")


BILLING_RULES = ("CARE_AFTER_DEATH", "CARE_IN_HOSPITAL", "TWO_PROVIDERS_SAME_DAY", "PROVIDER_NOT_IN_CONTRACT")


def counts(flags: pl.DataFrame) -> dict[str, int]:
    """Flags per rule run on billing frames, every one named (0 where none)."""
    got = dict(flags.group_by("rule").len().iter_rows()) if flags.height else {}
    return {rule: int(got.get(rule, 0)) for rule in BILLING_RULES}
