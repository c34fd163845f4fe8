"""What-if replay: a range of months billed again on the record under the pack in force and under a variant.

Each part of whole persons is read as `bill_month` reads it (`tasks.billing.read_inputs`: the same partitions, the
same frames) and computed by the same billing code (`tasks.billing.claims_under`) twice: under the pack in force and
under the variant. Nothing is written to the record: a part returns small frames (changed lines, sums by month, care
mode and grade, each person's totals, the dues by payer), which the flow puts together into the scenario result.

What the fund already paid earlier in the year (`ytd`, on which annual caps rest) is the record's for the pack in
force; under the variant it is the record's plus what the variant changed in the months of the range before.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import and_, func, or_, select

from common.settings import get_settings
from rules import packinfo
from rules.engine import RulesError, half_up, period_bounds
from rules.inputs import CLAIM_FIGURES
from rules.projection import Baseline, load_assumptions, project, run_out_year, sensitivity
from rules.variants import Change, Variant, load_variant
from storage import models as m
from storage.db import session_scope
from tasks import records
from tasks.billing import claims_under, read_inputs
from tasks.contributions import dues_under
from tasks.eligibility import decide_under
from tasks.records import Part
from tasks.retrying import RETRY_TRANSIENT
from tasks.whatif_report import write_report

KEYS = ["person_id", "provider_id", "care_mode"]
SCENARIOS = ("in_force", "variant")
FIGURES = list(CLAIM_FIGURES)


def months_between(start: str, end: str) -> list[str]:
    """The months from `start` to `end`, both included (YYYY-MM)."""
    first, _ = period_bounds(start)
    last, _ = period_bounds(end)
    if last < first:
        raise RulesError(f"the range {start}..{end} ends before it starts")
    out = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        out.append(f"{year}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def contribution_periods(jurisdiction: str, months: list[str]) -> list[str]:
    """The contribution periods the months fall in: the months themselves, the years, or both, as the pack says."""
    kinds = packinfo.periods(jurisdiction) or ("month",)
    out: list[str] = []
    if "year" in kinds:
        out += sorted({p[:4] for p in months})
    if "month" in kinds:
        out += months
    return out


@task(cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def plan_replay(variant: Variant, months: list[str], persons_per_part: int) -> list[Part]:
    """The parts of whole persons the range is replayed in; every month must be within the pack's validity."""
    for period in months:
        variant.in_force.check_period(period)
    with session_scope() as s:
        return records.parts(s, variant.jurisdiction, persons_per_part)


@task(
    cache_policy=NO_CACHE,
    **RETRY_TRANSIENT,
    task_run_name="whatif {variant.jurisdiction} persons {part[0]}..{part[1]}",
)
def replay_part(
    variant: Variant, months: list[str], part: Part, eligibility: pl.DataFrame | None = None
) -> dict[str, pl.DataFrame]:
    """One part's months under both packs, and the record's lines of those months beside them. `eligibility`: the
    decisions the variant would make otherwise (`replay_eligibility`), which change the variant's entitlements."""
    jurisdiction = variant.jurisdiction
    lines, sums, counts, persons, record = [], [], [], [], []
    # What the fund was billed earlier in the year (`ytd`) is the record's, as billing reads it; under the pack in
    # force, plus what the replay gives in the range's earlier months not billed yet; under the variant, plus what
    # the variant changed in the range's earlier months too.
    carry = pl.DataFrame(schema={"person_id": pl.Utf8, "care_mode": pl.Utf8, "delta_fen": pl.Int64})
    unbilled = carry
    with session_scope() as s, records.arrow_reads(s):
        for period in months:
            if period.endswith("-01"):
                carry, unbilled = carry.clear(), unbilled.clear()
            inputs = read_inputs(s, jurisdiction, period, part)
            ytd = _with_carry(inputs["ytd"], unbilled)
            before = claims_under(variant.in_force, {**inputs, "ytd": ytd}, period).select(*KEYS, *FIGURES)
            entitled = variant_entitlements(inputs["entitlements"], eligibility, part)
            ytd = _with_carry(ytd, carry)
            varied = {**inputs, "ytd": ytd, "entitlements": entitled}
            after = claims_under(variant.pack, varied, period).select(*KEYS, *FIGURES)
            del inputs
            both = _side_by_side(before, after)
            carry = _add_carry(carry, both, "in_force", "variant")
            summary, against = _against_record(s, jurisdiction, period, part, before)
            record.append(summary)
            if not summary["record_lines"][0]:  # a month billed is the record's, as billing would read it
                unbilled = _add_carry(unbilled, against, "record", "in_force")
            lines.append(both.filter(_differs("in_force", "variant")).with_columns(period=pl.lit(period)))
            sums.append(_sums(both, period))
            counts.append(_counts(both, period))
            persons.append(both.select("person_id", *(f"{sc}_payable_fen" for sc in SCENARIOS)))
        dues, insured = _dues(s, variant, months, part)
    return {
        "lines": pl.concat(lines, how="vertical_relaxed") if lines else pl.DataFrame(),
        "sums": pl.concat(sums),
        "counts": pl.concat(counts),
        "insured": insured,
        "persons": pl.concat(persons).group_by("person_id").agg(pl.all().sum()),
        "record": pl.concat(record),
        "dues": dues,
    }


