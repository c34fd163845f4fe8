"""Run reports: what the record holds after a billing or payment run, published as Prefect artifacts for the
operators who watch the runs. They name internal ids only (persons, providers, batches), never a name or an ID
number, and amounts in yuan from integer fen."""

from __future__ import annotations

import io
import time
from typing import Any

import polars as pl
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from sqlalchemy import case, func, select

from common.formatting import yuan
from storage import models as m
from storage.db import session_scope
from tasks.records import frame

LARGEST = 10


def previous_period(period: str) -> str:
    year, month = int(period[:4]), int(period[5:7])
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


def artifact_key(kind: str, jurisdiction: str, period: str) -> str:
    """Prefect artifact keys take lowercase letters, digits and dashes."""
    return f"{kind}-{jurisdiction}-{period}".lower().replace("_", "-")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "_none_\n"
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def billing_report(jurisdiction: str, period: str) -> dict[str, list[dict[str, Any]]]:
    """The period's claims by care mode and grade, by provider; days excluded by reason; fraud flags by rule;
    rows quarantined at intake; the change against the previous period; the largest claims.

    The month's lines are read once (the columns the tables need) and summed in polars: one pass over the
    month, where a query per table would scan it again each time."""
    cl = m.ClaimLine
    mine = (cl.jurisdiction == jurisdiction) & (cl.period == period)
    schema = {
        "person_id": pl.Utf8,
        "provider_id": pl.Utf8,
        "care_mode": pl.Utf8,
        "grade": pl.Int64,
        "days_paid": pl.Int64,
        "payable_fen": pl.Int64,
        "exclusions": pl.Utf8,
    }
    with session_scope() as s:
        lines = frame(
            s,
            select(
                cl.person_id,
                cl.provider_id,
                cl.care_mode,
                cl.grade,
                cl.days_paid,
                cl.payable_fen,
                case((cl.days_excluded > 0, cl.exclusions)),
            ).where(mine),
            schema,
        )
        flags = s.execute(
            select(m.FraudFlag.rule, func.count())
            .where(m.FraudFlag.jurisdiction == jurisdiction, m.FraudFlag.period == period)
            .group_by(m.FraudFlag.rule)
            .order_by(m.FraudFlag.rule)
        ).all()
        quarantined = s.execute(
            select(m.QuarantinedRow.kind, m.QuarantinedRow.field, func.count())
            .group_by(m.QuarantinedRow.kind, m.QuarantinedRow.field)
            .order_by(m.QuarantinedRow.kind, m.QuarantinedRow.field)
        ).all()
        before = previous_period(period)
        n, persons, fen = s.execute(
            select(func.count(), func.count(cl.person_id.distinct()), func.coalesce(func.sum(cl.payable_fen), 0)).where(
                cl.jurisdiction == jurisdiction, cl.period == before
            )
        ).one()
    # {"REASON": days, ...} per line, summed by reason in one vectorised step.
    text = "\n".join(lines["exclusions"].drop_nulls()).encode()
    excluded = pl.read_ndjson(io.BytesIO(text), infer_schema_length=None).sum() if text else pl.DataFrame()
    sums = [pl.len().alias("n"), pl.col("days_paid").sum().alias("d"), pl.col("payable_fen").sum().alias("f")]
    by_mode = lines.group_by("care_mode", "grade").agg(sums).sort("care_mode", "grade", nulls_last=True)
    by_provider = lines.group_by("provider_id").agg(sums).sort("provider_id")
    largest = lines.sort(["payable_fen", "person_id"], descending=[True, False]).head(LARGEST)
    change = [
        {"period": before, "claim lines": n, "persons": persons, "payable (yuan)": yuan(int(fen))},
        {
            "period": period,
            "claim lines": lines.height,
            "persons": lines["person_id"].n_unique(),
            "payable (yuan)": yuan(int(lines["payable_fen"].sum())),
        },
    ]
    return {
        "by care mode and grade": [
            {"care mode": c, "grade": g, "claim lines": n, "days paid": d, "payable (yuan)": yuan(int(f or 0))}
            for c, g, n, d, f in by_mode.iter_rows()
        ],
        "by provider": [
            {"provider": p, "claim lines": n, "days paid": d, "payable (yuan)": yuan(int(f or 0))}
            for p, n, d, f in by_provider.iter_rows()
        ],
        "days excluded by reason": [
            {"reason": r, "days": int(excluded[r][0])} for r in sorted(excluded.columns) if excluded[r][0]
        ],
        "fraud flags by rule": [{"rule": r, "care-day records": n} for r, n in flags],
        "quarantined rows (all intake)": [{"kind": k, "field": f, "rows": n} for k, f, n in quarantined],
        "change against the previous period": change,
        "largest claims": [
            {"person": p, "provider": h, "care mode": c, "grade": g, "days paid": d, "payable (yuan)": yuan(f)}
            for p, h, c, g, d, f, _ in largest.iter_rows()
        ],
    }


def payment_report(jurisdiction: str, period: str) -> dict[str, list[dict[str, Any]]]:
    """The period's batches with their lines, recoveries and status, and the totals."""
    pb, pl_ = m.PaymentBatch, m.PaymentLine
    with session_scope() as s:
        batches = s.execute(
            select(
                pb.batch_ref,
                pb.payee_id,
                pb.line_count,
                pb.total_fen,
                pb.status,
                func.coalesce(func.sum(pl_.amount_fen).filter(pl_.amount_fen < 0), 0),
                func.count(pl_.adjustment_id),
            )
            .join(pl_, pl_.batch_id == pb.id)
            .where(pb.jurisdiction == jurisdiction, pb.period == period)
            .group_by(pb.batch_ref, pb.payee_id, pb.line_count, pb.total_fen, pb.status)
            .order_by(pb.batch_ref)
        ).all()
    rows = [
        {
            "batch": ref,
            "payee": payee,
            "lines": n,
            "adjustments": adjustments,
            "recovered (yuan)": yuan(-int(recovered)),
            "total (yuan)": yuan(total),
            "status": status,
        }
        for ref, payee, n, total, status, recovered, adjustments in batches
    ]
    total = sum(b[3] for b in batches)
    return {
        "batches": rows,
        "totals": [{"batches": len(rows), "lines": sum(b[2] for b in batches), "total (yuan)": yuan(total)}],
    }


def markdown(title: str, tables: dict[str, list[dict[str, Any]]]) -> str:
    return f"# {title}\n\n" + "\n".join(f"## {name}\n\n{markdown_table(rows)}" for name, rows in tables.items())


def _publish(kind: str, jurisdiction: str, period: str, tables: dict[str, list[dict[str, Any]]]) -> str:
    key = artifact_key(kind, jurisdiction, period)
    title = f"{kind.capitalize()} {jurisdiction} {period}"
    create_markdown_artifact(markdown(title, tables), key=key, description=title.lower())
    return key


@task(cache_policy=NO_CACHE)
def publish_billing_report(jurisdiction: str, period: str) -> dict[str, Any]:
    """The billing report's artifact `key`, and the `interval` (epoch seconds) the task worked in."""
    started = time.time()
    key = _publish("billing", jurisdiction, period, billing_report(jurisdiction, period))
    return {"key": key, "interval": (started, time.time())}


@task(cache_policy=NO_CACHE)
def publish_payment_report(jurisdiction: str, period: str) -> str:
    return _publish("payment", jurisdiction, period, payment_report(jurisdiction, period))
