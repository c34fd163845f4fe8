"""Monthly billing: care days of a period become claim lines, each knowing why days were or were not paid."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pandera.polars as pa
import polars as pl
from pandera.typing.polars import DataFrame
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select

from ltc.formatting import yuan
from rules.engine import Pack, RulesError, load_pack, period_bounds, reasons
from rules.formulas import resolve
from storage import models as m
from storage.bulk import bulk_upsert
from storage.db import session_scope
from tasks import records
from tasks.notices import Outbox
from tasks.schemas import Claims

DEFAULT_CAP_REASON = {"zh": "超过支付限额的部分不予支付。", "clause": "（支付限额）"}
UNIT_NAMES = {"yuan/day": "元/天", "yuan/month": "元/月", "yuan/year": "元/年", "yuan": "元"}


def rate_lines(pack: Pack, grade: int | None, on: dt.date | None) -> list[str]:
    """What a decision notice says the person will be paid: the pack's money parameters for billing that apply
    to the grade (or to every grade), with their descriptions, as in force on the start date."""
    if grade is None or on is None:
        return []
    out = []
    for name, p in sorted(pack.parameters.items()):
        last = name.rsplit(".", 1)[-1]
        if not name.startswith("billing.") or (p.unit not in UNIT_NAMES and p.unit != "ratio"):
            continue
        if last.startswith("grade_") and last != f"grade_{grade}":
            continue
        try:
            if p.unit == "ratio":
                text = f"{(p.decimal(on) * 100).normalize():f}%"
            else:
                text = f"{yuan(p.fen(on))} {UNIT_NAMES[p.unit]}"
        except RulesError:
            continue
        out.append(f"{p.description or name} {text}")
    return out


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def billing_inputs(jurisdiction: str, period: str) -> dict[str, pl.DataFrame]:
    load_pack(jurisdiction).check_period(period)
    with session_scope() as s:
        return {
            "care": records.care_days(s, jurisdiction, period),
            "entitlements": records.entitlements(s, jurisdiction),
            "persons": records.persons(s, jurisdiction),
            "stays": records.hospital_stays(s, jurisdiction, period),
            "providers": records.providers(s, jurisdiction),
            "contributions": records.contributions(s, jurisdiction),
            "ytd": records.year_to_date(s, jurisdiction, period),
        }


@task(cache_policy=NO_CACHE)
@pa.check_types
def compute_claims(inputs: dict[str, pl.DataFrame], jurisdiction: str, period: str) -> DataFrame[Claims]:
    """The pack's billing formula in force on the first day of the period, on whole frames."""
    pack = load_pack(jurisdiction)
    first, _ = period_bounds(period)
    bill = resolve(pack, "bill", first)
    out: pl.DataFrame = bill(inputs, pack, period)
    return DataFrame[Claims](out)


PERSON_FRAMES = ("care", "entitlements", "persons", "stays", "contributions", "ytd")


@task(cache_policy=NO_CACHE)
def partition_inputs(inputs: dict[str, pl.DataFrame], shards: int) -> list[dict[str, pl.DataFrame]]:
    """Split the month by person (a stable hash of the id), so each part bills whole persons: every rule, quotas
    and caps included, looks at one person at a time. Shared frames (providers) go to every part."""
    if shards <= 1:
        return [inputs]
    parts: list[dict[str, pl.DataFrame]] = [{} for _ in range(shards)]
    for name, frame in inputs.items():
        if name not in PERSON_FRAMES:
            for part in parts:
                part[name] = frame
            continue
        shard = frame["person_id"].hash(seed=0) % shards
        for i, part in enumerate(parts):
            part[name] = frame.filter(shard == i)
    return parts


