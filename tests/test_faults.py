"""Crash and resume: the monthly cycle killed with SIGKILL in the middle of billing, payment or notice delivery,
then run again, ends exactly where an uninterrupted run ends: the claims worked out by hand from the files
(南府规〔2023〕26号 三(三)), one batch per payee, every claim line paid once, the ledger balanced, every notice
delivered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from test_pipeline import PERIOD, expected_claims

from ltc.demo import DemoSize
from ltc.pipeline import run_demo
from ltc.settings import get_settings
from storage import models as m
from storage.db import session_scope
from tasks import ledger

ROOT = Path(__file__).resolve().parent.parent
SIZE = DemoSize(insured=200, applicants=50, providers=3, agencies=2)
SEED = 17
DEMO = (
    "from ltc.demo import DemoSize; from ltc.pipeline import run_demo; "
    f"run_demo('nanning', '{PERIOD}', {SEED}, DemoSize(insured={SIZE.insured}, applicants={SIZE.applicants}, "
    f"providers={SIZE.providers}, agencies={SIZE.agencies}))"
)
# Where the runs are killed, in turn: inside a part's billing transaction; after the second part committed; inside a
# payee's batch transaction; after the second batch committed; after a notice left but before it was recorded.
FAILPOINTS = [
    "billing.part.before_commit",
    "billing.part.committed@2",
    "payment.batch.before_commit",
    "payment.batch.committed@2",
    "notices.sent.before_record@3",
]


def assert_as_if_uninterrupted() -> None:
    folder = get_settings().demo_dir / "nanning"
    expected = expected_claims(folder)
    with session_scope() as s:
        claims = {(c.person_id, c.provider_id, c.care_mode): c.payable_fen for c in s.scalars(select(m.ClaimLine))}
        assert claims == expected
        batches = s.scalars(select(m.PaymentBatch)).all()
        paying = {p for (_, p, _), v in expected.items() if v > 0}
        assert sorted(b.payee_id for b in batches) == sorted(paying)  # one batch per payee
        assert sum(b.total_fen for b in batches) == sum(expected.values())
        lines = s.execute(select(m.PaymentLine.batch_id, m.PaymentLine.amount_fen)).all()
        assert len(lines) == sum(v > 0 for v in expected.values())  # every line with an amount paid, once
        for b in batches:
            assert sum(a for i, a in lines if i == b.id) == b.total_fen
        assert ledger.unbalanced(s) == []
        assert ledger.balance(s, "benefit_expense", "nanning") == sum(expected.values())
        notices = s.scalar(select(func.count()).select_from(m.Notice))
        sent = s.scalar(select(func.count()).select_from(m.Notice).where(m.Notice.status == "sent"))
        assert notices == sent > 0
        remittances = s.scalar(select(func.count()).select_from(m.Notice).where(m.Notice.kind == "remittance_advice"))
        assert remittances == len(batches)
    assert len(list(get_settings().outbox_dir.iterdir())) == notices


def assert_consistent_after_a_kill() -> None:
    """What must hold at any instant: no payee paid twice for a period, every batch equal to its lines, every
    posting balanced."""
    with session_scope() as s:
        keys = s.execute(select(m.PaymentBatch.payee_id, m.PaymentBatch.period)).all()
        assert len(keys) == len(set(keys))
        for b in s.scalars(select(m.PaymentBatch)):
            lines = s.scalar(select(func.sum(m.PaymentLine.amount_fen)).where(m.PaymentLine.batch_id == b.id))
            assert lines == b.total_fen
        assert ledger.unbalanced(s) == []


@pytest.mark.usefixtures("prefect_server")
def test_killed_at_each_point_then_run_again_ends_as_an_uninterrupted_run(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each run is killed at the next point, starting from what the kill before left; the last run is not."""
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("LTC_BILLING_PART_PERSONS", "40")
    for point in FAILPOINTS:
        env = {**os.environ, "LTC_FAILPOINT": point, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
        killed = subprocess.run([sys.executable, "-c", DEMO], env=env, cwd=ROOT, capture_output=True, timeout=900)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr.decode()[-3000:])
        with session_scope() as s:  # the kill left the month unfinished
            unfinished = s.scalar(select(func.count()).select_from(m.Notice).where(m.Notice.status != "sent"))
        assert unfinished, point
        assert_consistent_after_a_kill()

    run_demo("nanning", PERIOD, SEED, SIZE)
    assert_as_if_uninterrupted()
