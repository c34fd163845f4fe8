"""Payout approval in the Prefect UI's place: the payment run pauses for a typed decision; a rejection pays
nothing and keeps its reason; the person who started the run cannot approve it; another person's approval pays
exactly the proposal; every decision is in the audit log."""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, select

from flows.bill_month import bill_month
from flows.pay_providers import pay_providers
from ltc.demo import DemoSize, month_files
from ltc.pipeline import run_demo
from ltc.settings import get_settings
from storage import models as m
from storage.db import session_scope
from tasks.intake import load_file

MARCH, APRIL = "2026-03", "2026-04"


def _paused_run(name: str, seen: set[UUID]) -> UUID:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        for _ in range(300):
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    name=FlowRunFilterName(any_=[name]),
                    state=dict(type=FlowRunFilterStateType(any_=[StateType.PAUSED])),
                )
            )
            fresh = [r for r in runs if (r.id, r.state and r.state.timestamp) not in seen]
            if fresh:
                seen.add((fresh[0].id, fresh[0].state and fresh[0].state.timestamp))  # type: ignore[arg-type]
                return fresh[0].id
            time.sleep(0.5)
    raise AssertionError(f"no paused run {name}")


def _in_background(**kwargs: Any) -> tuple[threading.Thread, list[dict[str, Any]]]:
    out: list[dict[str, Any]] = []
    t = threading.Thread(target=lambda: out.append(pay_providers("nanning", APRIL, **kwargs)), daemon=True)
    t.start()
    return t, out


def _audit(prefix: str) -> list[tuple[str, dict[str, Any]]]:
    with session_scope() as s:
        return [
            (e.action, json.loads(e.detail) if isinstance(e.detail, str) else e.detail)
            for e in s.scalars(
                select(m.AuditEntry).where(m.AuditEntry.action.startswith(prefix)).order_by(m.AuditEntry.id)
            )
        ]


def _april_batches() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(m.PaymentBatch).where(m.PaymentBatch.period == APRIL)) or 0


@pytest.mark.usefixtures("prefect_server")
def test_payout_waits_for_another_persons_approval(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.flow_runs import resume_flow_run

    monkeypatch.setenv("LTC_APPROVAL_POLL_SECONDS", "1")
    run_demo("nanning", MARCH, 6, DemoSize(insured=200, applicants=30, providers=3, agencies=2))
    april = month_files(get_settings().demo_dir / "nanning" / APRIL, "nanning", APRIL, 6)
    load_file("care_days", april["care_days"])
    bill_month("nanning", APRIL)
    seen: set[Any] = set()

    # Rejected: nothing is paid, the reason is kept.
    thread, out = _in_background(require_approval=True, started_by="wang")
    resume_flow_run(
        _paused_run("pay nanning 2026-04", seen),
        run_input={"decision": "reject", "approver": "li", "comment": "H001 的护理记录待核实"},
    )
    thread.join(timeout=120)
    assert out and out[0]["approval"] == "not given" and out[0]["batches_created"] == 0
    assert _april_batches() == 0
    (action, detail), *_ = _audit("payment.approval")
    assert action == "payment.approval.reject"
    assert (
        detail["approver"] == "li" and detail["comment"] == "H001 的护理记录待核实" and detail["started_by"] == "wang"
    )

    # The person who started the run cannot approve it; another person can, and the proposal is paid.
    thread, out = _in_background(require_approval=True, started_by="wang")
    run = _paused_run("pay nanning 2026-04", seen)
    resume_flow_run(run, run_input={"decision": "approve", "approver": "Wang", "comment": "自己批准"})
    resume_flow_run(_paused_run("pay nanning 2026-04", seen), run_input={"decision": "approve", "approver": "zhao"})
    thread.join(timeout=120)
    assert out and out[0]["approval"] == "approved" and out[0]["batches_created"] > 0
    assert _april_batches() == out[0]["batches_created"]
    actions = [a for a, _ in _audit("payment.approval")]
    assert actions == ["payment.approval.reject", "payment.approval.refused", "payment.approval.approve"]
    digests = {d["proposal_sha256"] for _, d in _audit("payment.approval")}
    assert len(digests) == 1  # all three decisions were on the same proposal
