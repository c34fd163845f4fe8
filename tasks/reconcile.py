"""Reconcile a period's payment batches with the bank's return file, post what the bank paid, close the period.

Every batch of the period is matched with the return row of the same `batch_ref`. A batch the bank paid in full
is marked paid and its transfer posted to the ledger (payable to the payee out of the fund's bank account). Any
difference is a break, kept in `reconciliation_break` and reported: a batch the return does not name
(`missing`), a transfer of another amount (`amount`), a transfer the bank failed (`failed`), or a return row
for this period that names no batch (`extra`). A break that a later return file clears is marked resolved. The
period closes, once, when it has batches, all of them are paid, no break is open and the ledger balances.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select

from common.formatting import yuan
from storage import models as m
from storage.db import session_scope, upsert
from tasks import audit, ledger
from tasks.retrying import RETRY_TRANSIENT


def _breaks(batches: list[m.PaymentBatch], returns: dict[str, m.BankReturn], prefix: str) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    refs = {b.batch_ref for b in batches}
    for b in batches:
        r = returns.get(b.batch_ref)
        if r is None:
            found.append((b.batch_ref, "missing", f"batch of {yuan(b.total_fen)} yuan is not in the bank's return"))
        elif r.amount_fen != b.total_fen:
            found.append(
                (b.batch_ref, "amount", f"bank transferred {yuan(r.amount_fen)} yuan, batch is {yuan(b.total_fen)}")
            )
        elif r.status == "failed":
            found.append((b.batch_ref, "failed", f"bank failed the transfer: {r.reason or 'no reason given'}"))
    for ref, r in returns.items():
        if ref.startswith(prefix) and ref not in refs:
            found.append((ref, "extra", f"bank return names {yuan(r.amount_fen)} yuan to a batch we did not create"))
    return found


@task(
    cache_policy=NO_CACHE,
    **RETRY_TRANSIENT,
    task_run_name="reconcile {jurisdiction} {period}",
)
def reconcile(jurisdiction: str, period: str) -> dict[str, Any]:
    """Match, post and perhaps close, in one transaction. Rerunning it changes nothing that is already so."""
    prefix = f"{jurisdiction}-{period}-"
    with session_scope() as s:
        batches = list(
            s.scalars(
                select(m.PaymentBatch)
                .where(m.PaymentBatch.jurisdiction == jurisdiction, m.PaymentBatch.period == period)
                .order_by(m.PaymentBatch.batch_ref)
                .with_for_update()
            )
        )
        returns = {
            r.batch_ref: r for r in s.scalars(select(m.BankReturn).where(m.BankReturn.batch_ref.startswith(prefix)))
        }
        breaks = _breaks(batches, returns, prefix)
        broken = {ref for ref, _, _ in breaks}
        for b in batches:
            r = returns.get(b.batch_ref)
            if b.batch_ref in broken or r is None:
                if r is not None and r.status == "failed" and b.status != "paid":
                    b.status = "failed"
                continue
            if b.status != "paid":
                b.status = "paid"
            ledger.post(
                s,
                f"bank:{b.batch_ref}",
                jurisdiction,
                period,
                [ledger.debit(f"payable:{b.payee_id}", b.total_fen), ledger.credit("bank", b.total_fen)],
                memo=f"bank paid batch {b.batch_ref}" + (f" ({r.bank_reference})" if r.bank_reference else ""),
            )
        ledger.post_contributions(s, jurisdiction, period)

        open_breaks = s.scalars(
            select(m.ReconciliationBreak).where(
                m.ReconciliationBreak.jurisdiction == jurisdiction,
                m.ReconciliationBreak.period == period,
                m.ReconciliationBreak.resolved.is_(False),
            )
        ).all()
        current = {(ref, kind) for ref, kind, _ in breaks}
        for old in open_breaks:
            if (old.batch_ref, old.kind) not in current:
                old.resolved = True
        upsert(
            s,
            m.ReconciliationBreak,
            [
                {"jurisdiction": jurisdiction, "period": period, "batch_ref": ref, "kind": kind, "detail": detail}
                for ref, kind, detail in breaks
            ],
            keys=["jurisdiction", "period", "batch_ref", "kind"],
            update=False,
        )
        if breaks:  # a break that had been resolved and is back is open again
            for row in s.scalars(
                select(m.ReconciliationBreak).where(
                    m.ReconciliationBreak.jurisdiction == jurisdiction,
                    m.ReconciliationBreak.period == period,
                    m.ReconciliationBreak.resolved.is_(True),
                )
            ):
                if (row.batch_ref, row.kind) in current:
                    row.resolved = False

        paid_fen = sum(b.total_fen for b in batches if b.status == "paid")
        closable = bool(batches) and not breaks and not ledger.unbalanced(s)
        if closable:
            upsert(
                s,
                m.PeriodClose,
                [{"jurisdiction": jurisdiction, "period": period, "batches": len(batches), "paid_fen": paid_fen}],
                keys=["jurisdiction", "period"],
                update=False,
            )
        closed = (
            s.scalar(
                select(m.PeriodClose.id).where(
                    m.PeriodClose.jurisdiction == jurisdiction, m.PeriodClose.period == period
                )
            )
            is not None
        )
        audit.record(
            s,
            "payment.reconcile",
            f"{jurisdiction} {period}",
            {
                "batches": len(batches),
                "paid": sum(b.status == "paid" for b in batches),
                "paid_fen": paid_fen,
                "breaks": [f"{ref} {kind}" for ref, kind, _ in breaks],
                "closed": closed,
            },
        )
        return {
            "batches": len(batches),
            "paid": sum(b.status == "paid" for b in batches),
            "paid_fen": paid_fen,
            "breaks": [{"batch_ref": ref, "kind": kind, "detail": detail} for ref, kind, detail in breaks],
            "closed": closed,
        }
