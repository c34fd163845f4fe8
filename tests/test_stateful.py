"""Random sequences of load / bill / pay / reverse (a late record against a paid month) / crash-and-restart, on
both backends, with the invariants checked after every step (hypothesis stateful testing).

After any step, whatever came before (crashes included):
- no (payee, period) has two batches; each batch equals its lines; no claim line or adjustment is paid twice;
- the ledger balances, its benefit expense net of recoveries equals what the batches pay, and what is owed to
  each payee equals its batches;
- for every claim line, what was paid plus what waits to be paid equals what the line is now worth;
- every batch has its remittance advice in the outbox.
After billing every loaded month: every claim is worth what the rules give on the record as it now stands.

A crash is an exception thrown at one of the fail points (inside the transaction of a billing part or a
payment batch, or just after it commits), then the same step is run again; a transaction cut by the crash is
rolled back by the database, as it is when the process is killed (tests/test_faults.py does that with SIGKILL).
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from flows.decide_eligibility import decide_eligibility
from flows.record_assessments import record_assessments
from flows.schedule_assessments import schedule_assessments
from ltc.demo import DemoSize, month_files, registry_files, results_file
from rules.engine import period_bounds
from storage import models as m
from storage.db import get_engine, session_scope, upgrade
from tasks import billing, ledger, payment
from tasks.intake import load_file

PACK, SEED = "nanning", 23
PERIODS = ("2026-03", "2026-04")
SIZE = DemoSize(insured=160, applicants=36, providers=3, agencies=2)
PART_PERSONS = 40
POINTS = {
    "bill": ("billing.part.before_commit", "billing.part.committed"),
    "pay": ("payment.batch.before_commit", "payment.batch.committed"),
}


class Crash(BaseException):
    """The process dies here: nothing after this point runs, no handler catches it."""


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _build_template(folder: Path) -> dict[str, dict[str, Path]]:
    """A pooling area with decided applications, and each month's files (care days, stays, deaths, a late
    hospital record), written but not loaded."""
    files = registry_files(folder, PACK, PERIODS[0], SIZE, SEED)
    for kind in ("persons", "providers", "agencies", "assessors", "contributions", "applications"):
        load_file(kind, files[kind])
    schedule_assessments(PACK)
    record_assessments(str(results_file(folder, PACK, SEED)), PACK)
    decide_eligibility(PACK, period_bounds(PERIODS[0])[0] - dt.timedelta(days=1))
    months = {}
    for period in PERIODS:
        month = month_files(folder / period, PACK, period, SEED + int(period[-2:]))
        care = _rows(month["care_days"])
        institutional = sorted({r["person_id"] for r in care if r["care_mode"] == "institutional"})
        late = folder / period / "late_stay.csv"
        with late.open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["person_id", "admitted_on", "discharged_on"])
            for person in institutional[:3]:
                w.writerow([person, f"{period}-19", f"{period}-26"])
        months[period] = {**month, "late": late}
    return months


def _fail_at(point: str, nth: int) -> Callable[[str], None]:
    seen = {"n": 0}

    def failpoint(name: str) -> None:
        if name == point:
            seen["n"] += 1
            if seen["n"] == nth:
                raise Crash(point)

    return failpoint


def _bill(period: str) -> None:
    since = time.time()
    for part in billing.plan_parts.fn(PACK, period, PART_PERSONS):
        billing.bill_part.fn(PACK, period, part, since=since)


def _pay(period: str) -> None:
    lines, _ = payment.payable_to.fn(payment.unpaid_claims.fn(PACK, period), PACK, period)
    for (payee,), group in lines.partition_by("provider_id", as_dict=True, maintain_order=True).items():
        payment.create_batch.fn(group, str(payee), PACK, period)


def _worth_now(period: str) -> dict[tuple[str, str, str], int]:
    """What the rules give for the period on the record as it stands (the pack's formula on the whole month)."""
    with session_scope() as s:
        claims = billing.compute_claims(billing.read_inputs(s, PACK, period), PACK, period)
    return {(r["person_id"], r["provider_id"], r["care_mode"]): r["payable_fen"] for r in claims.iter_rows(named=True)}


class Month(RuleBasedStateMachine):
    template: Callable[[], Iterator[None]]
    months: dict[str, dict[str, Path]]
    monkeypatch: pytest.MonkeyPatch

    def __init__(self) -> None:
        super().__init__()
        self.loaded: set[str] = set()
        self.corrected: set[str] = set()
        self.billed: set[str] = set()
        self._example = type(self).template()
        next(self._example)

    def teardown(self) -> None:
        next(self._example, None)

    @initialize()
    def first_month(self) -> None:
        self.load(PERIODS[0])

    @rule(period=st.sampled_from(PERIODS))
    def load(self, period: str) -> None:
        month = self.months[period]
        if period not in self.loaded:
            load_file("persons", month["deaths"])
            load_file("hospital_stays", month["hospital_stays"])
        report = load_file("care_days", month["care_days"])  # a file sent twice loads as once
        assert report.received == report.accepted + report.quarantined and report.quarantined == 4
        self.loaded.add(period)
        self.billed.clear()  # a month's deaths and stays can change what another month is worth

    @precondition(lambda self: self.loaded - self.corrected)
    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        """A late hospital record for a month that may be paid: billing again reverses what it overpaid."""
        period = data.draw(st.sampled_from(sorted(self.loaded - self.corrected)))
        assert load_file("hospital_stays", self.months[period]["late"]).quarantined == 0
        self.corrected.add(period)
        self.billed.clear()

    @precondition(lambda self: self.loaded)
    @rule(data=st.data())
    def bill(self, data: st.DataObject) -> None:
        period = data.draw(st.sampled_from(sorted(self.loaded)))
        _bill(period)
        self.billed.add(period)

    @precondition(lambda self: self.loaded)
    @rule(data=st.data())
    def pay(self, data: st.DataObject) -> None:
        _pay(data.draw(st.sampled_from(sorted(self.loaded))))

    @precondition(lambda self: self.loaded)
    @rule(data=st.data())
    def bill_and_pay(self, data: st.DataObject) -> None:
        """The month's run: bill, then pay."""
        period = data.draw(st.sampled_from(sorted(self.loaded)))
        _bill(period)
        self.billed.add(period)
        _pay(period)

    @precondition(lambda self: self.loaded)
    @rule(data=st.data(), step=st.sampled_from(sorted(POINTS)), after=st.booleans(), nth=st.integers(1, 3))
    def crash_then_restart(self, data: st.DataObject, step: str, after: bool, nth: int) -> None:
        period = data.draw(st.sampled_from(sorted(self.loaded)))
        point = POINTS[step][after]
        module = billing if step == "bill" else payment
        run = _bill if step == "bill" else _pay
        with self.monkeypatch.context() as mp:
            mp.setattr(module, "failpoint", _fail_at(point, nth))
            try:
                run(period)
            except Crash:
                pass
        run(period)  # started again
        if step == "bill":
            self.billed.add(period)

    @invariant()
    def never_paid_twice_and_the_books_agree(self) -> None:
        with session_scope() as s:
            keys = s.execute(select(m.PaymentBatch.payee_id, m.PaymentBatch.period)).all()
            assert len(keys) == len(set(keys))
            batches = {b.id: b for b in s.scalars(select(m.PaymentBatch))}
            lines = s.execute(
                select(
                    m.PaymentLine.batch_id,
                    m.PaymentLine.claim_line_id,
                    m.PaymentLine.adjustment_id,
                    m.PaymentLine.amount_fen,
                )
            ).all()
            for b in batches.values():
                assert sum(a for i, _, _, a in lines if i == b.id) == b.total_fen
            paid_claims = [c for _, c, _, _ in lines if c is not None]
            paid_adjustments = [a for _, _, a, _ in lines if a is not None]
            assert len(paid_claims) == len(set(paid_claims)) and len(paid_adjustments) == len(set(paid_adjustments))
            assert ledger.unbalanced(s) == []
            total = sum(b.total_fen for b in batches.values())
            net = ledger.balance(s, "benefit_expense", PACK) + ledger.balance(s, "benefit_recovered", PACK)
            assert net == total
            for payee in {b.payee_id for b in batches.values()}:
                owed = -ledger.balance(s, f"payable:{payee}", PACK)
                assert owed == sum(b.total_fen for b in batches.values() if b.payee_id == payee)
            remittances = s.scalar(
                select(func.count()).select_from(m.Notice).where(m.Notice.kind == "remittance_advice")
            )
            assert remittances == len(batches)

            # Paid plus waiting equals what each claim line is worth now.
            by_claim = {c: a for _, c, _, a in lines if c is not None}
            by_adjustment = {a: amt for _, _, a, amt in lines if a is not None}
            adjustments = s.execute(
                select(m.ClaimAdjustment.id, m.ClaimAdjustment.claim_line_id, m.ClaimAdjustment.delta_fen)
            ).all()
            for c in s.scalars(select(m.ClaimLine)):
                own = [(i, d) for i, cl, d in adjustments if cl == c.id]
                worth = c.payable_fen + sum(d for _, d in own)
                paid = by_claim.get(c.id, 0) + sum(by_adjustment.get(i, 0) for i, _ in own)
                waiting = (0 if c.id in by_claim else c.payable_fen) + sum(d for i, d in own if i not in by_adjustment)
                assert paid + waiting == worth, (c.person_id, c.period, paid, waiting, worth)
                if c.id in by_claim:
                    assert by_claim[c.id] == c.payable_fen

    @invariant()
    def billed_months_are_worth_what_the_rules_give_now(self) -> None:
        for period in sorted(self.billed):
            with session_scope() as s:
                lines = s.scalars(select(m.ClaimLine).where(m.ClaimLine.period == period)).all()
                deltas = dict(
                    s.execute(
                        select(m.ClaimAdjustment.claim_line_id, func.sum(m.ClaimAdjustment.delta_fen))
                        .where(m.ClaimAdjustment.period == period)
                        .group_by(m.ClaimAdjustment.claim_line_id)
                    ).all()
                )
            recorded = {(c.person_id, c.provider_id, c.care_mode): c.payable_fen + deltas.get(c.id, 0) for c in lines}
            expected = _worth_now(period)
            assert {k: v for k, v in recorded.items() if v or k in expected} == expected, period


def _sqlite_template(base: Path) -> Callable[[], Iterator[None]]:
    template = base / "template.db"

    def example() -> Iterator[None]:
        home = base / uuid.uuid4().hex[:12]
        home.mkdir()
        db = home / "ltc.db"
        shutil.copyfile(template, db)
        os.environ["LTC_HOME"], os.environ["LTC_DATABASE_URL"] = str(home), f"sqlite:///{db}"
        try:
            yield
        finally:
            get_engine().dispose()
            shutil.rmtree(home, ignore_errors=True)

    os.environ["LTC_DATABASE_URL"] = f"sqlite:///{template}"
    return example


def _postgres_template(base: Path) -> Callable[[], Iterator[None]]:
    from conftest import _drop_pg_database, _fresh_pg_database

    name = _fresh_pg_database()
    os.environ["LTC_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"

    def example() -> Iterator[None]:
        import psycopg

        copy = f"ltc_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{name}"')
        home = base / copy
        home.mkdir()
        os.environ["LTC_HOME"] = str(home)
        os.environ["LTC_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{copy}"
        try:
            yield
        finally:
            get_engine().dispose()
            _drop_pg_database(copy)

    example.drop = lambda: _drop_pg_database(name)  # type: ignore[attr-defined]
    return example


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_random_sequences_keep_the_invariants(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTC_ID_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
    monkeypatch.setenv("LTC_HOME", str(tmp_path / "template-home"))
    monkeypatch.setenv("LTC_DATABASE_URL", "")
    example = _sqlite_template(tmp_path) if backend == "sqlite" else _postgres_template(tmp_path)
    try:
        upgrade()
        months = _build_template(tmp_path / "files")
        get_engine().dispose()  # the template is copied while no one is connected to it
        Month.template = staticmethod(example)  # type: ignore[assignment]
        Month.months = months
        Month.monkeypatch = monkeypatch
        run_state_machine_as_test(
            Month,
            settings=settings(
                max_examples=int(os.environ.get("LTC_STATEFUL_EXAMPLES", "8")),
                stateful_step_count=10,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,
            ),
        )
    finally:
        if hasattr(example, "drop"):
            example.drop()
