"""Provider payment: a period's unpaid claim lines become one payment batch per payee, and a bank file.

A batch is keyed by (payee, period) and can exist once; a claim line is paid once. Each batch, its lines and
the provider's remittance advice are written in one transaction, so a crash leaves either all or none.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import case, literal, null, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common import idvault
from common.faults import failpoint
from common.formatting import yuan
from common.settings import get_settings
from rules.engine import load_pack, period_bounds
from storage import models as m
from storage.db import session_scope
from tasks import audit, ledger
from tasks.notices import notify
from tasks.records import frame
from tasks.retrying import RETRY_TRANSIENT

CARER_KINDS = ("carer_trained", "carer_untrained")


PAYABLE = {
    "claim_line_id": pl.Int64,
    "adjustment_id": pl.Int64,
    "kind": pl.Utf8,
    "care_period": pl.Utf8,
    "provider_id": pl.Utf8,
    "person_id": pl.Utf8,
    "person_name": pl.Utf8,
    "id_masked": pl.Utf8,  # read encrypted, handed on masked (450***********1234)
    "care_mode": pl.Utf8,
    "days_paid": pl.Int64,
    "payable_fen": pl.Int64,
    "payee_kind": pl.Utf8,
}


@task(cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def unpaid_claims(jurisdiction: str, period: str) -> pl.DataFrame:
    """What no batch has paid yet, for care up to the period, each with its payee's kind: claim lines with an
    amount (a late line of an earlier month among them), and adjustments of lines paid before (补发 positive,
    追回 negative)."""
    cl, adj = m.ClaimLine, m.ClaimAdjustment
    paid_lines = select(m.PaymentLine.claim_line_id).where(m.PaymentLine.claim_line_id.is_not(None))
    paid_adjustments = select(m.PaymentLine.adjustment_id).where(m.PaymentLine.adjustment_id.is_not(None))
    lines = (
        select(
            cl.id,
            null().label("adjustment_id"),
            literal("claim").label("kind"),
            cl.period,
            cl.provider_id,
            cl.person_id,
            m.Person.name,
            m.Person.id_number_enc.label("id_masked"),
            cl.care_mode,
            cl.days_paid,
            cl.payable_fen,
            m.Provider.kind.label("payee_kind"),
        )
        .join(m.Person, m.Person.person_id == cl.person_id)
        .join(m.Provider, m.Provider.provider_id == cl.provider_id)
        .where(cl.period <= period, cl.jurisdiction == jurisdiction, cl.payable_fen > 0, cl.id.not_in(paid_lines))
    )
    adjustments = (
        select(
            null().label("claim_line_id"),
            adj.id,
            case((adj.delta_fen > 0, "supplement"), else_="recovery").label("kind"),
            adj.period,
            adj.provider_id,
            adj.person_id,
            m.Person.name,
            m.Person.id_number_enc.label("id_masked"),
            adj.care_mode,
            literal(0).label("days_paid"),
            adj.delta_fen,
            m.Provider.kind.label("payee_kind"),
        )
        .join(m.Person, m.Person.person_id == adj.person_id)
        .join(m.Provider, m.Provider.provider_id == adj.provider_id)
        .where(adj.period <= period, adj.jurisdiction == jurisdiction, adj.id.not_in(paid_adjustments))
    )
    with session_scope() as s:
        frames = [frame(s, stmt, PAYABLE) for stmt in (lines, adjustments)]
    return idvault.masked(pl.concat(frames), "id_masked").sort(
        "provider_id", "care_period", "person_id", "kind", "claim_line_id", "adjustment_id"
    )


@task(cache_policy=NO_CACHE)
def payable_to(lines: pl.DataFrame, jurisdiction: str, period: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split the lines into those the fund may pay and those it may not: an individual carer is paid only where
    the pack says the fund settles with individuals (`payment.pays_individual_carers`)."""
    pack = load_pack(jurisdiction)
    allowed = bool(pack.param("payment.pays_individual_carers").at(period_bounds(period)[0]))
    withheld = pl.lit(not allowed) & pl.col("payee_kind").is_in(list(CARER_KINDS))
    return lines.filter(~withheld), lines.filter(withheld)


class PayoutConflict(RuntimeError):
    """A payout's idempotency key (its batch_ref) met with other content: nothing is paid or written."""


def batch_content_sha256(
    batch_ref: str, payee_id: str, period: str, bank_account: str, total_fen: int, lines: Iterable[tuple[Any, ...]]
) -> str:
    """The digest of a payout: its key, payee, account, total and its lines (claim line, adjustment, fen)."""
    head = [batch_ref, payee_id, period, bank_account, total_fen]
    return audit.content_sha256([head, *sorted((int(c or 0), int(a or 0), int(f)) for c, a, f in lines)])


