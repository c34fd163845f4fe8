"""Crash and resume: the monthly cycle (`flows.monthly_cycle`, what the schedule starts each month) killed with
SIGKILL in the middle of billing, payment or notice delivery, then run again, ends exactly where an uninterrupted
run ends: the claims worked out by hand from the files
(南府规〔2023〕26号 三(三)), one batch per payee, every claim line paid once, the ledger balanced, every notice
delivered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from test_pipeline import PERIOD, expected_claims

from common.settings import get_settings
from flows.monthly_cycle import monthly_cycle
from ltc.demo import DemoSize
from ltc.pipeline import prepare_demo
from storage import models as m
from storage.db import session_scope
from tasks import ledger

ROOT = Path(__file__).resolve().parent.parent
SIZE = DemoSize(insured=200, applicants=50, providers=3, agencies=2)
SEED = 17
# The monthly cycle in a process of its own, against the session's test server without flow-run heartbeats, as the
# tests' own flows are (conftest.py). The month it bills is made first, in the test's process (`prepare_demo`).
CYCLE = (
    "from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY as H, temporary_settings; "
    "from flows.monthly_cycle import monthly_cycle\n"
    "with temporary_settings(updates={H: None}):\n"
    f"    monthly_cycle('nanning', '{PERIOD}')"
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
    prepare_demo("nanning", PERIOD, SEED, SIZE)
    for point in FAILPOINTS:
        env = {**os.environ, "LTC_FAILPOINT": point, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
        killed = subprocess.run([sys.executable, "-c", CYCLE], env=env, cwd=ROOT, capture_output=True, timeout=900)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr.decode()[-3000:])
        with session_scope() as s:  # the kill left the month unfinished
            unfinished = s.scalar(select(func.count()).select_from(m.Notice).where(m.Notice.status != "sent"))
        assert unfinished, point
        assert_consistent_after_a_kill()

    monthly_cycle("nanning", PERIOD)
    assert_as_if_uninterrupted()


@pytest.mark.usefixtures("prefect_server")
def test_two_runs_of_the_same_month_at_once_give_one_result(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes run the month's cycle at the same time, as a redeploy or a late schedule would start them: both
    finish, and the record is that of one uninterrupted run (no part billed twice at once, no payee paid twice,
    no notice sent by both)."""
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("LTC_BILLING_PART_PERSONS", "40")
    prepare_demo("nanning", PERIOD, SEED, SIZE)
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", CYCLE], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outcomes = [(r.wait(timeout=900), r.stderr.read().decode() if r.stderr else "") for r in runs]
    for code, err in outcomes:
        assert code == 0, err[-3000:]
    assert_as_if_uninterrupted()
    with session_scope() as s:
        audit_batches = s.scalar(
            select(func.count()).select_from(m.AuditEntry).where(m.AuditEntry.action == "payment.batch")
        )
        batches = s.scalar(select(func.count()).select_from(m.PaymentBatch))
    assert audit_batches == batches  # each batch decided once, by one of the two runs


def _terminate_idle_transactions(database: str) -> int:
    """Cut the connections of the database's open, waiting transactions, as a network cut or a server restart
    would."""
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        rows = c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND state = 'idle in transaction' AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("point", ["billing.part.before_commit@2", "payment.batch.before_commit@2"])
def test_connection_cut_mid_commit_then_the_run_finishes(
    backend: str, point: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run stops inside a transaction that has written a part's claim lines (or a payee's batch) and is about
    to commit; PostgreSQL terminates its connection (pg_terminate_backend). The commit fails, nothing of it is
    kept, the task is retried on a new connection, and the run ends as an uninterrupted run."""
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("LTC_BILLING_PART_PERSONS", "40")
    prepare_demo("nanning", PERIOD, SEED, SIZE)
    marker = tmp_path / "paused"
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "LTC_FAILPOINT": f"{point}:pause",
        "LTC_FAILPOINT_MARKER": str(marker),
        "LTC_FAILPOINT_PAUSE": "60",
        "LTC_RETRY_DELAY_SECONDS": "0.5",
        "PREFECT_LOGGING_LEVEL": "INFO",  # the failed attempt and its retry are logged at INFO
    }
    run = subprocess.Popen(
        [sys.executable, "-c", CYCLE], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 600
    while not marker.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), (run.poll(), run.stderr.read().decode()[-3000:] if run.stderr else "")
    database = get_settings().database_url.rsplit("/", 1)[-1]
    assert _terminate_idle_transactions(database) >= 1
    marker.unlink()  # the paused run goes on, to its commit
    code = run.wait(timeout=900)
    err = run.stderr.read().decode() if run.stderr else ""
    assert code == 0, err[-3000:]
    out = (run.stdout.read().decode() if run.stdout else "") + err
    assert "terminating connection due to administrator command" in out  # the cut was seen by the commit ...
    assert "Retry 1/2" in out  # ... and the task was tried again
    assert_as_if_uninterrupted()
