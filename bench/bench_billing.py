"""Benchmark of monthly billing (Nanning rules) on a synthetic month, against two DuckDB yardsticks.

    uv run --locked python bench/bench_billing.py --n 100000 --backend postgresql
    uv run --locked python bench/bench_billing.py --n 10000 --backend sqlite

For N beneficiaries (grades 3-5, two thirds in institutions billing every day, one third at home with a service item on
about nine days in ten; late starts, deaths, hospital stays, regradings, second providers, providers not designated
for a mode or for part of the month, a mode the pack does not cover, and a few bad rows), it:
  1. writes the month's care days as a CSV and loads it through `ltc load care_days` (parse, validate, quarantine,
     bulk write), and, on PostgreSQL, times a raw COPY of the same file into a table of care_day's indexes, then
     vacuums and analyses the tables it filled (untimed, as autovacuum would before the month is billed);
  2. runs the `bill_month` flow through Prefect (read, validate, compute, checks, write, commit) and times it;
  3. runs the same month again outside Prefect, part by part, and times each read, the compute, the checks and the
     write (rolled back) on its own: where bill_month spends its time;
  4. the reference: a DuckDB SQL implementation of 南府规〔2023〕26号 三(三)2-4, written from the clause text and not
     from `rules/`, on native DuckDB tables loaded once (the load is not timed), two threads; every claim line
     (grade, days, amounts, exclusions by reason) must equal ours, or the run fails;
  5. on PostgreSQL, the end-to-end limit: DuckDB reading the month's inputs from PostgreSQL through ADBC (binary COPY
     into Arrow), computing the same SQL, writing the claim lines back (ADBC ingest, binary COPY) into a table with
     claim_line's indexes, and committing;
  6. bills the month again at a smaller N (default N / 10), for the cost per care day.

Each stage runs in a process of its own, so that its peak RSS is its own. What can run again on the same data
(bill_month, after clearing the month's claim lines; each compute; the end-to-end run) runs `--repeat` times and
the fastest run counts: on a shared machine it is the one least disturbed by others. It prints each stage's wall
time, rows per second, peak RSS and the load average, then a markdown summary of the ratios against the scale
issue's targets.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import String, cast, delete, select, text
from sqlalchemy.orm import Session

from rules.inputs import CLAIM_FIGURES, OUTPUT_CLAIMS

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

JURISDICTION = "nanning"
PERIOD = "2026-03"
FIRST, LAST = dt.date(2026, 3, 1), dt.date(2026, 3, 31)

# The clause figures and choices of 南府规〔2023〕26号, for the independent reference only.
REF_RATE_FEN = {5: 6600, 4: 6200, 3: 5700}  # 三(三)3(2) 机构护理 按床日 元/人/天 (grades 重度Ⅲ, Ⅱ, Ⅰ级)
REF_HOME_QUOTA_FEN = {5: 185000, 4: 185000, 3: 185000}  # 三(三)3(2) 居家护理 每月定额 1850 元, whole for any month
REF_PROVIDER_KINDS = {  # 三(三)2(1): who gives each mode; other modes are not covered
    "institutional": ("institution", "mixed"),
    "home": ("institution", "home_care", "community", "mixed"),
}
REF_STAY_KINDS = ("inpatient",)  # 住院: not paid from the day after admission through the discharge day
REF_GRADES = range(6)  # disability grades 0-5 (医保办发〔2021〕37号)
REF_CARE_MODES = ("institutional", "community", "home")  # the record's care modes (care_day.care_mode)
# Why a day is not paid, as the claim line's exclusions name them.
REASONS = (
    "AFTER_DEATH",
    "BED_DAY_ALREADY_PAID",
    "CARE_MODE_NOT_COVERED",
    "IN_HOSPITAL",
    "NOT_DESIGNATED_PROVIDER",
    "NOT_ELIGIBLE",
)
LINE_KEY = ["person_id", "provider_id", "care_mode"]
# A claim line's columns that the reference must give exactly, then its days excluded by reason.
CLAIM_COLUMNS: dict[str, Any] = {c: OUTPUT_CLAIMS[c] for c in (*CLAIM_FIGURES, "cap_reason")}
EXCLUDED = [f"x_{r.lower()}" for r in REASONS]
COMPARED = [*CLAIM_COLUMNS, *EXCLUDED]
SCRATCH = "bench_duckdb_claim_line"
GIB_MB = 1024.0

# Targets of the scale issue.
TARGET_COMPUTE = 1.5  # our compute / reference compute
TARGET_END_TO_END = 1.5  # bill_month / DuckDB over PostgreSQL, end to end
TARGET_RSS_MB = 2 * GIB_MB  # peak RSS of loading and of billing
TARGET_PREFECT = 0.03  # (flow wall - task wall) / flow wall
TARGET_LINEAR = 1.1  # bill_month per care day at N / at the smaller N
TARGET_LOAD = 1.0  # load + validate rows/s / raw COPY rows/s


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the synthetic month ----------------------------------------------------------------------------------------


def synthetic(n: int, seed: int = 7) -> dict[str, pl.DataFrame]:
    """The registry and the month's care days for n beneficiaries, as frames."""
    ids = pl.int_range(0, n, eager=True)
    h = (ids * 2654435761 + seed) % 4294967296
    n_prov = max(n // 200, 2)
    h_ = pl.col("h")
    persons = (
        pl.DataFrame({"i": ids})
        .select(pl.format("P{}", pl.col("i").cast(pl.Utf8).str.zfill(8)).alias("person_id"))
        .with_columns(h=h)
        .with_columns(
            provider_id=pl.format("H{}", (h_ % n_prov).cast(pl.Utf8).str.zfill(5)),
            # A second provider of the same mode, never the first: some before it in id order, some after.
            provider2=pl.format(
                "H{}", ((h_ % n_prov + 1 + (h_ // 293) % (n_prov - 1)) % n_prov).cast(pl.Utf8).str.zfill(5)
            ),
            grade=(3 + h_ % 3).cast(pl.Int64),
            mode=pl.when(h_ % 3 == 0).then(pl.lit("home")).otherwise(pl.lit("institutional")),
            start=pl.lit(FIRST) + pl.duration(days=pl.when(h_ % 17 == 0).then(h_ % 20).otherwise(-60)),
            death=pl.when(h_ % 53 == 0).then(pl.lit(FIRST) + pl.duration(days=h_ % 31)).otherwise(None).cast(pl.Date),
        )
    )
    days = pl.DataFrame({"care_date": pl.date_range(FIRST, LAST, "1d", eager=True)})
    day = pl.col("care_date").dt.day()
    home = pl.col("mode") == "home"

    def rows(frame: pl.DataFrame, provider: str, mode: pl.Expr, item: pl.Expr, amount: pl.Expr) -> pl.DataFrame:
        return frame.select(
            "person_id",
            pl.col(provider).alias("provider_id"),
            pl.lit(PERIOD).alias("period"),
            pl.col("care_date").dt.strftime("%Y-%m-%d"),
            mode.alias("care_mode"),
            item.alias("item_code"),
            amount.alias("amount"),
        )

    def yuan(fen: pl.Expr) -> pl.Expr:
        return (fen / 100).round(2).cast(pl.Utf8)

    month = persons.join(days, how="cross")
    care = rows(
        month.filter(~home | ((h_ + day) % 10 < 9)),
        "provider_id",
        pl.col("mode"),
        pl.when(home).then(pl.lit("JJ01")).otherwise(pl.lit("")),
        pl.when(home).then(yuan(2000 + (h_ * 7 + day) % 10000)).otherwise(pl.lit("0.00")),
    )
    # A second provider: a contested bed-day on days 10-15 (paid once, to the first by id), or home items on days
    # 5-20 sharing the one monthly quota (filled in provider order).
    second = rows(
        month.filter((h_ % 293 == 5) & pl.when(home).then(day.is_between(5, 20)).otherwise(day.is_between(10, 15))),
        "provider2",
        pl.col("mode"),
        pl.when(home).then(pl.lit("JJ02")).otherwise(pl.lit("")),
        pl.when(home).then(yuan(3000 + (h_ + day) % 2000)).otherwise(pl.lit("0.00")),
    )
    # Day care in a community centre, a mode Nanning's document does not name.
    community = rows(
        month.filter((h_ % 89 == 2) & (day <= 3)), "provider_id", pl.lit("community"), pl.lit("SQ01"), pl.lit("30.00")
    )
    bad = care.head(4).with_columns(
        pl.Series("person_id", ["P_UNKNOWN", care["person_id"][1], care["person_id"][2], care["person_id"][3]]),
        pl.Series("care_date", [care["care_date"][0], "2026-04-01", "2026-03-3x", care["care_date"][3]]),
        pl.Series("amount", ["0.00", "0.00", "0.00", "-5.00"]),
        pl.Series("item_code", ["", "", "", "JJ99"]),  # a key of its own, so that no good row is a duplicate
    )

    def stay(where: pl.Expr, admitted: pl.Expr, discharged: pl.Expr | None, kind: str) -> pl.DataFrame:
        return persons.filter(where).select(
            "person_id",
            admitted.alias("admitted_on"),
            (discharged if discharged is not None else pl.lit(None, dtype=pl.Date)).alias("discharged_on"),
            pl.lit(kind).alias("kind"),
        )

    adm = pl.lit(FIRST) + pl.duration(days=h_ % 25)
    stays = pl.concat(
        [
            stay(h_ % 20 == 1, adm, adm + pl.duration(days=2 + h_ % 5), "inpatient"),
            # a second stay overlapping the first (its days count once)
            stay(h_ % 60 == 1, adm + pl.duration(days=1), adm + pl.duration(days=5 + h_ % 5), "inpatient"),
            # 急诊留观, whose days Nanning still pays
            stay(h_ % 100 == 2, adm, adm + pl.duration(days=2), "emergency_observation"),
            # not yet discharged; admitted in February
            stay(h_ % 200 == 3, pl.lit(dt.date(2026, 3, 20)), None, "inpatient"),
            stay(h_ % 200 == 23, pl.lit(dt.date(2026, 2, 25)), pl.lit(dt.date(2026, 3, 4)), "inpatient"),
        ]
    )
    return {"persons": persons, "care": pl.concat([care, second, community, bad]), "stays": stays}


def load_registry(data: dict[str, pl.DataFrame]) -> None:
    """Persons, providers, applications, assessments and approved decisions, written in bulk."""
    from common import idvault
    from storage import models as m
    from storage.bulk import bulk_upsert
    from storage.db import session_scope

    p = data["persons"]
    with session_scope() as s:
        bulk_upsert(
            s,
            m.Person,
            idvault.seal(
                p.select(
                    "person_id",
                    pl.lit("测试").alias("name"),
                    pl.lit("45010319500101123X").alias("id_number"),
                    pl.lit(JURISDICTION).alias("jurisdiction"),
                    pl.lit("青秀区").alias("area"),
                    pl.lit("employee").alias("insurance_type"),
                    pl.lit(500000).alias("contribution_base_fen"),
                    pl.col("death").alias("death_date"),
                )
            ),
            ["person_id"],
        )
        provs = p.select("provider_id").unique().sort("provider_id")
        idx = pl.col("provider_id").str.slice(1).cast(pl.Int64) % 500
        bulk_upsert(
            s,
            m.Provider,
            provs.with_columns(
                name=pl.format("机构{}", "provider_id"),
                jurisdiction=pl.lit(JURISDICTION),
                # in every five hundred: one designated for home care only, one suspended, one whose contract ends
                # on the 15th and one whose contract starts on the 10th
                kind=pl.when(idx == 7).then(pl.lit("home_care")).otherwise(pl.lit("mixed")),
                contract_start=pl.when(idx == 17)
                .then(pl.lit(dt.date(2026, 3, 10)))
                .otherwise(pl.lit(dt.date(2024, 1, 1))),
                contract_end=pl.when(idx == 11).then(pl.lit(dt.date(2026, 3, 15))).otherwise(None).cast(pl.Date),
                status=pl.when(idx == 13).then(pl.lit("suspended")).otherwise(pl.lit("active")),
                bank_account=pl.lit("622202000011112222"),
            ),
            ["provider_id"],
        )
        app_id = pl.format("A{}", pl.col("person_id").str.slice(1)).alias("application_id")
        apps = p.select(
            app_id,
            "person_id",
            pl.lit(dt.date(2025, 11, 1)).alias("received_on"),
            pl.lit(dt.date(2025, 1, 1)).alias("disabled_since"),
            pl.col("mode").alias("care_mode"),
            pl.lit("decided").alias("status"),
        )
        bulk_upsert(s, m.Application, apps, ["application_id"])

        def decision(frame: pl.DataFrame, sequence: int, grade: pl.Expr, start: pl.Expr) -> pl.DataFrame:
            return frame.select(
                app_id,
                pl.lit(sequence).alias("assessment_sequence"),
                "person_id",
                pl.lit(JURISDICTION).alias("jurisdiction"),
                pl.lit(dt.date(2026, 1, 1)).alias("decided_on"),
                pl.lit(True).alias("approved"),
                grade.alias("grade"),
                start.alias("start_date"),
                pl.col("death").alias("end_date"),
                pl.lit("[]").alias("reasons"),
                pl.lit("[]").alias("rules"),
            )

        # reassessed: another grade from the 16th (for persons whose first entitlement starts on another day)
        regraded = p.filter((pl.col("h") % 83 == 4) & (pl.col("start") != dt.date(2026, 3, 16)))
        decisions = pl.concat(
            [
                decision(p, 1, pl.col("grade"), pl.col("start")),
                decision(regraded, 2, (3 + (pl.col("h") + 1) % 3).cast(pl.Int64), pl.lit(dt.date(2026, 3, 16))),
            ]
        )
        bulk_upsert(s, m.EligibilityDecision, decisions, ["application_id", "assessment_sequence"])
        bulk_upsert(s, m.HospitalStay, data["stays"], ["person_id", "admitted_on"])


# --- the DuckDB reference ---------------------------------------------------------------------------------------

# The month's inputs as the reference reads them: only the columns the rules need.
INPUT_COLUMNS = {
    "care": ["person_id", "provider_id", "care_mode", "care_date", "amount_fen"],
    "entitlements": ["person_id", "grade", "start_date", "end_date"],
    "persons": ["person_id", "death_date"],
    "stays": ["person_id", "admitted_on", "discharged_on", "kind"],
    "providers": ["provider_id", "kind", "status", "contract_start", "contract_end"],
}
_OF_JURISDICTION = f"person_id IN (SELECT person_id FROM person WHERE jurisdiction = '{JURISDICTION}')"
PG_INPUTS = {
    "care": f"SELECT {', '.join(INPUT_COLUMNS['care'])} FROM care_day WHERE period = '{PERIOD}' AND {_OF_JURISDICTION}",
    "entitlements": f"""SELECT {", ".join(INPUT_COLUMNS["entitlements"])} FROM eligibility_decision
        WHERE jurisdiction = '{JURISDICTION}' AND approved""",
    "persons": f"SELECT {', '.join(INPUT_COLUMNS['persons'])} FROM person WHERE jurisdiction = '{JURISDICTION}'",
    "stays": f"""SELECT {", ".join(INPUT_COLUMNS["stays"])} FROM hospital_stay
        WHERE admitted_on <= DATE '{LAST}' AND (discharged_on IS NULL OR discharged_on >= DATE '{FIRST}')
          AND {_OF_JURISDICTION}""",
    "providers": f"SELECT {', '.join(INPUT_COLUMNS['providers'])} FROM provider WHERE jurisdiction = '{JURISDICTION}'",
}


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _days(lo: str, hi: str) -> str:
    """SQL for the days from `lo` through `hi` (dates) that fall in the month, as a set of days: bit d stands for
    day d of the month, so that a set of days is a BIGINT and sets meet with & and |."""
    lo, hi = f"greatest({lo}, DATE '{FIRST}')", f"least({hi}, DATE '{LAST}')"
    return f"(CASE WHEN {lo} <= {hi} THEN (1::BIGINT << (day({hi}) + 1)) - (1::BIGINT << day({lo})) ELSE 0 END)"


def reference_sql() -> str:
    """南府规〔2023〕26号 三(三)2-4 in one statement over the tables care, entitlements, persons, stays and providers.
    Integer fen throughout: the fund pays the whole rate or the items up to the quota (no deductible, no personal
    share), so no amount is ever rounded.

    A day of a claim line (person, provider, mode; several items on one day are one day) is not paid, for the
    first reason that holds:
      - NOT_DESIGNATED_PROVIDER: the provider is unknown, not active, or outside its contract on that day;
      - AFTER_DEATH;
      - NOT_ELIGIBLE: no entitlement had started, or the one in force (the last started) had ended;
      - IN_HOSPITAL: the day after admission through the discharge day of an inpatient stay;
      - CARE_MODE_NOT_COVERED: neither institutional nor home care;
      - NOT_DESIGNATED_PROVIDER: the provider's kind does not give that mode;
      - BED_DAY_ALREADY_PAID: an institution first by id is paid the same bed-day.
    Institutional days are paid at the rate of the day's grade, once a day; home items as billed, each person's
    month capped at the quota of the line's grade, filled in provider order. A line's grade is that of its last
    day with one.

    Every calendar the rules look at is a set of the month's days (`_days`): when each person was alive,
    entitled, in hospital and of each grade; when each provider was designated; which days each line bills.
    The care rows are read once: joined to the person's and the provider's calendars (hash joins on small
    tables) and summed into claim lines in the same pass; everything after works on lines.
    """
    inst, home = (_sql_list(REF_PROVIDER_KINDS[k]) for k in ("institutional", "home"))
    g = list(REF_GRADES)
    grade_days = ",\n    ".join(f"coalesce(bit_or(in_force) FILTER (WHERE grade = {x}), 0) AS grade_{x}" for x in g)
    person_grades = ", ".join(f"coalesce(e.grade_{x}, 0) AS grade_{x}" for x in g)
    line_grade = " ".join(f"WHEN (grade_{x} >> last_graded) & 1 = 1 THEN {x}" for x in g)
    bed_days_fen = " + ".join(f"{REF_RATE_FEN[x]} * bit_count(paid & grade_{x})" for x in g if x in REF_RATE_FEN)
    quota = " ".join(f"WHEN {x} THEN {q}" for x, q in REF_HOME_QUOTA_FEN.items())
    month_end = f"DATE '{LAST}'"
    next_start = "lead(start_date) OVER (PARTITION BY person_id ORDER BY start_date)"
    return f"""
WITH ent AS (  -- each entitlement is in force from its start until the day before the person's next one starts
  SELECT person_id, grade, end_date,
    {_days("start_date", f"coalesce({next_start} - 1, {month_end})")} AS in_force
  FROM entitlements WHERE start_date IS NOT NULL
), entitled AS (
  SELECT person_id,
    bit_or(in_force & {_days(f"DATE '{FIRST}'", f"coalesce(end_date, {month_end})")}) AS entitled,
    {grade_days}
  FROM ent GROUP BY person_id
), hospital AS (
  SELECT person_id, bit_or({_days("admitted_on + 1", f"coalesce(discharged_on, {month_end})")}) AS in_hospital
  FROM stays WHERE kind IN ({_sql_list(REF_STAY_KINDS)}) GROUP BY person_id
), people AS (
  SELECT p.person_id, p.alive, coalesce(e.entitled, 0) AS entitled, coalesce(h.in_hospital, 0) AS in_hospital,
    p.alive & coalesce(e.entitled, 0) & ~coalesce(h.in_hospital, 0) AS ok, {person_grades}
  FROM (SELECT person_id, {_days(f"DATE '{FIRST}'", f"coalesce(death_date, {month_end})")} AS alive FROM persons) p
  LEFT JOIN entitled e USING (person_id)
  LEFT JOIN hospital h USING (person_id)
), provider_days AS (
  SELECT provider_id,
    CASE WHEN status = 'active' THEN {_days("contract_start", f"coalesce(contract_end, {month_end})")} ELSE 0 END
      AS designated,
    kind IN ({inst}) AS gives_institutional, kind IN ({home}) AS gives_home
  FROM providers
), lines AS (  -- the one pass over the care rows
  SELECT c.person_id, c.provider_id, c.care_mode,
    bit_or(1::BIGINT << day(c.care_date)) AS days,
    sum(c.amount_fen) AS submitted_fen,
    sum(c.amount_fen) FILTER (WHERE ((pr.designated & p.ok) >> day(c.care_date)) & 1 = 1) AS ok_fen
  FROM care c
  LEFT JOIN provider_days pr ON pr.provider_id = c.provider_id
  LEFT JOIN people p ON p.person_id = c.person_id
  GROUP BY ALL
), judged AS (
  SELECT l.*, p.* EXCLUDE (person_id), coalesce(pr.designated, 0) AS designated,
    coalesce(CASE l.care_mode WHEN 'institutional' THEN pr.gives_institutional WHEN 'home' THEN pr.gives_home END,
      false) AS kind_ok,
    l.days & coalesce(pr.designated, 0) & p.ok AS ok_days
  FROM lines l LEFT JOIN provider_days pr USING (provider_id) LEFT JOIN people p USING (person_id)
), bed_days AS (  -- the days already paid to an institution before this one
  SELECT *,
    coalesce(bit_or(CASE WHEN kind_ok THEN ok_days ELSE 0 END)
      OVER (PARTITION BY person_id, care_mode ORDER BY provider_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
      0) AS paid_before
  FROM judged
), paid AS (
  SELECT *,
    CASE WHEN NOT kind_ok THEN 0 WHEN care_mode = 'institutional' THEN ok_days & ~paid_before ELSE ok_days END
      AS paid,
    CASE WHEN kind_ok AND care_mode = 'institutional' THEN ok_days & paid_before ELSE 0 END AS paid_elsewhere,
    CAST(floor(log2(nullif(days & ({" | ".join(f"grade_{x}" for x in g)}), 0))) AS INTEGER) AS last_graded
  FROM bed_days
), gross AS (
  SELECT *, CASE {line_grade} END AS grade,
    CASE care_mode WHEN 'institutional' THEN {bed_days_fen}
      WHEN 'home' THEN CASE WHEN kind_ok THEN coalesce(ok_fen, 0) ELSE 0 END ELSE 0 END AS gross_fen
  FROM paid
), capped AS (
  SELECT *,
    CASE WHEN care_mode = 'home' THEN greatest(0, least(sum(gross_fen) OVER w, CASE grade {quota} ELSE 0 END)
      - (sum(gross_fen) OVER w - gross_fen)) ELSE gross_fen END AS payable_fen
  FROM gross
  WINDOW w AS (PARTITION BY person_id, care_mode ORDER BY provider_id ROWS UNBOUNDED PRECEDING)
)
SELECT CAST(person_id AS VARCHAR) AS person_id, CAST(provider_id AS VARCHAR) AS provider_id,
  CAST(care_mode AS VARCHAR) AS care_mode, CAST(grade AS BIGINT) AS grade,
  CAST(bit_count(days) AS BIGINT) AS days_submitted, CAST(bit_count(paid) AS BIGINT) AS days_paid,
  CAST(bit_count(days) - bit_count(paid) AS BIGINT) AS days_excluded,
  CAST(submitted_fen AS BIGINT) AS submitted_fen, CAST(gross_fen AS BIGINT) AS gross_fen,
  CAST(payable_fen AS BIGINT) AS payable_fen, CAST(gross_fen - payable_fen AS BIGINT) AS personal_fen,
  CAST(gross_fen - payable_fen AS BIGINT) AS over_cap_fen,
  CASE WHEN care_mode = 'home' THEN 'OVER_MONTHLY_QUOTA' END AS cap_reason,
  CAST(bit_count(days & designated & ~alive) AS BIGINT) AS x_after_death,
  CAST(bit_count(paid_elsewhere) AS BIGINT) AS x_bed_day_already_paid,
  CAST(CASE WHEN care_mode NOT IN ('institutional', 'home') THEN bit_count(ok_days) ELSE 0 END AS BIGINT)
    AS x_care_mode_not_covered,
  CAST(bit_count(days & designated & alive & entitled & in_hospital) AS BIGINT) AS x_in_hospital,
  CAST(bit_count(days & ~designated)
    + CASE WHEN NOT kind_ok AND care_mode IN ('institutional', 'home') THEN bit_count(ok_days) ELSE 0 END AS BIGINT)
    AS x_not_designated_provider,
  CAST(bit_count(days & designated & alive & ~entitled) AS BIGINT) AS x_not_eligible
FROM capped
"""


# What the end-to-end run writes back: the claim line's columns and types, its exclusions as the same JSON object.
_EXCLUSIONS_JSON = ", ".join(
    f"CASE WHEN {x} > 0 THEN '\"{r}\": ' || {x} END" for r, x in zip(REASONS, EXCLUDED, strict=True)
)
WRITE_SQL = f"""
SELECT person_id, provider_id, '{PERIOD}' AS period, '{JURISDICTION}' AS jurisdiction, care_mode,
  CAST(grade AS INTEGER) AS grade, CAST(days_submitted AS INTEGER) AS days_submitted,
  CAST(days_paid AS INTEGER) AS days_paid, CAST(days_excluded AS INTEGER) AS days_excluded,
  submitted_fen, gross_fen, payable_fen, personal_fen, over_cap_fen, cap_reason,
  '{{' || concat_ws(', ', {_EXCLUSIONS_JSON}) || '}}' AS exclusions
FROM ref_claims
"""

SCRATCH_DDL = f"""
CREATE TABLE {SCRATCH} (
  id bigserial PRIMARY KEY,
  person_id varchar(32) NOT NULL, provider_id varchar(32) NOT NULL, period varchar(7) NOT NULL,
  jurisdiction varchar(32) NOT NULL, care_mode varchar(16) NOT NULL, grade integer,
  days_submitted integer NOT NULL, days_paid integer NOT NULL, days_excluded integer NOT NULL,
  submitted_fen bigint NOT NULL, gross_fen bigint NOT NULL, payable_fen bigint NOT NULL,
  personal_fen bigint NOT NULL, over_cap_fen bigint NOT NULL, cap_reason varchar(48), exclusions json NOT NULL,
  UNIQUE (person_id, provider_id, period, care_mode)
);
CREATE INDEX ON {SCRATCH} (provider_id);
CREATE INDEX ON {SCRATCH} (period)
"""


def duckdb_connect() -> Any:
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute("SET preserve_insertion_order = false")
    return con


def pg_uri() -> str:
    """The bench database as a libpq URI."""
    return os.environ["LTC_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://", 1)


# How each input becomes a native table: codes as DuckDB ENUMs (the care modes of the record, the providers of
# the registry), so that the one pass over the care rows joins and groups on small integers. The providers' ENUM
# is declared in id order, which is the order in which the rules fill a bed-day and a quota.
LOAD_SQL = {
    "providers": "SELECT * FROM _src",
    "care": """SELECT person_id, CAST(provider_id AS provider_code) AS provider_id,
        CAST(care_mode AS care_mode_code) AS care_mode, care_date, amount_fen FROM _src""",
    "entitlements": "SELECT * FROM _src",
    "persons": "SELECT * FROM _src",
    "stays": "SELECT * FROM _src",
}


def _load(con: Any, name: str, source: Any) -> None:
    con.register("_src", source)
    con.execute(f"CREATE TABLE {name} AS {LOAD_SQL[name]}")
    con.unregister("_src")
    if name == "providers":
        con.execute(f"CREATE TYPE care_mode_code AS ENUM ({_sql_list(REF_CARE_MODES)})")
        con.execute("CREATE TYPE provider_code AS ENUM (SELECT provider_id FROM providers ORDER BY provider_id)")
        con.execute("ALTER TABLE providers ALTER provider_id TYPE provider_code")


def _check_loaded(con: Any) -> int:
    """What the reference takes for granted: care days inside the month, grades of the standard. Returns the
    care-day rows."""
    outside = _scalar(con, f"SELECT count(*) FROM care WHERE care_date NOT BETWEEN DATE '{FIRST}' AND DATE '{LAST}'")
    grades = _scalar(con, f"SELECT count(*) FROM entitlements WHERE grade NOT IN ({', '.join(map(str, REF_GRADES))})")
    if outside or grades:
        raise SystemExit(f"the reference cannot bill {outside} care days outside {PERIOD}, {grades} unknown grades")
    rows: int = _scalar(con, "SELECT count(*) FROM care")
    return rows


def load_from_postgresql(con: Any, cur: Any) -> int:
    """The month's inputs, each streamed from PostgreSQL (binary COPY into Arrow) into a native DuckDB table.
    Returns the care-day rows."""
    for name in LOAD_SQL:
        cur.execute(PG_INPUTS[name])
        _load(con, name, cur.fetch_record_batch())
    return _check_loaded(con)


def load_from_frames(con: Any, frames: dict[str, pl.DataFrame]) -> int:
    for name in LOAD_SQL:
        _load(con, name, frames[name].select(INPUT_COLUMNS[name]).to_arrow())
    return _check_loaded(con)


def compute_reference(con: Any) -> tuple[float, float]:
    """The month's claim lines into the table ref_claims. Returns wall and CPU seconds."""
    t, cpu = time.perf_counter(), time.process_time()
    con.execute(f"CREATE OR REPLACE TABLE ref_claims AS {reference_sql()}")
    return time.perf_counter() - t, time.process_time() - cpu


def best_of(repeat: int, fn: Callable[[], tuple[float, float]]) -> tuple[float, float, list[float]]:
    """The fastest of `repeat` runs (wall, its CPU) and every run's wall seconds: on a shared machine the fastest
    run is the one least disturbed by others."""
    runs = [fn() for _ in range(max(repeat, 1))]
    wall, cpu = min(runs)
    return wall, cpu, [round(w, 3) for w, _ in runs]


def stored_claims(s: Session) -> pl.DataFrame:
    """Our claim lines for the month, with the days excluded by reason out of their JSON."""
    from storage import models as m
    from tasks import records

    cl = m.ClaimLine
    stmt = select(
        *(getattr(cl, c) for c in [*LINE_KEY, *CLAIM_COLUMNS]), cast(cl.exclusions, String).label("exclusions")
    ).where(cl.period == PERIOD, cl.jurisdiction == JURISDICTION)
    schema = {**dict.fromkeys(LINE_KEY, pl.Utf8), **CLAIM_COLUMNS, "exclusions": pl.Utf8}
    out = records.frame(s, stmt, schema)
    reasons = pl.Struct(dict.fromkeys(REASONS, pl.Int64))
    return out.with_columns(pl.col("exclusions").str.json_decode(reasons)).select(
        *LINE_KEY,
        *CLAIM_COLUMNS,
        *(pl.col("exclusions").struct.field(r).fill_null(0).alias(x) for r, x in zip(REASONS, EXCLUDED, strict=True)),
    )


def _scalar(con: Any, sql: str) -> Any:
    rows = con.execute(sql).fetchall()  # to the end: DuckDB keeps an unfinished result open
    return rows[0][0]


def mismatches(con: Any) -> pl.DataFrame:
    """Claim lines of ours and of the reference that differ in any compared column, or that one side lacks."""
    differs = " OR ".join(f"r.{c} IS DISTINCT FROM o.{c}" for c in COMPARED)
    cols = ", ".join(f"r.{c} AS {c}_ref, o.{c} AS {c}_ours" for c in COMPARED)
    out = con.sql(
        f"""SELECT person_id, provider_id, care_mode, r.days_submitted IS NULL AS only_ours,
              o.days_submitted IS NULL AS only_reference, {cols}
            FROM ref_claims r FULL JOIN ours o USING ({", ".join(LINE_KEY)})
            WHERE {differs} ORDER BY ALL"""
    ).pl()
    assert isinstance(out, pl.DataFrame)
    return out


def fail_on_mismatch(bad: pl.DataFrame, lines: int, what: str) -> None:
    if bad.is_empty():
        return
    print(f"\nFAILED: {bad.height:,} of {lines:,} claim lines differ between ours and {what}:", file=sys.stderr)
    for row in bad.head(10).iter_rows(named=True):
        diff = {c: (row[f"{c}_ours"], row[f"{c}_ref"]) for c in COMPARED if row[f"{c}_ours"] != row[f"{c}_ref"]}
        print(
            f"  {row['person_id']} {row['provider_id']} {row['care_mode']} (ours, reference): {diff}", file=sys.stderr
        )
    sys.exit(3)


# --- stages -----------------------------------------------------------------------------------------------------


def _stage(key: str, name: str, seconds: float, rows: int, **extra: Any) -> dict[str, Any]:
    return {
        "key": key,
        "stage": name,
        "seconds": round(seconds, 3),
        "rows": rows,
        "rss_mb": round(peak_rss_mb()),
        "loadavg": round(os.getloadavg()[0], 2),
        **extra,
    }


def stage_setup(n: int, workdir: Path) -> list[dict[str, Any]]:
    from storage.db import upgrade

    upgrade()
    t = time.perf_counter()
    data = synthetic(n)
    load_registry(data)
    data["care"].write_csv(workdir / "care_days.csv")
    data["care"].head(-4).write_csv(workdir / "care_days_good.csv")  # the same file without its 4 bad rows
    (workdir / "rows").write_text(str(data["care"].height))
    return [
        _stage("setup", "setup (synthetic registry and care-day file)", time.perf_counter() - t, data["care"].height)
    ]


def stage_load(workdir: Path, backend: str, raw_copy: bool) -> list[dict[str, Any]]:
    from storage.db import session_scope
    from tasks.intake import load_file

    csv_path = workdir / "care_days.csv"
    rows = int((workdir / "rows").read_text())
    out = []
    if backend == "postgresql" and raw_copy:
        # The same file (less its 4 bad rows, which COPY cannot skip) written by the database alone into a table
        # of care_day's columns, types and indexes, with the amount as the file gives it (yuan): no parsing,
        # checks or quarantine in Python.
        with session_scope() as s:
            raw: Any = s.connection().connection.dbapi_connection
            with raw.cursor() as cur:
                cur.execute("CREATE TABLE raw_copy (LIKE care_day INCLUDING ALL)")
                cur.execute("ALTER TABLE raw_copy DROP COLUMN amount_fen, ADD COLUMN amount numeric(12, 2)")
                cols = "person_id, provider_id, period, care_date, care_mode, item_code, amount"
                t = time.perf_counter()
                with (
                    (workdir / "care_days_good.csv").open("rb") as f,
                    cur.copy(f"COPY raw_copy ({cols}) FROM STDIN WITH (FORMAT csv, HEADER)") as cp,
                ):
                    while chunk := f.read(1 << 20):
                        cp.write(chunk)
                out.append(
                    _stage("raw_copy", "raw COPY into an equivalent indexed table", time.perf_counter() - t, rows)
                )
                cur.execute("DROP TABLE raw_copy")
    t = time.perf_counter()
    report = load_file("care_days", csv_path)
    out.append(_stage("load", "load + validate care days (ltc load)", time.perf_counter() - t, rows))
    assert report.quarantined == 4, report.errors[:5]
    if backend == "postgresql":
        # Untimed: what autovacuum does in the days between a month's last care-day file and its billing, so that
        # billing does not share the machine with it or set the new rows' hint bits itself.
        import psycopg

        with psycopg.connect(pg_uri(), autocommit=True) as c:
            c.execute("VACUUM (ANALYZE) care_day, person, eligibility_decision, hospital_stay, provider")
    return out


def _clear_month() -> None:
    """Remove the month's claim lines and fraud flags, so that the next billing takes the path of the first."""
    from storage.db import session_scope

    with session_scope() as s:
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("TRUNCATE claim_line, fraud_flag CASCADE"))
        else:
            s.execute(text("DELETE FROM claim_line WHERE period = :p"), {"p": PERIOD})
            s.execute(text("DELETE FROM fraud_flag WHERE period = :p"), {"p": PERIOD})


def stage_bill(repeat: int) -> list[dict[str, Any]]:
    """bill_month `repeat` times, the month cleared before each run after the first; the fastest run counts. It
    runs as `ltc run bill_month` runs it, on the local server started for the command (`local_run_settings`: no
    flow-run heartbeats)."""
    from prefect import flow

    from flows.bill_month import bill_month
    from flows.runners import local_run_settings

    with local_run_settings():
        return _bill_runs(repeat, flow, bill_month)


def _bill_runs(repeat: int, flow: Any, bill_month: Any) -> list[dict[str, Any]]:

    @flow
    def warm_up() -> None:
        """Start Prefect's server before the timed flow."""

    warm_up()
    best: tuple[float, dict[str, Any]] | None = None
    runs = []
    for i in range(max(repeat, 1)):
        if i:
            _clear_month()
        t = time.perf_counter()
        summary = bill_month(JURISDICTION, PERIOD)
        wall = time.perf_counter() - t
        runs.append(round(wall, 3))
        if best is None or wall < best[0]:
            best = (wall, summary)
    assert best is not None
    wall, summary = best
    busy = summary["task_wall_seconds"]
    days = summary["care_days"]
    return [
        _stage("bill", "bill_month through Prefect (read..commit)", wall, days, parts=summary["parts"], runs=runs),
        *(_stage(f"bill.{k}", f"  {k} (sum over parts)", v, days) for k, v in summary["task_seconds"].items()),
        _stage("prefect_overhead", "  Prefect overhead (flow wall - task wall)", wall - busy, days),
    ]


@contextmanager
def _clock(seconds: dict[str, float], key: str) -> Iterator[None]:
    t = time.perf_counter()
    yield
    seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - t


def _compute_ours(inputs: dict[str, pl.DataFrame], repeat: int) -> tuple[pl.DataFrame, float, float, list[float]]:
    """Our compute and validation of a part, `repeat` times: the claims, the fastest run's wall and CPU seconds, and
    every run's wall seconds."""
    from tasks.billing import compute_claims

    claims, runs, best = pl.DataFrame(), [], (float("inf"), 0.0)
    for _ in range(max(repeat, 1)):
        t, cpu = time.perf_counter(), time.process_time()
        claims = compute_claims(inputs, JURISDICTION, PERIOD)
        wall = time.perf_counter() - t
        runs.append(round(wall, 3))
        best = min(best, (wall, time.process_time() - cpu))
    return claims, best[0], best[1], runs


def stage_ours(repeat: int) -> list[dict[str, Any]]:
    """bill_month's work for each part, outside Prefect, one part after another, each step timed on its own. The
    month's claim lines and flags are removed first (untimed) and the write is rolled back, so that the write takes
    the path of a month's first billing and the record is left as bill_month wrote it."""
    from flows.bill_month import persons_per_part
    from rules import fraud
    from storage import models as m
    from storage.db import get_engine, session_scope
    from tasks import audit, records
    from tasks.billing import frame_sha256, write_flags, write_lines

    with session_scope() as s:
        parts = records.parts(s, JURISDICTION, persons_per_part())
    # The frames of tasks.billing.read_inputs, each read on its own.
    readers: dict[str, Callable[[Session, records.Part], pl.DataFrame]] = {
        "care": lambda s, p: records.care_days(s, JURISDICTION, PERIOD, p),
        "entitlements": lambda s, p: records.entitlements(s, JURISDICTION, p),
        "persons": lambda s, p: records.persons(s, JURISDICTION, p),
        "stays": lambda s, p: records.hospital_stays(s, JURISDICTION, PERIOD, p),
        "providers": lambda s, p: records.providers(s, JURISDICTION),
        "contributions": lambda s, p: records.contributions(s, JURISDICTION, p),
        "ytd": lambda s, p: records.year_to_date(s, JURISDICTION, PERIOD, p),
    }
    out: list[dict[str, Any]] = []
    total: dict[str, float] = {}
    rows, compute_cpu, compute_runs = 0, 0.0, []
    for i, part in enumerate(parts):
        sec: dict[str, float] = {}
        with Session(get_engine()) as s:
            inputs: dict[str, pl.DataFrame] = {}
            for name, reader in readers.items():
                with _clock(sec, f"read {name}"):
                    inputs[name] = reader(s, part)
            claims, sec["compute + validate"], cpu, runs = _compute_ours(inputs, repeat)
            compute_cpu += cpu
            compute_runs.append(runs)
            with _clock(sec, "checks"):
                flags = fraud.fraud_flags(inputs)
            care_rows = inputs["care"].height
            inputs.clear()
            if s.get_bind().dialect.name == "postgresql":  # as empty as before the month's first billing
                s.execute(text("TRUNCATE claim_line, fraud_flag CASCADE"))
            for model in (m.ClaimLine, m.FraudFlag):
                s.execute(delete(model).where(model.period == PERIOD, records.in_part(model.person_id, part)))
            with _clock(sec, "write claim lines"):
                write_lines(s, claims, JURISDICTION, PERIOD, part)
            with _clock(sec, "write flags"):
                write_flags(s, flags, JURISDICTION, PERIOD)
            with _clock(sec, "audit digest"):
                digest = frame_sha256(claims, LINE_KEY)
            with _clock(sec, "audit entry"):
                audit.record(s, "bench.part", str(i), {"sha256": digest})
            s.rollback()
        rows += care_rows
        out.append(_stage("part", f"part {i + 1}", sum(sec.values()), care_rows, steps=sec))
        for k, v in sec.items():
            total[k] = total.get(k, 0.0) + v
    compute = total["compute + validate"]
    groups = {
        "read": sum(v for k, v in total.items() if k.startswith("read ")),
        "compute": compute,
        "checks": total["checks"],
        "write": sum(v for k, v in total.items() if k.startswith(("write ", "audit "))),
    }
    extra: dict[str, dict[str, Any]] = {"compute": {"cpu": compute_cpu, "runs": compute_runs}}
    out.extend(
        _stage(
            f"ours.{k}", f"ours outside Prefect: {k} ({len(parts)} parts, one at a time)", v, rows, **extra.get(k, {})
        )
        for k, v in groups.items()
    )
    out.append(_stage("ours.steps", "  by step", sum(total.values()), rows, steps=total))
    return out


def stage_pairs(repeat: int) -> list[dict[str, Any]]:
    """Our compute and validation as bill_month runs it on this machine: two parts at a time, one on each of the
    flow's two task threads (`flows.runners.billing_runner`), the same two threads the reference is given. The
    inputs of two parts are read (untimed), both computed at once, `repeat` times; the fastest counts."""
    from concurrent.futures import ThreadPoolExecutor

    from flows.bill_month import persons_per_part
    from storage.db import session_scope
    from tasks import records
    from tasks.billing import compute_claims, read_inputs

    with session_scope() as s:
        parts = records.parts(s, JURISDICTION, persons_per_part())
    wall_total, cpu_total, rows, runs_all = 0.0, 0.0, 0, []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for i in range(0, len(parts), 2):
            pair = parts[i : i + 2]
            with session_scope() as s:
                inputs = [read_inputs(s, JURISDICTION, PERIOD, p) for p in pair]
            rows += sum(x["care"].height for x in inputs)
            best, runs = (float("inf"), 0.0), []
            for _ in range(max(repeat, 1)):
                t, cpu = time.perf_counter(), time.process_time()
                list(pool.map(lambda x: compute_claims(x, JURISDICTION, PERIOD), inputs))
                wall = time.perf_counter() - t
                runs.append(round(wall, 3))
                best = min(best, (wall, time.process_time() - cpu))
            wall_total += best[0]
            cpu_total += best[1]
            runs_all.append(runs)
            inputs.clear()
    return [
        _stage(
            "ours.compute_pairs",
            f"ours: compute two parts at a time ({len(parts)} parts, 2 threads)",
            wall_total,
            rows,
            cpu=cpu_total,
            runs=runs_all,
        )
    ]


def stage_reference(backend: str, repeat: int) -> list[dict[str, Any]]:
    from storage.db import session_scope

    con = duckdb_connect()
    t = time.perf_counter()
    if backend == "postgresql":
        import adbc_driver_postgresql.dbapi as adbc

        with adbc.connect(pg_uri()) as conn, conn.cursor() as cur:
            rows = load_from_postgresql(con, cur)
    else:
        from tasks.billing import read_inputs

        with session_scope() as s:
            rows = load_from_frames(con, read_inputs(s, JURISDICTION, PERIOD))
    load = time.perf_counter() - t
    out = [_stage("ref.load", "DuckDB reference: load into native tables (untimed)", load, rows)]
    wall, cpu, runs = best_of(repeat, lambda: compute_reference(con))
    out.append(
        _stage("ref.compute", "DuckDB reference: compute (whole month, 2 threads)", wall, rows, cpu=cpu, runs=runs)
    )
    with session_scope() as s:
        ours = stored_claims(s)
    con.register("_ours", ours.to_arrow())
    con.execute("CREATE TABLE ours AS SELECT * FROM _ours")
    bad = mismatches(con)
    lines: int = _scalar(con, "SELECT count(*) FROM ref_claims")
    total: int = _scalar(con, "SELECT sum(payable_fen) FROM ref_claims")
    print(
        f"claim lines: ours {ours.height:,}, reference {lines:,}; payable {total / 100:,.2f} yuan; "
        f"mismatches {bad.height}",
        file=sys.stderr,
    )
    fail_on_mismatch(bad, max(ours.height, lines), "the DuckDB reference")
    excluded = {r: int(ours[x].sum()) for r, x in zip(REASONS, EXCLUDED, strict=True)}
    out.append(
        _stage("ref.match", "claim lines equal to the reference, every column", 0, ours.height, excluded=excluded)
    )
    return out


def _e2e_once(conn: Any) -> tuple[list[float], int, int]:
    """One end-to-end run into an empty scratch table: the read, compute, write and total seconds, the care-day rows
    read and the claim lines written."""
    con = duckdb_connect()
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {SCRATCH}")
        for ddl in SCRATCH_DDL.split(";"):
            cur.execute(ddl)
    conn.commit()
    t0 = time.perf_counter()
    with conn.cursor() as cur:
        rows = load_from_postgresql(con, cur)
        t1 = time.perf_counter()
        compute_reference(con)
        t2 = time.perf_counter()
        written: int = cur.adbc_ingest(SCRATCH, con.sql(WRITE_SQL).to_arrow_table(), mode="append")
    conn.commit()
    t3 = time.perf_counter()
    con.close()
    return [t1 - t0, t2 - t1, t3 - t2, t3 - t0], rows, written


def stage_e2e(repeat: int) -> list[dict[str, Any]]:
    """DuckDB over PostgreSQL: read the month's inputs (ADBC: binary COPY into Arrow, into native tables), compute,
    write the claim lines (ADBC ingest: binary COPY) into a table with claim_line's columns and indexes, commit.
    `repeat` times; the fastest run counts. The claim lines written must equal ours."""
    import adbc_driver_postgresql.dbapi as adbc

    from tasks.records import apply_read_settings

    with adbc.connect(pg_uri()) as conn:
        apply_read_settings(conn)  # the planner settings of our own reads (no JIT): the same footing
        conn.commit()
        runs = [_e2e_once(conn) for _ in range(max(repeat, 1))]
        (read, compute, write, total), rows, written = min(runs, key=lambda r: r[0][3])
        with conn.cursor() as cur:
            differs = " OR ".join(f"d.{c} IS DISTINCT FROM o.{c}" for c in CLAIM_COLUMNS)
            differs += " OR d.exclusions::jsonb IS DISTINCT FROM o.exclusions::jsonb"
            cur.execute(
                f"""SELECT count(*) FROM {SCRATCH} d
                    FULL JOIN (SELECT * FROM claim_line WHERE period = '{PERIOD}' AND jurisdiction = '{JURISDICTION}') o
                      USING (person_id, provider_id, period, care_mode)
                    WHERE d.id IS NULL OR o.id IS NULL OR {differs}"""
            )
            row = cur.fetchone()
            bad = row[0] if row else -1
            cur.execute(f"DROP TABLE {SCRATCH}")
        conn.commit()
    if bad:
        print(f"\nFAILED: {bad:,} claim lines written by DuckDB over PostgreSQL differ from ours", file=sys.stderr)
        sys.exit(3)
    totals = [round(r[0][3], 3) for r in runs]
    return [
        _stage("e2e.read", "DuckDB over PostgreSQL: read (ADBC, binary COPY)", read, rows),
        _stage("e2e.compute", "DuckDB over PostgreSQL: compute", compute, rows),
        _stage("e2e.write", "DuckDB over PostgreSQL: write (ADBC ingest) + commit", write, written),
        _stage("e2e.total", "DuckDB over PostgreSQL: end to end", total, rows, runs=totals),
    ]


# --- the run ----------------------------------------------------------------------------------------------------


def _database(backend: str, workdir: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'bench.db'}"
    import psycopg

    name = f"ltc_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def _drop_database(url: str) -> None:
    if "/ltc_bench_" not in url:
        return
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def run(
    n: int, backend: str, workdir: Path, stages: list[str], repeat: int, raw_copy: bool = True
) -> list[dict[str, Any]]:
    """One benchmark run in a database of its own, each stage in a process of its own."""
    workdir.mkdir(parents=True, exist_ok=True)
    url = _database(backend, workdir)
    env = dict(os.environ, LTC_HOME=str(workdir), LTC_DATABASE_URL=url)
    results: list[dict[str, Any]] = []
    try:
        for stage in stages:
            cmd = [sys.executable, __file__, "--stage", stage, "--n", str(n), "--backend", backend]
            cmd += ["--workdir", str(workdir), "--raw-copy", str(int(raw_copy)), "--repeat", str(repeat)]
            print(f"[{time.strftime('%H:%M:%S')}] N = {n:,}: {stage}", file=sys.stderr, flush=True)
            done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
            if done.returncode:
                raise SystemExit(f"stage {stage} failed ({done.returncode}) at N = {n:,}")
            rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
            results.extend(r | {"process": stage} for r in rows)
    finally:
        _drop_database(url)
    return results


def _fmt_s(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f} s"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _verdict(value: float | None, target: float, at_most: bool = True) -> str:
    if value is None:
        return "n/a"
    return "met" if (value <= target if at_most else value >= target) else "**not met**"


def summary(n: int, small_n: int, backend: str, results: list[dict[str, Any]]) -> str:
    """The markdown summary: each ratio against the issue's targets, the parts of bill_month against the end-to-end
    run's, peak RSS by stage, and the per-part profile."""
    by = {r["key"]: r for r in results if r["key"] != "part"}
    sec: dict[str, float | None] = {k: r["seconds"] for k, r in by.items()}

    def get(k: str) -> float | None:
        return sec.get(k)

    def cpu(k: str) -> float | None:
        value = by.get(k, {}).get("cpu")
        return None if value is None else float(value)

    peak: dict[str, float] = {}
    for r in results:
        peak[r["process"]] = max(peak.get(r["process"], 0.0), r["rss_mb"])
    days = by["bill"]["rows"]
    per_day = (get("bill") or 0) / days * 1e6
    small = by.get("small.bill")
    per_day_small = small["seconds"] / small["rows"] * 1e6 if small else None
    load_rate = by["load"]["rows"] / by["load"]["seconds"]
    copy_rate = by["raw_copy"]["rows"] / by["raw_copy"]["seconds"] if "raw_copy" in by else None
    overhead = _ratio(get("prefect_overhead"), get("bill"))
    compute_ratio = _ratio(get("ours.compute"), get("ref.compute"))
    pairs_ratio = _ratio(get("ours.compute_pairs"), get("ref.compute"))
    flow_compute_ratio = _ratio(get("bill.compute"), get("ref.compute"))
    e2e_ratio = _ratio(get("bill"), get("e2e.total"))
    linear = _ratio(per_day, per_day_small)
    load_ratio = _ratio(load_rate, copy_rate)
    rss_ours = max(peak.get("load", 0.0), peak.get("bill", 0.0))
    mib = 1024 * 1024
    loads = [r["loadavg"] for r in results]

    lines = [
        f"N = {n:,} beneficiaries on {backend}, {days:,} care days; smaller N = {small_n:,}; "
        f"1-minute load average during the stages {min(loads):.1f}-{max(loads):.1f} (2 cores)",
        "",
        "| measure | ours | DuckDB | ratio | target | |",
        "|---|---|---|---|---|---|",
        f"| compute, ours on the same frames vs the DuckDB reference | {_fmt_s(get('ours.compute'))} | "
        f"{_fmt_s(get('ref.compute'))} | {_x(compute_ratio)} | ≤ {TARGET_COMPUTE}× | "
        f"{_verdict(compute_ratio, TARGET_COMPUTE)} |",
        f"| (the same, CPU seconds) | {_fmt_s(cpu('ours.compute'))} | {_fmt_s(cpu('ref.compute'))} | "
        f"{_x(_ratio(cpu('ours.compute'), cpu('ref.compute')))} | | |",
        f"| compute, two parts at a time on two threads (as bill_month runs them) | "
        f"{_fmt_s(get('ours.compute_pairs'))} | {_fmt_s(get('ref.compute'))} | {_x(pairs_ratio)} | "
        f"≤ {TARGET_COMPUTE}× | {_verdict(pairs_ratio, TARGET_COMPUTE)} |",
        f"| (compute inside bill_month, summed over parts) | {_fmt_s(get('bill.compute'))} | "
        f"{_fmt_s(get('ref.compute'))} | {_x(flow_compute_ratio)} | | |",
        f"| bill_month vs DuckDB over PostgreSQL, end to end | {_fmt_s(get('bill'))} | {_fmt_s(get('e2e.total'))} | "
        f"{_x(e2e_ratio)} | ≤ {TARGET_END_TO_END}× | {_verdict(e2e_ratio, TARGET_END_TO_END)} |",
        f"| peak RSS, loading and billing | load {peak.get('load', 0) / GIB_MB:.2f} GiB, billing "
        f"{peak.get('bill', 0) / GIB_MB:.2f} GiB | | | ≤ 2 GiB | {_verdict(rss_ours, TARGET_RSS_MB)} |",
        f"| Prefect overhead (flow wall − task wall) | {_fmt_s(get('prefect_overhead'))} of {_fmt_s(get('bill'))} | "
        f"| {_pct(overhead)} | ≤ {TARGET_PREFECT:.0%} | {_verdict(overhead, TARGET_PREFECT)} |",
        f"| bill_month per care day, N vs smaller N | {per_day:.3f} µs | "
        f"{'n/a' if per_day_small is None else f'{per_day_small:.3f} µs'} | {_x(linear)} | ≤ {TARGET_LINEAR}× | "
        f"{_verdict(linear, TARGET_LINEAR)} |",
        f"| load + validate vs raw COPY into the indexed table | {load_rate / 1000:,.0f}k rows/s | "
        f"{'n/a' if copy_rate is None else f'{copy_rate / 1000:,.0f}k rows/s'} | {_x(load_ratio)} | "
        f"≥ {TARGET_LOAD}× | {_verdict(load_ratio, TARGET_LOAD, at_most=False)} |",
        "",
        "| part of the work | bill_month (sum over parts) | ours outside Prefect (one part at a time) | "
        "DuckDB over PostgreSQL | bill_month / DuckDB |",
        "|---|---|---|---|---|",
    ]
    for part in ("read", "compute", "checks", "write"):
        e2e = get(f"e2e.{part}")
        lines.append(
            f"| {part} | {_fmt_s(get(f'bill.{part}'))} | {_fmt_s(get(f'ours.{part}'))} | {_fmt_s(e2e)} | "
            f"{_x(_ratio(get(f'bill.{part}'), e2e))} |"
        )
    lines.append(f"| whole (wall) | {_fmt_s(get('bill'))} | | {_fmt_s(get('e2e.total'))} | {_x(e2e_ratio)} |")
    lines += ["", "| stage (own process) | peak RSS |", "|---|---|"]
    lines += [f"| {proc} | {mb / GIB_MB:.2f} GiB ({mb * mib / 1e9:.2f} GB) |" for proc, mb in peak.items()]
    parts = [r for r in results if r["key"] == "part"]
    if parts:
        steps = list(parts[0]["steps"])
        lines += ["", "| part | care days | " + " | ".join(steps) + " |", "|---" * (len(steps) + 2) + "|"]
        for r in parts:
            cells = " | ".join(f"{r['steps'][k]:.2f}" for k in steps)
            lines.append(f"| {r['stage']} | {r['rows']:,} | {cells} |")
    return "\n".join(lines)


def _x(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.2f}×"


def _pct(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.1%}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000, help="beneficiaries")
    ap.add_argument("--small-n", type=int, help="beneficiaries of the second, smaller month (default N / 10; 0: none)")
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--json", help="also write every stage's figures to this file")
    ap.add_argument(
        "--stage", choices=["setup", "load", "bill", "ours", "pairs", "reference", "e2e"], help=argparse.SUPPRESS
    )
    ap.add_argument(
        "--only",
        help="only these stages of the main run besides setup, load and bill, comma-separated: ours,pairs,reference",
    )
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    ap.add_argument("--raw-copy", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of bill_month, of each compute and of the end-to-end run; the fastest counts (default 3)",
    )
    args = ap.parse_args()
    if args.stage:
        workdir = Path(args.workdir)
        stages: dict[str, Callable[[], list[dict[str, Any]]]] = {
            "setup": lambda: stage_setup(args.n, workdir),
            "load": lambda: stage_load(workdir, args.backend, bool(args.raw_copy)),
            "bill": lambda: stage_bill(args.repeat),
            "ours": lambda: stage_ours(args.repeat),
            "pairs": lambda: stage_pairs(args.repeat),
            "reference": lambda: stage_reference(args.backend, args.repeat),
            "e2e": lambda: stage_e2e(args.repeat),
        }
        for row in stages[args.stage]():
            print(json.dumps(row), flush=True)
        return
    small_n = args.n // 10 if args.small_n is None else args.small_n
    main_stages = ["setup", "load", "bill", "ours", "pairs", "reference"] + (
        ["e2e"] if args.backend == "postgresql" else []
    )
    if args.only:
        main_stages = ["setup", "load", "bill", *(x for x in main_stages[3:] if x in args.only.split(","))]
    with tempfile.TemporaryDirectory(dir=os.environ.get("LTC_BENCH_DIR")) as d:
        results = run(args.n, args.backend, Path(d) / "main", main_stages, args.repeat)
        if small_n:
            smaller = run(
                small_n, args.backend, Path(d) / "small", ["setup", "load", "bill"], args.repeat, raw_copy=False
            )
            results += [
                r | {"key": f"small.{r['key']}", "process": f"{r['process']} (N = {small_n:,})"} for r in smaller
            ]
    print(f"\nN = {args.n:,} beneficiaries on {args.backend}")
    print(f"{'stage':64} {'seconds':>9} {'rows/s':>12} {'peak RSS MiB':>13} {'load avg':>9}")
    for r in results:
        if r["key"] in ("part", "ours.steps"):
            continue
        rate = r["rows"] / r["seconds"] if r["seconds"] else 0
        print(f"{r['stage'][:64]:64} {r['seconds']:9.2f} {rate:12,.0f} {r['rss_mb']:13.0f} {r['loadavg']:9.2f}")
    print()
    print(summary(args.n, small_n, args.backend, results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