def check_batch(s: Session, batch: m.PaymentBatch) -> None:
    """Raise PayoutConflict if a batch's lines or amounts are no longer what its digest says."""
    if not batch.content_sha256:
        return
    lines = s.execute(
        select(m.PaymentLine.claim_line_id, m.PaymentLine.adjustment_id, m.PaymentLine.amount_fen).where(
            m.PaymentLine.batch_id == batch.id
        )
    ).all()
    digest = batch_content_sha256(
        batch.batch_ref, batch.payee_id, batch.period, batch.bank_account, batch.total_fen, [tuple(r) for r in lines]
    )
    if digest != batch.content_sha256:
        raise PayoutConflict(
            f"payment batch {batch.batch_ref}: its lines or amounts differ from what it was created with; "
            "nothing is written for the bank until this is resolved"
        )


@task(cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def create_batch(lines: pl.DataFrame, payee_id: str, jurisdiction: str, period: str) -> str | None:
    """One payee's batch for the period, unless it exists already, with its ledger posting and the provider's
    remittance advice, in one transaction. Returns the new batch's reference.

    A payee whose recoveries (追回) outweigh what is due gets no batch: its lines wait for the next period."""
    batch_ref = f"{jurisdiction}-{period}-{payee_id}"
    total = int(lines["payable_fen"].sum())
    if total <= 0:
        return None
    pack = load_pack(jurisdiction)
    try:
        with session_scope() as s:
            if s.scalar(
                select(m.PaymentBatch.id).where(m.PaymentBatch.payee_id == payee_id, m.PaymentBatch.period == period)
            ):
                return None
            provider = s.get(m.Provider, payee_id)
            assert provider is not None, payee_id
            content = batch_content_sha256(
                batch_ref,
                payee_id,
                period,
                provider.bank_account,
                total,
                lines.select("claim_line_id", "adjustment_id", "payable_fen").rows(),
            )
            batch = m.PaymentBatch(
                batch_ref=batch_ref,
                payee_id=payee_id,
                period=period,
                jurisdiction=jurisdiction,
                bank_account=provider.bank_account,
                total_fen=total,
                line_count=lines.height,
                status="created",
                content_sha256=content,
            )
            s.add(batch)
            s.flush()
            s.add_all(
                m.PaymentLine(
                    batch_id=batch.id,
                    claim_line_id=r["claim_line_id"],
                    adjustment_id=r["adjustment_id"],
                    period=r["care_period"],
                    person_id=r["person_id"],
                    amount_fen=r["payable_fen"],
                )
                for r in lines.iter_rows(named=True)
            )
            recovered = -int(lines.filter(pl.col("payable_fen") < 0)["payable_fen"].sum())
            ledger.post(
                s,
                f"batch:{batch_ref}",
                jurisdiction,
                period,
                [
                    ledger.debit("benefit_expense", total + recovered),
                    ledger.credit("benefit_recovered", recovered),
                    ledger.credit(f"payable:{payee_id}", total),
                ],
                memo=f"payment batch {batch_ref}",
            )
            notify(
                s,
                provider,
                kind="remittance_advice",
                dedupe_key=f"remittance_advice:{batch_ref}",
                context={
                    "provider_name": provider.name,
                    "period": period,
                    "batch_ref": batch_ref,
                    "bank_account": provider.bank_account,
                    "total_fen": batch.total_fen,
                    "document": pack.document,
                    "draft": pack.draft,
                    "lines": [
                        {
                            "person_name": r["person_name"],
                            "id_number": r["id_masked"],
                            "care_mode": r["care_mode"],
                            "days_paid": r["days_paid"],
                            "amount_fen": r["payable_fen"],
                            "kind": r["kind"],
                            "care_period": r["care_period"],
                        }
                        for r in lines.iter_rows(named=True)
                    ],
                },
            )
            audit.record(
                s,
                "payment.batch",
                batch_ref,
                {
                    "payee_id": payee_id,
                    "period": period,
                    "total_fen": total,
                    "lines": lines.height,
                    "recovered_fen": recovered,
                    "content_sha256": content,
                },
            )
            failpoint("payment.batch.before_commit")
        failpoint("payment.batch.committed")
    except IntegrityError:
        # Another run created this payee's batch (or paid one of its lines) first: nothing is paid twice.
        return None
    return batch_ref


@task(cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def write_bank_file(jurisdiction: str, period: str) -> str:
    """The bank transfer file for the period: one row per batch, written from the record (so a rerun rewrites
    the same file)."""
    with session_scope() as s:
        batches = s.execute(
            select(m.PaymentBatch, m.Provider.name)
            .join(m.Provider, m.Provider.provider_id == m.PaymentBatch.payee_id)
            .where(m.PaymentBatch.period == period, m.PaymentBatch.jurisdiction == jurisdiction)
            .order_by(m.PaymentBatch.batch_ref)
        ).all()
        for b, _ in batches:
            check_batch(s, b)
        path = Path(get_settings().bank_dir) / f"{jurisdiction}-{period}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")  # two runs at once never write into one file
        with tmp.open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["batch_ref", "payee_id", "payee_name", "bank_account", "amount", "lines"])
            for b, name in batches:
                w.writerow([b.batch_ref, b.payee_id, name, b.bank_account, yuan(b.total_fen), b.line_count])
        tmp.replace(path)
    return str(path)
