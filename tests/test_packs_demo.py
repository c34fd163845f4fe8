"""`ltc demo --jurisdiction J` runs a full month for every pack, through Prefect, and a rerun pays nothing twice.
Jinjiang cannot bill without the grade rates its guideline sets: without an operator's values it stops, naming them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from common.formatting import yuan
from ltc.demo import PROFILES, DemoSize
from ltc.explain import explain
from ltc.pipeline import run_demo
from rules.engine import RulesError, load_pack, pack_ids
from storage import models as m
from storage.db import session_scope, upgrade
from tasks import ledger

SIZE = DemoSize(insured=240, applicants=40, providers=4, agencies=2)


def _state() -> tuple[object, ...]:
    with session_scope() as s:
        return (
            s.scalar(select(func.count()).select_from(m.ClaimLine)),
            s.scalar(select(func.sum(m.ClaimLine.payable_fen))),
            sorted((b.batch_ref, b.total_fen) for b in s.scalars(select(m.PaymentBatch))),
            s.scalar(select(func.count()).select_from(m.Notice)),
        )


def test_every_pack_has_a_demo_profile() -> None:
    assert sorted(PROFILES) == pack_ids()


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("pack_id", pack_ids())
def test_demo_month_for_each_pack(pack_id: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTC_HOME", str(tmp_path))
    monkeypatch.setenv("LTC_DATABASE_URL", f"sqlite:///{tmp_path}/ltc.db")
    monkeypatch.delenv("LTC_RULES_OVERRIDES", raising=False)
    monkeypatch.setenv("LTC_BILLING_PART_PERSONS", "80")  # bill in parts of whole persons, one Prefect task each
    upgrade()
    period = PROFILES[pack_id].period
    summary = run_demo(pack_id, period, 3, SIZE)
    pack = load_pack(pack_id)
    assert summary["claim_lines"] > 0 and summary["payable_fen"] > 0
    assert summary["batch_total_fen"] == summary["payable_fen"]
    assert summary["approved"] > 0 and summary["denied"] > 0
    notes = "\n".join(summary["notes"])
    assert pack.document in notes
    if PROFILES[pack_id].overrides:
        assert "values supplied by the operator" in notes
    with session_scope() as s:
        drafts = {c.policy_draft for c in s.scalars(select(m.ClaimLine))}
        decisions = {d.policy_draft for d in s.scalars(select(m.EligibilityDecision))}
        pending = s.scalar(select(func.count()).where(m.Notice.status != "sent"))
        bodies = [n.body for n in s.scalars(select(m.Notice).where(m.Notice.kind == "monthly_statement"))]
        fees = s.execute(select(m.Assessment.fee_fen, m.Assessment.fee_fund_fen, m.Assessment.fee_applicant_fen)).all()
        fee_expense = ledger.balance(s, "assessment_fee_expense", pack_id)
        e = m.LedgerEntry
        agencies = [f"payable:{a}" for a in s.scalars(select(m.Agency.agency_id))]
        owed_to_agencies = s.scalar(select(func.sum(e.credit_fen - e.debit_fen)).where(e.account.in_(agencies)))
        unbalanced = ledger.unbalanced(s)
        counted = [(d.facts, d.application_id) for d in s.scalars(select(m.EligibilityDecision))]
        decided = {
            n.dedupe_key.split(":")[1]: n.body
            for n in s.scalars(select(m.Notice).where(m.Notice.kind == "eligibility_decision"))
        }
    # Jilin 二(六): every decision says the continuous years it counted, and a waiting period's length where one
    # applies, in the record and in its notice; the other packs count neither.
    for facts, application in counted:
        if pack_id == "jilin":
            assert f"连续参保年数：{facts['continuous_years']}年" in decided[application]
            if "waiting_days" in facts:
                assert f"待遇等待期：{facts['waiting_days']}天" in decided[application]
        else:
            assert facts == {} and "连续参保年数" not in decided[application]
    # Each fee is split between the fund and the applicant; a pack's fee ceiling (Banan 300) can leave the part
    # above it unpaid by either.
    assert fees and all(fund is not None and 0 < fund + own <= fee for fee, fund, own in fees)
    # The fund's share is an expense, owed to the agencies until paid.
    assert fee_expense == owed_to_agencies == sum(fund for _, fund, _ in fees)
    assert unbalanced == []
    assert drafts == decisions == {pack.draft}
    assert pending == 0
    assert all(("征求意见稿" in b) == pack.draft for b in bodies) and bodies
    with session_scope() as s:
        paid = s.scalars(select(m.ClaimLine).where(m.ClaimLine.payable_fen > 0).limit(1)).one()
    trace = explain(paid.person_id, period)
    assert pack.document in trace and f"fund pays {yuan(paid.payable_fen)}" in trace
    assert "rule billing." in trace  # every amount traces to cited parameters
    assert ("[DRAFT POLICY]" in trace) == pack.draft
    before = _state()
    run_demo(pack_id, period, 3, SIZE)
    assert _state() == before


def test_jinjiang_bills_nothing_without_the_guideline_rates(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTC_RULES_OVERRIDES", str(tmp_path))  # an empty override folder
    pack = load_pack("jinjiang")
    with pytest.raises(RulesError, match="晋江市长期护理保险待遇服务内容及标准实施指导意见"):
        pack.param("billing.daily_rate.institutional.grade_3").at(pack.valid_from)