@task(cache_policy=NO_CACHE)
def combine_claims(parts: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(parts).sort("person_id", "provider_id", "care_mode")


def _cites(pack: Pack, names: list[str | None], period: str) -> list[dict[str, Any]]:
    first, last = period_bounds(period)
    seen: list[dict[str, Any]] = []
    for name in (n for n in names if n):
        for day in (first, last):
            c = pack.param(name).cite(day)
            if c not in seen:
                seen.append(c)
    return seen


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def write_claims(claims: pl.DataFrame, jurisdiction: str, period: str) -> int:
    """Upsert the period's claim lines (never one already paid) and each beneficiary's monthly statement."""
    pack = load_pack(jurisdiction)
    catalogue = reasons(pack)
    keys = ["person_id", "provider_id", "care_mode"]
    with session_scope() as s:
        paid = pl.DataFrame(
            s.execute(
                select(m.ClaimLine.person_id, m.ClaimLine.provider_id, m.ClaimLine.care_mode)
                .join(m.PaymentLine, m.PaymentLine.claim_line_id == m.ClaimLine.id)
                .where(m.ClaimLine.period == period, m.ClaimLine.jurisdiction == jurisdiction)
            ).all(),
            schema=dict.fromkeys(keys, pl.Utf8),
            orient="row",
        )
        lines = claims.join(paid, on=keys, how="anti")
        cites = {
            tuple(names): json.dumps(_cites(pack, list(names), period), ensure_ascii=False)
            for names in lines["rule_params"].unique().to_list()
        }
        rules = pl.DataFrame(
            {"rule_params": [list(k) for k in cites], "rules": list(cites.values())},
            schema={"rule_params": pl.List(pl.Utf8), "rules": pl.Utf8},
        )
        frame = lines.join(rules, on="rule_params", how="left", nulls_equal=True).select(
            "person_id",
            "provider_id",
            pl.lit(period).alias("period"),
            pl.lit(jurisdiction).alias("jurisdiction"),
            "care_mode",
            "grade",
            "days_submitted",
            "days_paid",
            "days_excluded",
            "submitted_fen",
            "gross_fen",
            "payable_fen",
            "personal_fen",
            "over_cap_fen",
            pl.lit(pack.draft).alias("policy_draft"),
            pl.col("exclusions")
            .map_elements(
                lambda ex: json.dumps({e["reason"]: e["days"] for e in ex}, ensure_ascii=False),
                return_dtype=pl.Utf8,
            )
            .alias("exclusions"),
            "rules",
        )
        bulk_upsert(s, m.ClaimLine, frame, ["person_id", "provider_id", "period", "care_mode"])
        _enqueue_statements(s, claims, pack, catalogue, period)
    return frame.height


def _enqueue_statements(
    s: Any, claims: pl.DataFrame, pack: Pack, catalogue: dict[str, dict[str, str]], period: str
) -> None:
    if claims.is_empty():
        return
    provider_names = dict(s.execute(select(m.Provider.provider_id, m.Provider.name)).all())
    wanted = claims["person_id"].unique().to_list()
    people: dict[str, m.Person] = {}
    for i in range(0, len(wanted), 10_000):
        people.update(
            (p.person_id, p) for p in s.scalars(select(m.Person).where(m.Person.person_id.in_(wanted[i : i + 10_000])))
        )
    outbox = Outbox(s)
    for (person_id,), group in claims.sort("person_id", "provider_id").group_by("person_id", maintain_order=True):
        person = people.get(str(person_id))
        if person is None:
            continue
        lines = []
        for c in group.iter_rows(named=True):
            excl = [
                {
                    "text": catalogue[e["reason"]]["zh"],
                    "clause": catalogue[e["reason"]]["clause"],
                    "days": e["days"],
                }
                for e in c["exclusions"]
            ]
            if c["over_cap_fen"]:
                q = catalogue[c["cap_reason"]] if c.get("cap_reason") in catalogue else DEFAULT_CAP_REASON
                excl.append(
                    {"text": f"{q['zh']}（超出 {yuan(c['over_cap_fen'])} 元）", "clause": q["clause"], "days": 0}
                )
            lines.append(
                {
                    "provider_name": provider_names.get(c["provider_id"], c["provider_id"]),
                    "care_mode": c["care_mode"],
                    "days_submitted": c["days_submitted"],
                    "days_paid": c["days_paid"],
                    "days_excluded": c["days_excluded"],
                    "payable_fen": c["payable_fen"],
                    "personal_fen": c["personal_fen"],
                    "exclusions": excl,
                }
            )
        context = {
            "person_name": person.name,
            "id_number": person.id_number,
            "period": period,
            "lines": lines,
            "total_fen": int(group["payable_fen"].sum()),
            "document": pack.document,
            "draft": pack.draft,
        }
        digest = hashlib.sha256(json.dumps(lines, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12]
        outbox.notify(
            person,
            kind="monthly_statement",
            dedupe_key=f"monthly_statement:{person_id}:{period}:{digest}",
            context=context,
        )
    outbox.flush()
