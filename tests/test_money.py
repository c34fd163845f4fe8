"""Money after it leaves billing: the double-entry ledger, late corrections to a paid month (补发 / 追回 in a
later batch, never an edit of a paid one), and reconciliation with the bank's return file before a period
closes. Amounts are worked out by hand from the demo's files and 南府规〔2023〕26号 三(三)3."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from flows.bill_month import bill_month
from flows.pay_providers import pay_providers
from flows.reconcile_payments import reconcile_payments
from ltc.demo import DemoSize
from ltc.pipeline import run_demo
from storage import models as m
from storage.db import session_scope
from tasks import ledger
from tasks.intake import load_file

SIZE = DemoSize(insured=300, applicants=70, providers=3, agencies=2)
MARCH, APRIL = "2026-03", "2026-04"
# 南府规〔2023〕26号 三(三)3(2): institutional care, yuan per day by grade.
DAILY_RATE_FEN = {5: 6600, 4: 6200, 3: 5700}


def _write(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _posted_balanced() -> None:
    with session_scope() as s:
        assert ledger.unbalanced(s) == []
        t = ledger.totals(s)
        assert t["debit_fen"] == t["credit_fen"]


# --- the ledger itself --------------------------------------------------------------------------------------


def test_ledger_postings_balance_post_once_and_are_never_edited(backend: str) -> None:
    with session_scope() as s:
        assert ledger.post(
            s, "t1", "nanning", MARCH, [ledger.debit("bank", 500), ledger.credit("contribution_income", 500)]
        )
        # the same posting again is a no-op ...
        assert not ledger.post(
            s, "t1", "nanning", MARCH, [ledger.debit("bank", 500), ledger.credit("contribution_income", 500)]
        )
    # ... other content under the same reference is refused, and nothing is posted
    with pytest.raises(ledger.LedgerError, match="other content"), session_scope() as s:
        ledger.post(s, "t1", "nanning", MARCH, [ledger.debit("bank", 501), ledger.credit("contribution_income", 501)])
    with pytest.raises(ledger.LedgerError, match="debits 500 fen != credits 400 fen"), session_scope() as s:
        ledger.post(s, "t2", "nanning", MARCH, [ledger.debit("bank", 500), ledger.credit("contribution_income", 400)])
    with pytest.raises(ledger.LedgerError, match="positive amount"), session_scope() as s:
        ledger.post(s, "t3", "nanning", MARCH, [ledger.debit("bank", -5), ledger.debit("x", 5)])

    with session_scope() as s:
        assert ledger.balance(s, "bank", "nanning") == 500
        ref = ledger.reverse(s, "t1", "entered twice")
        assert ref == "reversal:t1"
        assert ledger.balance(s, "bank", "nanning") == 0
        assert ledger.trial_balance(s, "nanning") == {"bank": 0, "contribution_income": 0}
        assert s.scalar(select(func.count()).select_from(m.LedgerEntry)) == 4
    _posted_balanced()

    # The database refuses to edit or remove an entry.
    for statement in ("UPDATE ledger_entry SET debit_fen = 1", "DELETE FROM ledger_entry"):
        with pytest.raises((DBAPIError, IntegrityError), match="append-only"), session_scope() as s:
            s.execute(text(statement))
    with session_scope() as s:
        assert s.scalar(select(func.sum(m.LedgerEntry.debit_fen))) == 1000


# --- the month, paid, corrected, reconciled -----------------------------------------------------------------


def _paid_institutional_line() -> m.ClaimLine:
    """A paid institutional claim line of March, of a person alive and never in hospital, with care on the 11th to
    the 14th."""
    with session_scope() as s:
        died = set(s.scalars(select(m.Person.person_id).where(m.Person.death_date.is_not(None))))
        stayed = set(s.scalars(select(m.HospitalStay.person_id)))
        lines = s.scalars(
            select(m.ClaimLine)
            .join(m.PaymentLine, m.PaymentLine.claim_line_id == m.ClaimLine.id)
            .where(m.ClaimLine.care_mode == "institutional", m.ClaimLine.days_paid >= 20)
            .order_by(m.ClaimLine.person_id)
        ).all()
        for line in lines:
            if line.person_id in died | stayed:
                continue
            days = set(
                s.scalars(
                    select(m.CareDay.care_date).where(
                        m.CareDay.person_id == line.person_id, m.CareDay.provider_id == line.provider_id
                    )
                )
            )
            if {dt.date(2026, 3, d) for d in range(11, 15)} <= days:
                s.expunge(line)
                return line
    raise AssertionError("the demo has no paid institutional line to correct")


def _april_care_days(provider_id: str, tmp: Path) -> Path:
    """April's care days for one provider: the March days it has on record, a month on (the 31st has no April
    day)."""
    with session_scope() as s:
        days = s.scalars(select(m.CareDay).where(m.CareDay.provider_id == provider_id, m.CareDay.period == MARCH)).all()
        rows = [
            [
                d.person_id,
                d.provider_id,
                APRIL,
                d.care_date.replace(month=4).isoformat(),
                d.care_mode,
                d.item_code,
                f"{d.amount_fen // 100}.{d.amount_fen % 100:02d}",
            ]
            for d in days
            if d.care_date.day <= 30
        ]
    header = ["person_id", "provider_id", "period", "care_date", "care_mode", "item_code", "amount"]
    return _write(tmp / f"care_days_{APRIL}.csv", header, rows)


@pytest.mark.usefixtures("prefect_server")
def test_a_late_hospital_record_is_recovered_in_the_next_batch_not_by_editing_a_paid_one(
    backend: str, tmp_path: Path
) -> None:
    """南府规〔2023〕26号 三(三)3: days in hospital are not paid. A stay reported after March was paid is recovered
    (追回) in April's batch; March's batch and claim line stay as they were."""
    run_demo("nanning", MARCH, 11, SIZE)
    line = _paid_institutional_line()
    with session_scope() as s:
        march_batches = sorted((b.batch_ref, b.total_fen, b.status) for b in s.scalars(select(m.PaymentBatch)))
        grade = s.scalar(
            select(m.EligibilityDecision.grade).where(
                m.EligibilityDecision.person_id == line.person_id, m.EligibilityDecision.approved.is_(True)
            )
        )
    assert grade in DAILY_RATE_FEN
    # Admitted on the 10th, discharged on the 14th: the 11th to the 14th are hospital days (三(三)3).
    stays = _write(
        tmp_path / "late_stays.csv",
        ["person_id", "admitted_on", "discharged_on"],
        [[line.person_id, "2026-03-10", "2026-03-14"]],
    )
    assert load_file("hospital_stays", stays).accepted == 1
    recovered = 4 * DAILY_RATE_FEN[grade]

    bill_month("nanning", MARCH)
    bill_month("nanning", MARCH)  # billing again finds the same amount and adds nothing
    with session_scope() as s:
        (adj,) = s.scalars(select(m.ClaimAdjustment)).all()
        assert (adj.claim_line_id, adj.revision, adj.delta_fen) == (line.id, 1, -recovered)
        assert (adj.before_fen, adj.after_fen) == (line.payable_fen, line.payable_fen - recovered)
        again = s.get(m.ClaimLine, line.id)
        assert again is not None and again.payable_fen == line.payable_fen  # the paid line is not edited

    assert load_file("care_days", _april_care_days(line.provider_id, tmp_path)).quarantined == 0
    bill_month("nanning", APRIL)
    paid = pay_providers("nanning", APRIL)
    assert pay_providers("nanning", APRIL)["batches_created"] == 0  # a batch per payee and period, once
    assert paid["batches_created"] == 1
    with session_scope() as s:
        april_claims = s.scalar(
            select(func.sum(m.ClaimLine.payable_fen)).where(
                m.ClaimLine.period == APRIL, m.ClaimLine.provider_id == line.provider_id
            )
        )
        (batch,) = s.scalars(select(m.PaymentBatch).where(m.PaymentBatch.period == APRIL)).all()
        assert batch.payee_id == line.provider_id
        assert batch.total_fen == april_claims - recovered
        (recovery,) = s.scalars(select(m.PaymentLine).where(m.PaymentLine.adjustment_id == adj.id)).all()
        assert (recovery.batch_id, recovery.amount_fen, recovery.period) == (batch.id, -recovered, MARCH)
        assert (
            sorted(
                (b.batch_ref, b.total_fen, b.status)
                for b in s.scalars(select(m.PaymentBatch).where(m.PaymentBatch.period == MARCH))
            )
            == march_batches
        )
        advice = s.scalar(select(m.Notice).where(m.Notice.dedupe_key == f"remittance_advice:{batch.batch_ref}"))
        assert advice is not None and "追回" in advice.body and "2026年3月" in advice.body
        # 补发 and 追回 go through the ledger like any benefit.
        assert ledger.balance(s, "benefit_recovered", "nanning", APRIL) == -recovered
        assert ledger.balance(s, f"payable:{batch.payee_id}", "nanning", APRIL) == -batch.total_fen
    _posted_balanced()


def _batches(period: str) -> list[m.PaymentBatch]:
    with session_scope() as s:
        rows = list(s.scalars(select(m.PaymentBatch).where(m.PaymentBatch.period == period)))
        s.expunge_all()
    return sorted(rows, key=lambda b: b.batch_ref)


@pytest.mark.usefixtures("prefect_server")
def test_a_period_closes_only_when_the_bank_return_matches_every_batch(backend: str, tmp_path: Path) -> None:
    run_demo("nanning", MARCH, 13, SIZE)
    batches = _batches(MARCH)
    assert len(batches) >= 3
    header = ["batch_ref", "amount", "status", "value_date", "bank_reference", "reason"]

    def row(b: m.PaymentBatch, fen: int | None = None, status: str = "paid", reason: str = "") -> list[Any]:
        fen = b.total_fen if fen is None else fen
        return [b.batch_ref, f"{fen // 100}.{fen % 100:02d}", status, "2026-04-08", f"BK{b.id}", reason]

    first, second, third, *rest = batches
    broken = _write(
        tmp_path / "return-1.csv",
        header,
        [
            row(first, first.total_fen - 1),  # another amount
            row(second, status="failed", reason="账户已销户"),
            # the third is missing
            *[row(b) for b in rest],
            [f"nanning-{MARCH}-NOSUCH", "10.00", "paid", "2026-04-08", "BKX", ""],  # extra
            ["", "x", "maybe", "", "", ""],  # a bad row: quarantined, not a break
        ],
    )
    result = reconcile_payments("nanning", MARCH, str(broken))
    assert result["bank_return"] == {"received": len(rest) + 4, "accepted": len(rest) + 3, "quarantined": 1}
    assert sorted((b["batch_ref"], b["kind"]) for b in result["breaks"]) == sorted(
        [
            (first.batch_ref, "amount"),
            (second.batch_ref, "failed"),
            (third.batch_ref, "missing"),
            (f"nanning-{MARCH}-NOSUCH", "extra"),
        ]
    )
    assert not result["closed"]
    assert result["paid"] == len(rest) and result["paid_fen"] == sum(b.total_fen for b in rest)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(m.PeriodClose)) == 0
        # the bank paid only what matched
        paid_out = s.scalar(
            select(func.coalesce(func.sum(m.LedgerEntry.credit_fen), 0)).where(
                m.LedgerEntry.account == "bank", m.LedgerEntry.txn_ref.startswith("bank:")
            )
        )
        assert paid_out == sum(b.total_fen for b in rest)
        contributions = s.scalar(
            select(func.sum(m.Contribution.paid_fen))
            .join(m.Person, m.Person.person_id == m.Contribution.person_id)
            .where(m.Contribution.period == MARCH, m.Person.jurisdiction == "nanning")
        )
        assert -ledger.balance(s, "contribution_income", "nanning", MARCH) == (contributions or 0)
        statuses = {b.batch_ref: b.status for b in s.scalars(select(m.PaymentBatch))}
        assert statuses[second.batch_ref] == "failed" and statuses[third.batch_ref] == "created"
    _posted_balanced()

    clean = _write(tmp_path / "return-2.csv", header, [row(b) for b in batches])
    result = reconcile_payments("nanning", MARCH, str(clean))
    # The extra transfer is still in the bank's record of the period: the period stays open until it is resolved.
    assert [(b["kind"]) for b in result["breaks"]] == ["extra"] and not result["closed"]
    with session_scope() as s:
        s.execute(text("DELETE FROM bank_return WHERE batch_ref LIKE '%NOSUCH'"))  # the bank withdrew it
    result = reconcile_payments("nanning", MARCH)
    assert result["breaks"] == [] and result["closed"]
    assert result["paid"] == len(batches) and result["paid_fen"] == sum(b.total_fen for b in batches)
    assert reconcile_payments("nanning", MARCH) == result  # reconciling again changes nothing
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(m.PeriodClose)) == 1
        assert not s.scalars(select(m.ReconciliationBreak).where(m.ReconciliationBreak.resolved.is_(False))).all()
        # every batch paid once: what was payable to providers is settled
        assert ledger.trial_balance(s, "nanning", MARCH)["payable"] == 0
        assert ledger.balance(s, "benefit_expense", "nanning", MARCH) == sum(b.total_fen for b in batches)
    _posted_balanced()


@pytest.mark.usefixtures("prefect_server")
def test_a_payout_key_with_other_content_is_refused_and_nothing_is_written(backend: str) -> None:
    """A batch's reference is its payout's idempotency key, bound to a digest of what it pays. Paying the month
    again pays nothing twice; a batch whose lines were changed behind the record's back stops the bank file, and
    its posting cannot be made again with other content."""
    from tasks.payment import PayoutConflict, write_bank_file

    run_demo("nanning", MARCH, 13, SIZE)
    batches = _batches(MARCH)
    bank_file = Path(write_bank_file.fn("nanning", MARCH))
    before = bank_file.read_text(encoding="utf-8")
    assert pay_providers("nanning", MARCH)["batches_created"] == 0  # the same keys: nothing more
    assert bank_file.read_text(encoding="utf-8") == before
    first = batches[0]
    with session_scope() as s:
        line = s.scalars(select(m.PaymentLine).where(m.PaymentLine.batch_id == first.id).limit(1)).one()
        s.execute(text("UPDATE payment_line SET amount_fen = amount_fen + 100 WHERE id = :i"), {"i": line.id})
    bank_file.unlink()
    with pytest.raises(PayoutConflict, match=first.batch_ref):
        write_bank_file.fn("nanning", MARCH)
    assert not bank_file.exists()
    with pytest.raises(ledger.LedgerError, match="other content"), session_scope() as s:
        ledger.post(
            s,
            f"batch:{first.batch_ref}",
            "nanning",
            MARCH,
            [
                ledger.debit("benefit_expense", first.total_fen + 100),
                ledger.credit(f"payable:{first.payee_id}", first.total_fen + 100),
            ],
        )