DECISION = {"approved": pl.Boolean, "grade": pl.Int64, "start_date": pl.Date, "end_date": pl.Date}
DECISION_KEY = ["application_id", "assessment_sequence"]
ELIGIBILITY = {
    "application_id": pl.Utf8,
    "assessment_sequence": pl.Int64,
    "person_id": pl.Utf8,
    **{f"{sc}_{c}": t for sc in SCENARIOS for c, t in DECISION.items()},
    "change": pl.Utf8,
}


@task(cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def replay_eligibility(variant: Variant) -> pl.DataFrame:
    """Every decision on the record made again under both packs: the decisions that would differ, with each."""
    with session_scope() as s:
        apps = records.decided_applications(s, variant.jurisdiction)
        contributions = records.contributions(s, variant.jurisdiction)
    found = [pl.DataFrame(schema=ELIGIBILITY)]
    # An application assessed again has a decision per assessment: each is made again on its own.
    for (_,), group in apps.group_by("assessment_sequence", maintain_order=True):
        inputs = {"apps": group, "contributions": contributions}
        a = decide_under(variant.in_force, inputs).select(*DECISION_KEY, "person_id", *DECISION)
        b = decide_under(variant.pack, inputs).select(*DECISION_KEY, *DECISION)
        both = a.rename({c: f"in_force_{c}" for c in DECISION}).join(
            b.rename({c: f"variant_{c}" for c in DECISION}), on=DECISION_KEY, how="left"
        )
        differs = pl.lit(False)
        for c in DECISION:
            differs = differs | pl.col(f"in_force_{c}").ne_missing(pl.col(f"variant_{c}"))
        found.append(
            both.filter(differs)
            .with_columns(
                change=pl.when(pl.col("in_force_approved") & ~pl.col("variant_approved"))
                .then(pl.lit("eligibility_lose"))
                .when(~pl.col("in_force_approved") & pl.col("variant_approved"))
                .then(pl.lit("eligibility_gain"))
                .otherwise(pl.lit("eligibility_changed"))
            )
            .select(list(ELIGIBILITY))
            .cast(pl.Schema(ELIGIBILITY))
        )
    return pl.concat(found).sort(DECISION_KEY)


def variant_entitlements(entitlements: pl.DataFrame, changes: pl.DataFrame | None, part: Part) -> pl.DataFrame:
    """The record's entitlements as the variant's decisions would have made them: an approval the variant refuses
    is gone, one it would grant is added, one it grants otherwise (grade, start) takes the variant's terms. A
    decision is matched to its entitlement by person and start date."""
    if changes is None or changes.is_empty():
        return entitlements
    lo, hi = part
    mine = changes.filter(
        (pl.lit(True) if lo is None else pl.col("person_id") >= lo)
        & (pl.lit(True) if hi is None else pl.col("person_id") < hi)
    )
    cols = list(entitlements.columns)
    old = mine.filter(pl.col("in_force_approved")).select(
        "person_id", pl.col("in_force_start_date").alias("start_date")
    )
    kept = entitlements.join(old, on=["person_id", "start_date"], how="anti")
    replaced = entitlements.join(
        mine.filter(pl.col("in_force_approved") & pl.col("variant_approved")).select(
            "person_id",
            pl.col("in_force_start_date").alias("start_date"),
            "variant_grade",
            "variant_start_date",
        ),
        on=["person_id", "start_date"],
        how="inner",
    ).select(
        "person_id",
        pl.col("variant_grade").alias("grade"),
        pl.col("variant_start_date").alias("start_date"),
        "end_date",
    )
    granted = mine.filter(~pl.col("in_force_approved") & pl.col("variant_approved")).select(
        "person_id",
        pl.col("variant_grade").alias("grade"),
        pl.col("variant_start_date").alias("start_date"),
        pl.col("variant_end_date").alias("end_date"),
    )
    schema = entitlements.schema
    return pl.concat([kept.select(cols), replaced.select(cols).cast(schema), granted.select(cols).cast(schema)])


def _side_by_side(x: pl.DataFrame, y: pl.DataFrame, a: str = "in_force", b: str = "variant") -> pl.DataFrame:
    """One row per claim line of either frame, its figures under each, prefixed `a_` and `b_` (0 where a frame has
    no such line, and `a_present` / `b_present` saying which)."""
    left = x.rename({c: f"{a}_{c}" for c in FIGURES}).with_columns(pl.lit(True).alias(f"{a}_present"))
    right = y.rename({c: f"{b}_{c}" for c in FIGURES}).with_columns(pl.lit(True).alias(f"{b}_present"))
    out = left.join(right, on=KEYS, how="full", coalesce=True)
    return out.with_columns(
        *(pl.col(f"{sc}_{c}").fill_null(0) for sc in (a, b) for c in FIGURES if c != "grade"),
        *(pl.col(f"{sc}_present").fill_null(False) for sc in (a, b)),
    )


def _differs(a: str, b: str) -> pl.Expr:
    """A line whose figures differ between two sets of columns (or that one of them lacks)."""
    expr = pl.col(f"{a}_present") != pl.col(f"{b}_present")
    for c in FIGURES:
        expr = expr | pl.col(f"{a}_{c}").ne_missing(pl.col(f"{b}_{c}"))
    return expr


def _with_carry(ytd: pl.DataFrame, carry: pl.DataFrame) -> pl.DataFrame:
    if carry.is_empty():
        return ytd
    return (
        ytd.join(carry, on=["person_id", "care_mode"], how="full", coalesce=True)
        .select(
            "person_id",
            "care_mode",
            (pl.col("payable_fen").fill_null(0) + pl.col("delta_fen").fill_null(0)).alias("payable_fen"),
        )
        .cast(pl.Schema(ytd.schema))
    )


def _add_carry(carry: pl.DataFrame, both: pl.DataFrame, a: str, b: str) -> pl.DataFrame:
    """What `b` changed of each person's payable in a care mode against `a`, added to the year's earlier changes."""
    month = (
        both.group_by("person_id", "care_mode")
        .agg((pl.col(f"{b}_payable_fen") - pl.col(f"{a}_payable_fen")).sum().alias("delta_fen"))
        .filter(pl.col("delta_fen") != 0)
    )
    if month.is_empty():
        return carry
    return pl.concat([carry, month]).group_by("person_id", "care_mode").agg(pl.col("delta_fen").sum())


def _sums(both: pl.DataFrame, period: str) -> pl.DataFrame:
    """Fen and lines by care mode and grade (the line's grade under each scenario)."""
    out = []
    for sc in SCENARIOS:
        out.append(
            both.filter(pl.col(f"{sc}_present"))
            .group_by("care_mode", pl.col(f"{sc}_grade").alias("grade"))
            .agg(pl.col(f"{sc}_payable_fen").sum().alias("fen"), pl.len().alias("lines"))
            .with_columns(scenario=pl.lit(sc), period=pl.lit(period))
        )
    return pl.concat(out).cast({"lines": pl.Int64, "fen": pl.Int64, "grade": pl.Int64})


def _counts(both: pl.DataFrame, period: str) -> pl.DataFrame:
    """Beneficiaries (persons paid something) in the month, in all and by grade (grade null: all grades)."""
    out = []
    for sc in SCENARIOS:
        paid = both.filter(pl.col(f"{sc}_payable_fen") > 0)
        by_grade = paid.group_by(pl.col(f"{sc}_grade").alias("grade")).agg(
            pl.col("person_id").n_unique().alias("beneficiaries")
        )
        total = pl.DataFrame({"grade": [None], "beneficiaries": [paid["person_id"].n_unique()]})
        out.append(
            pl.concat([by_grade.cast({"grade": pl.Int64}), total.cast({"grade": pl.Int64})], how="vertical_relaxed")
            .with_columns(scenario=pl.lit(sc), period=pl.lit(period))
            .cast({"beneficiaries": pl.Int64})
        )
    return pl.concat(out)


RECORD_FIGURES = {**dict.fromkeys(KEYS, pl.Utf8), **dict.fromkeys(FIGURES, pl.Int64)}


def _against_record(
    s: Any, jurisdiction: str, period: str, part: Part, before: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The month's lines on the record beside the replay under the pack in force: lines, fen, and how many lines
    differ in any figure (none, when nothing billed has changed since the month was billed); and the lines side by
    side."""
    cl = m.ClaimLine
    stmt = select(*(getattr(cl, c) for c in RECORD_FIGURES)).where(
        cl.period == period, cl.jurisdiction == jurisdiction, records.in_part(cl.person_id, part)
    )
    rec = records.frame(s, stmt, RECORD_FIGURES, committed=True)
    both = _side_by_side(rec, before, "record", "in_force")
    summary = pl.DataFrame(
        {
            "period": [period],
            "record_lines": [rec.height],
            "record_fen": [int(rec["payable_fen"].sum())],
            "in_force_lines": [before.height],
            "in_force_fen": [int(before["payable_fen"].sum())],
            "lines_differing": [both.filter(_differs("record", "in_force")).height],
        }
    )
    return summary, both


DUES = {"payer": pl.Utf8, "fen": pl.Int64, "period": pl.Utf8, "scenario": pl.Utf8}
INSURED = {"period": pl.Utf8, "scenario": pl.Utf8, "insured": pl.Int64}


def _dues(s: Any, variant: Variant, months: list[str], part: Part) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The dues of the part's insured persons for each contribution period the months fall in, by payer, under both
    packs; and the persons who owe, in each period."""
    persons = records.persons(s, variant.jurisdiction, part)
    dues, insured = [pl.DataFrame(schema=DUES)], [pl.DataFrame(schema=INSURED)]
    for period in contribution_periods(variant.jurisdiction, months):
        for sc, pack in zip(SCENARIOS, (variant.in_force, variant.pack), strict=True):
            due = dues_under(pack, persons, period)
            dues.append(
                due.group_by("payer")
                .agg(pl.col("amount_fen").sum().alias("fen"))
                .with_columns(period=pl.lit(period), scenario=pl.lit(sc))
                .cast(pl.Schema(DUES))
            )
            owing = due.filter(pl.col("amount_fen") > 0)["person_id"].n_unique()
            insured.append(pl.DataFrame({"period": [period], "scenario": [sc], "insured": [owing]}, schema=INSURED))
    return pl.concat(dues), pl.concat(insured)


def opening_balance(jurisdiction: str, before: str) -> int:
    """The fund's balance on the record before the month `before`: contributions paid, less benefits billed and
    their adjustments, less assessment fees the fund bore (as the fund report counts it)."""
    first, _ = period_bounds(before)
    persons = select(m.Person.person_id).where(m.Person.jurisdiction == jurisdiction)
    c, cl, adj = m.Contribution, m.ClaimLine, m.ClaimAdjustment
    with session_scope() as s:
        paid = s.scalar(
            select(func.coalesce(func.sum(c.paid_fen), 0)).where(
                c.person_id.in_(persons),
                or_(
                    and_(func.length(c.period) == 7, c.period < before),
                    and_(func.length(c.period) == 4, c.period < before[:4]),
                ),
            )
        )
        billed = s.scalar(
            select(func.coalesce(func.sum(cl.payable_fen), 0)).where(
                cl.jurisdiction == jurisdiction, cl.period < before
            )
        )
        adjusted = s.scalar(
            select(func.coalesce(func.sum(adj.delta_fen), 0)).where(
                adj.jurisdiction == jurisdiction, adj.period < before
            )
        )
        fees = s.scalar(
            select(func.coalesce(func.sum(m.Assessment.fee_fund_fen), 0))
            .join(m.Application, m.Application.application_id == m.Assessment.application_id)
            .where(m.Application.person_id.in_(persons), m.Assessment.visited_on < first)
        )
    return int(paid or 0) - int(billed or 0) - int(adjusted or 0) - int(fees or 0)


def last_closed(jurisdiction: str) -> str | None:
    """The last month billed on the record."""
    with session_scope() as s:
        value = s.scalar(select(func.max(m.ClaimLine.period)).where(m.ClaimLine.jurisdiction == jurisdiction))
    return str(value) if value else None


def _pivot(frame: pl.DataFrame, on: list[str], value: str) -> pl.DataFrame:
    """`frame` (with a `scenario` column) summed by `on`, a column per scenario and the difference."""
    if frame.is_empty():
        return pl.DataFrame(schema={**{c: frame.schema[c] for c in on}, **dict.fromkeys(_pair(value), pl.Int64)})
    summed = frame.group_by(*on, "scenario").agg(pl.col(value).sum())
    wide = summed.pivot(on="scenario", index=on, values=value)
    for sc in SCENARIOS:
        if sc not in wide.columns:
            wide = wide.with_columns(pl.lit(0, dtype=pl.Int64).alias(sc))
    a, b, d = _pair(value)
    return (
        wide.select(*on, pl.col("in_force").fill_null(0).alias(a), pl.col("variant").fill_null(0).alias(b))
        .with_columns((pl.col(b) - pl.col(a)).alias(d))
        .sort(on, nulls_last=True)
    )


def _pair(value: str) -> tuple[str, str, str]:
    suffix = "_fen" if value == "fen" else f"_{value}"
    return f"in_force{suffix}", f"variant{suffix}", f"diff{suffix}"


CHANGES = ("gain", "lose", "more", "less", "eligibility_gain", "eligibility_lose", "eligibility_changed")


def persons_affected(persons: pl.DataFrame, decisions: pl.DataFrame | None = None) -> pl.DataFrame:
    """Each person whose benefits in the range differ: gain (none under the pack in force), lose (none under the
    variant), more or less; and each whose eligibility the variant would decide otherwise, though their benefits in
    the range do not change (eligibility_gain, eligibility_lose, eligibility_changed)."""
    a, b = pl.col("in_force_payable_fen"), pl.col("variant_payable_fen")
    money = persons.filter(a != b).select(
        "person_id",
        a.alias("in_force_fen"),
        b.alias("variant_fen"),
        (b - a).alias("diff_fen"),
        pl.when(a == 0)
        .then(pl.lit("gain"))
        .when(b == 0)
        .then(pl.lit("lose"))
        .when(b > a)
        .then(pl.lit("more"))
        .otherwise(pl.lit("less"))
        .alias("change"),
    )
    if decisions is None or decisions.is_empty():
        return money.sort("person_id")
    others = (
        decisions.join(money, on="person_id", how="anti")
        .group_by("person_id")
        .agg(pl.col("change").first())
        .join(persons, on="person_id", how="left")
        .select(
            "person_id",
            a.fill_null(0).alias("in_force_fen"),
            b.fill_null(0).alias("variant_fen"),
            pl.lit(0, dtype=pl.Int64).alias("diff_fen"),
            "change",
        )
    )
    return pl.concat([money, others.cast(money.schema)]).sort("person_id")


def monthly_contributions(dues: pl.DataFrame, months: list[str]) -> pl.DataFrame:
    """Dues by month and scenario: a yearly period's dues spread over its twelve months (as the fund report does)."""
    monthly = dues.filter(pl.col("period").str.len_chars() == 7).group_by("period", "scenario").agg(pl.col("fen").sum())
    yearly = dues.filter(pl.col("period").str.len_chars() == 4).group_by("period", "scenario").agg(pl.col("fen").sum())
    spread = [
        pl.DataFrame({"period": [mo], "scenario": [sc], "fen": [fen // 12]}, schema=DUES_BY_MONTH)
        for year, sc, fen in yearly.iter_rows()
        for mo in months
        if mo[:4] == year
    ]
    frame = pl.concat([monthly.cast(pl.Schema(DUES_BY_MONTH)), *spread])
    return frame.group_by("period", "scenario").agg(pl.col("fen").sum())


DUES_BY_MONTH = {"period": pl.Utf8, "scenario": pl.Utf8, "fen": pl.Int64}
RESERVE_MONTHS = 3
"""Months of reserve: the balance over the mean benefits of the last three months, as the fund report counts it."""


def assemble(
    variant: Variant,
    months: list[str],
    done: list[dict[str, pl.DataFrame]],
    opening_fen: int,
    decisions: pl.DataFrame | None = None,
) -> dict[str, Any]:
    """The scenario's tables from the parts' frames: lines that differ, sums by month, care mode and grade, persons
    affected, contributions by payer, the fund's balance and months of reserve under each scenario, the cost per
    year, and the replay under the pack in force beside the record."""
    sums = pl.concat([d["sums"] for d in done])
    counts = pl.concat([d["counts"] for d in done])
    dues = pl.concat([d["dues"] for d in done])
    record = pl.concat([d["record"] for d in done]).group_by("period").agg(pl.all().sum()).sort("period")
    by_mode_grade = _pivot(sums, ["period", "care_mode", "grade"], "fen")
    benefits = _pivot(sums, ["period"], "fen")
    paid = _pivot(counts.filter(pl.col("grade").is_null()), ["period"], "beneficiaries")
    income = _pivot(monthly_contributions(dues, months), ["period"], "fen").rename(
        {"in_force_fen": "in_force_contributions_fen", "variant_fen": "variant_contributions_fen"}
    )
    frame = pl.DataFrame({"period": months})
    for part in (benefits, paid.drop("diff_beneficiaries"), income.drop("diff_fen")):
        frame = frame.join(part, on="period", how="left")
    frame = frame.fill_null(0)
    for sc in SCENARIOS:
        net = pl.col(f"{sc}_contributions_fen") - pl.col(f"{sc}_fen")
        recent = pl.col(f"{sc}_fen").rolling_mean(RESERVE_MONTHS, min_samples=1)
        frame = frame.with_columns((opening_fen + net.cum_sum()).alias(f"{sc}_balance_fen")).with_columns(
            pl.when(recent > 0)
            .then(pl.col(f"{sc}_balance_fen") / recent)
            .otherwise(None)
            .cast(pl.Float64)
            .alias(f"{sc}_reserve_months")
        )
    lines = pl.concat([d["lines"] for d in done if d["lines"].width], how="vertical_relaxed") if done else None
    persons = persons_affected(pl.concat([d["persons"] for d in done]), decisions)
    years = benefits.group_by(pl.col("period").str.slice(0, 4).alias("year")).agg(pl.exclude("period").sum())
    return {
        "months": frame,
        "by_mode_grade": by_mode_grade,
        "contributions": _pivot(dues, ["payer"], "fen"),
        "persons": persons,
        "years": years.sort("year"),
        "lines": lines if lines is not None else pl.DataFrame(),
        "record": record,
        "eligibility": decisions if decisions is not None else pl.DataFrame(),
        "counts": counts,
        "insured": pl.concat([d["insured"] for d in done]).group_by("period", "scenario").agg(pl.col("insured").sum()),
        "opening_balance_fen": opening_fen,
    }


@task(cache_policy=NO_CACHE)
def load_scenario_variant(variant_file: str, jurisdiction: str) -> Variant:
    return load_variant(Path(variant_file), jurisdiction)


@task(cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def scenario_opening(jurisdiction: str, start: str) -> int:
    return opening_balance(jurisdiction, start)


PROJECTION_MONTHS = 12
"""The projection starts from the last twelve months of the range (or all of them, if fewer), made a year."""


def baseline(result: dict[str, Any], scenario: str, months: list[str]) -> Baseline:
    """One scenario's year at the end of `months` (its last twelve, or all, made a year): insured persons,
    contributions, beneficiaries and a year's benefits per beneficiary by grade, and the closing balance."""
    last = months[-PROJECTION_MONTHS:]
    scale = (PROJECTION_MONTHS, len(last))
    frame = result["months"].filter(pl.col("period").is_in(last))
    sums = result["by_mode_grade"].filter(pl.col("period").is_in(last) & pl.col("grade").is_not_null())
    counts = result["counts"].filter(
        pl.col("period").is_in(last) & pl.col("grade").is_not_null() & (pl.col("scenario") == scenario)
    )
    fen = dict(sums.group_by("grade").agg(pl.col(f"{scenario}_fen").sum()).iter_rows())
    persons = dict(counts.group_by("grade").agg(pl.col("beneficiaries").sum()).iter_rows())
    beneficiaries = {int(g): half_up(int(n), len(last)) for g, n in persons.items() if n}
    per_person = {
        g: half_up(int(fen.get(g, 0)) * scale[0], scale[1] * beneficiaries[g]) if beneficiaries[g] else 0
        for g in beneficiaries
    }
    insured = result["insured"].filter((pl.col("scenario") == scenario) & (pl.col("period") <= months[-1]))
    insured = insured.sort("period")
    return Baseline(
        year=int(months[-1][:4]),
        insured=int(insured["insured"][-1]) if insured.height else 0,
        contributions_fen=half_up(int(frame[f"{scenario}_contributions_fen"].sum()) * scale[0], scale[1]),
        beneficiaries=beneficiaries,
        benefit_per_beneficiary_fen=per_person,
        balance_fen=int(frame[f"{scenario}_balance_fen"][-1]) if frame.height else result["opening_balance_fen"],
    )


def scenario_dir(variant: Variant, months: list[str]) -> Path:
    name = f"{variant.jurisdiction}-{months[0]}-{months[-1]}-{variant.digest[:8]}"
    return get_settings().home / "whatif" / name


@task(cache_policy=NO_CACHE)
def publish_scenario(
    variant: Variant,
    months: list[str],
    done: list[dict[str, pl.DataFrame]],
    decisions: pl.DataFrame,
    opening_fen: int,
    years: int,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    """The scenario's tables, its projection and report, written under `out_dir` as Parquet, CSV and HTML."""
    result = assemble(variant, months, done, opening_fen, decisions)
    # The projection starts from the last closed period: the range's last month billed on the record (a month not
    # billed yet may lack care days still to come), or the range's last month where none of it is billed.
    last = last_closed(variant.jurisdiction)
    closed = [mo for mo in months if last is not None and mo <= last] or months
    on = period_bounds(closed[-1])[1]
    assumptions = load_assumptions(variant.projection, on, f"{variant.file} (projection)")
    cited = [
        {
            "name": a.name,
            "description": a.description,
            "value": str(a.value),
            "reference": a.reference,
            "source": a.source,
        }
        for a in assumptions.values()
    ]
    projection: dict[str, Any] = {"assumptions": cited, "sensitivity": {}, "base_period": closed[-1]}
    for sc in SCENARIOS:
        base = baseline(result, sc, closed)
        rows = project(base, assumptions, years)
        projection[sc] = rows
        projection[f"{sc}_run_out"] = run_out_year(rows)
        projection["sensitivity"][sc] = sensitivity(base, assumptions, years)
    target = out_dir or scenario_dir(variant, months)
    target.mkdir(parents=True, exist_ok=True)
    for name in ("months", "by_mode_grade", "contributions", "persons", "eligibility", "years", "lines", "record"):
        result[name].write_parquet(target / f"{name}.parquet")
    report = write_report(
        {
            **result,
            "jurisdiction": variant.jurisdiction,
            "pack_name": variant.in_force.name,
            "document": variant.in_force.document,
            "draft": variant.in_force.draft,
            "from": months[0],
            "to": months[-1],
            "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "proposal": {"title": variant.title, "description": variant.description, "file": variant.file},
            "changed": [change_row(c) for c in variant.changes],
            "projection": projection,
        },
        target,
    )
    record, frame = result["record"], result["months"]
    billed = record.filter(pl.col("record_lines") > 0)
    return {
        "scenario": str(target),
        "report": str(report),
        "months": len(months),
        "months_billed_on_record": billed.height,
        "record_fen": int(billed["record_fen"].sum()),
        "in_force_fen_of_billed_months": int(billed["in_force_fen"].sum()),
        "lines_differing_from_record": int(record["lines_differing"].sum()),
        "in_force_fen": int(frame["in_force_fen"].sum()),
        "variant_fen": int(frame["variant_fen"].sum()),
        "diff_fen": int(frame["diff_fen"].sum()),
        "lines_changed": result["lines"].height,
        "persons_affected": {c: int((result["persons"]["change"] == c).sum()) for c in CHANGES},
        "contributions_diff_fen": int(result["contributions"]["diff_fen"].sum()),
        "projection_from": closed[-1],
        "run_out_year": {sc: projection[f"{sc}_run_out"] for sc in SCENARIOS},
    }


def change_row(c: Change) -> dict[str, Any]:
    return {
        "parameter": c.parameter,
        "description": c.description,
        "unit": c.unit,
        "from": c.start.isoformat(),
        "in_force": "" if c.in_force is None else str(c.in_force),
        "variant": "" if c.variant is None else str(c.variant),
        "reference": c.reference,
        "in_force_reference": c.in_force_reference,
    }
