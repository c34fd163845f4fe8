"""The fund's double-entry ledger, in integer fen.

Each posting (`txn_ref`) is a set of entries whose debits equal their credits, written in the caller's
transaction together with the state change it records (a payment batch, a bank return, a period's contributions).
Entries are appended, never edited: the database refuses UPDATE and DELETE on them, and a correction is a
reversing posting. A `txn_ref` is posted once; posting it again with the same content does nothing, with other
content it is an error and nothing is posted.

Accounts:
- `bank`: the fund's bank account;
- `contribution_income`: contributions received;
- `benefit_expense`: care benefits paid to providers (claim lines and 补发 supplements);
- `benefit_recovered`: benefits recovered (追回) by offsetting a later batch;
- `assessment_fee_expense`: the fund's share of disability assessment fees;
- `payable:<payee id>`: what the fund owes a provider or an assessment agency until the bank pays it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from storage import models as m


class LedgerError(ValueError):
    """A posting that does not balance, or a txn_ref posted before with other content."""


@dataclass(frozen=True)
class Entry:
    account: str
    debit_fen: int = 0
    credit_fen: int = 0


def debit(account: str, fen: int) -> Entry:
    return Entry(account, debit_fen=fen)


def credit(account: str, fen: int) -> Entry:
    return Entry(account, credit_fen=fen)


def _content(fund: str, period: str, entries: list[Entry], reverses: str | None) -> str:
    body = [fund, period, [(e.account, e.debit_fen, e.credit_fen) for e in entries], reverses]
    return hashlib.sha256(json.dumps(body, ensure_ascii=False).encode()).hexdigest()


def post(
    session: Session,
    txn_ref: str,
    fund: str,
    period: str,
    entries: list[Entry],
    memo: str = "",
    reverses: str | None = None,
) -> bool:
    """Post a balanced set of entries once. Returns False if this exact posting is already in the ledger."""
    entries = [e for e in entries if e.debit_fen or e.credit_fen]
    for e in entries:
        if not isinstance(e.debit_fen, int) or not isinstance(e.credit_fen, int):
            raise LedgerError(f"{txn_ref}: amounts are integer fen, got {e!r}")
        if e.debit_fen < 0 or e.credit_fen < 0 or (e.debit_fen and e.credit_fen):
            raise LedgerError(f"{txn_ref}: an entry is a debit or a credit of a positive amount, got {e!r}")
    debits, credits = sum(e.debit_fen for e in entries), sum(e.credit_fen for e in entries)
    if debits != credits:
        raise LedgerError(f"{txn_ref}: debits {debits} fen != credits {credits} fen")
    if not entries:
        return False
    sha = _content(fund, period, entries, reverses)
    posted = session.scalar(select(m.LedgerEntry.content_sha256).where(m.LedgerEntry.txn_ref == txn_ref).limit(1))
    if posted is not None:
        if posted != sha:
            raise LedgerError(f"{txn_ref} is already posted with other content; post a reversal and a new txn_ref")
        return False
    session.add_all(
        m.LedgerEntry(
            txn_ref=txn_ref,
            line_no=i,
            fund=fund,
            period=period,
            account=e.account,
            debit_fen=e.debit_fen,
            credit_fen=e.credit_fen,
            memo=memo[:256],
            content_sha256=sha,
            reverses=reverses,
        )
        for i, e in enumerate(entries, start=1)
    )
    session.flush()
    return True


def reverse(session: Session, txn_ref: str, memo: str) -> str:
    """Post the mirror image of a posting (debits become credits), as `reversal:<txn_ref>`."""
    rows = session.scalars(
        select(m.LedgerEntry).where(m.LedgerEntry.txn_ref == txn_ref).order_by(m.LedgerEntry.line_no)
    ).all()
    if not rows:
        raise LedgerError(f"{txn_ref} is not in the ledger")
    ref = f"reversal:{txn_ref}"
    post(
        session,
        ref,
        rows[0].fund,
        rows[0].period,
        [Entry(r.account, debit_fen=r.credit_fen, credit_fen=r.debit_fen) for r in rows],
        memo=memo,
        reverses=txn_ref,
    )
    return ref


def balance(session: Session, account_prefix: str, fund: str | None = None, period: str | None = None) -> int:
    """Debits minus credits of the accounts whose name starts with `account_prefix`."""
    e = m.LedgerEntry
    stmt = select(func.coalesce(func.sum(e.debit_fen - e.credit_fen), 0)).where(e.account.startswith(account_prefix))
    if fund is not None:
        stmt = stmt.where(e.fund == fund)
    if period is not None:
        stmt = stmt.where(e.period == period)
    return int(session.scalar(stmt) or 0)


def unbalanced(session: Session) -> list[tuple[str, int, int]]:
    """Postings whose debits and credits differ: (txn_ref, debits, credits). Empty in a sound ledger."""
    e = m.LedgerEntry
    return [
        (ref, int(d), int(c))
        for ref, d, c in session.execute(
            select(e.txn_ref, func.sum(e.debit_fen), func.sum(e.credit_fen))
            .group_by(e.txn_ref)
            .having(func.sum(e.debit_fen) != func.sum(e.credit_fen))
        ).all()
    ]


def totals(session: Session, fund: str | None = None) -> dict[str, int]:
    """All debits and all credits (equal in a sound ledger)."""
    e = m.LedgerEntry
    stmt = select(func.coalesce(func.sum(e.debit_fen), 0), func.coalesce(func.sum(e.credit_fen), 0))
    if fund is not None:
        stmt = stmt.where(e.fund == fund)
    d, c = session.execute(stmt).one()
    return {"debit_fen": int(d), "credit_fen": int(c)}


def trial_balance(session: Session, fund: str, period: str | None = None) -> dict[str, int]:
    """Each account's balance (debits minus credits) for a fund, optionally one period."""
    e = m.LedgerEntry
    payable = case((e.account.startswith("payable:"), "payable"), else_=e.account)
    stmt = select(payable, func.sum(e.debit_fen - e.credit_fen)).where(e.fund == fund).group_by(payable)
    if period is not None:
        stmt = stmt.where(e.period == period)
    return {str(a): int(v) for a, v in session.execute(stmt).all()}


def _sequence(session: Session, prefix: str) -> int:
    n = session.scalar(
        select(func.count(func.distinct(m.LedgerEntry.txn_ref))).where(m.LedgerEntry.txn_ref.startswith(prefix))
    )
    return int(n or 0) + 1


def post_contributions(session: Session, fund: str, period: str) -> int:
    """Bring the ledger's contribution income for a fund and period up to what the record says was paid: the
    difference, if any, is posted as the next `contributions:<fund>:<period>:<n>` (a fall is posted the other
    way round). Returns the amount posted."""
    recorded = int(
        session.scalar(
            select(func.coalesce(func.sum(m.Contribution.paid_fen), 0))
            .join(m.Person, m.Person.person_id == m.Contribution.person_id)
            .where(m.Person.jurisdiction == fund, m.Contribution.period == period)
        )
        or 0
    )
    posted = -balance(session, "contribution_income", fund, period)
    delta = recorded - posted
    if delta == 0:
        return 0
    prefix = f"contributions:{fund}:{period}:"
    entries = (
        [debit("bank", delta), credit("contribution_income", delta)]
        if delta > 0
        else [debit("contribution_income", -delta), credit("bank", -delta)]
    )
    post(session, f"{prefix}{_sequence(session, prefix)}", fund, period, entries, memo="contributions received")
    return delta
