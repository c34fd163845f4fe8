"""Payout approval, four eyes, in the Prefect UI's place: the payment run sends each approver on the roster a
one-time code through their channel and pauses for a typed decision. The person who started the run, a name not
on the roster, a wrong, reused, expired or another approver's code are refused; a rejection pays nothing; another
rostered approver's valid code pays exactly the proposal, once; every answer is in the audit log."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, select, update

from common.settings import get_settings
from flows.bill_month import bill_month
from flows.pay_providers import pay_providers
from ltc.demo import DemoSize, month_files
from ltc.pipeline import run_demo
from storage import models as m
from storage.db import session_scope
from tasks.approval import add_approver, judge_answer
from tasks.intake import load_file

MARCH, APRIL = "2026-03", "2026-04"


def _paused_run(name: str, seen: set[UUID]) -> UUID:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        for _ in range(750):
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
            time.sleep(0.2)
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


CODE = re.compile(r"[2-9A-HJ-NP-Z]{5}-[2-9A-HJ-NP-Z]{5}")


def own_outbox(name: str) -> str:
    """An approver's channel of their own here: a file outbox folder that is theirs alone."""
    return f"outbox://localhost{(get_settings().home / 'approvers' / name).resolve()}"


def code_for(name: str) -> str:
    """The newest approval code delivered to an approver, in their own outbox folder."""
    files = sorted(
        (get_settings().home / "approvers" / name).glob(f"*-payout_approval-{name}.txt"),
        key=lambda p: int(p.name.split("-")[0]),
    )
    assert files, f"no approval code was delivered to {name}"
    found = CODE.findall(files[-1].read_text(encoding="utf-8"))
    assert len(found) == 1, files[-1]
    return found[0]


def _answer(run: UUID, approver: str, code: str, decision: str = "approve", comment: str = "") -> None:
    from prefect.flow_runs import resume_flow_run

    resume_flow_run(run, run_input={"decision": decision, "approver": approver, "code": code, "comment": comment})


def _refusals() -> list[str]:
    return [d["refused"] for a, d in _audit("payment.approval") if a == "payment.approval.refused"]


def april_billed(seed: int, size: DemoSize) -> None:
    """A demo March, paid, then April's care days loaded and billed, not yet paid."""
    run_demo("nanning", MARCH, seed, size)
    april = month_files(get_settings().demo_dir / "nanning" / APRIL, "nanning", APRIL, seed)
    load_file("care_days", april["care_days"])
    bill_month("nanning", APRIL)


@pytest.mark.usefixtures("prefect_server")
def test_only_another_rostered_approver_with_their_own_code_releases_the_payout(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LTC_APPROVAL_POLL_SECONDS", "0.25")
    april_billed(6, DemoSize(insured=200, applicants=30, providers=3, agencies=2))
    with session_scope() as s:
        for name, role in [("Li", "基金财务科科长"), ("zhao", "稽核科"), ("wang", "待遇审核科")]:
            add_approver(s, name, role, own_outbox(name.lower()))
    seen: set[Any] = set()

    # First run, started by wang (on the roster too: he is sent no code for his own run).
    thread, out = _in_background(require_approval=True, started_by="wang")
    run = _paused_run("pay nanning 2026-04", seen)
    li, zhao = code_for("li"), code_for("zhao")
    assert li != zhao and not list(get_settings().home.glob("**/*-payout_approval-wang.txt"))
    assert not list(get_settings().outbox_dir.glob("*-payout_approval-*"))  # nothing in the shared outbox
    _answer(run, "Wang", li, comment="自己批准")  # the one who started it
    _answer(_paused_run("pay nanning 2026-04", seen), "zhang", zhao)  # not on the roster
    _answer(_paused_run("pay nanning 2026-04", seen), "li", "ABCDE-FGHJK")  # a wrong code
    _answer(_paused_run("pay nanning 2026-04", seen), "li", zhao)  # another approver's code: refused and spent
    assert _april_batches() == 0
    _answer(_paused_run("pay nanning 2026-04", seen), " LI ", li, "reject", "H001 的护理记录待核实")
    thread.join(timeout=120)
    assert out and out[0]["approval"] == "not given" and out[0]["batches_created"] == 0
    assert _april_batches() == 0
    assert _refusals() == [
        "started this run and cannot approve its payout",
        "is not on the roster of approvers",
        "gave a code that is not a code for this run's proposal",
        "gave the code of another approver (zhao); that code is now spent",
    ]
    action, detail = _audit("payment.approval")[-1]
    assert action == "payment.approval.reject" and detail["comment"] == "H001 的护理记录待核实"
    assert detail["started_by"] == "wang" and detail["approver"] == " LI "
    first_run = str(run)
    # A code, once used, is spent.
    again = judge_answer.fn(
        "nanning",
        APRIL,
        first_run,
        detail["proposal_sha256"],
        {"approver": "li", "code": li, "decision": "approve"},
        "wang",
    )
    assert again == {
        "accepted": False,
        "decision": "approve",
        "approver": "li",
        "reason": "gave a code that was already used",
    }

    # Second run: earlier codes are of no use, an expired code neither; li's new code pays, once.
    thread, out = _in_background(require_approval=True, started_by="wang")
    run = _paused_run("pay nanning 2026-04", seen)
    li2, zhao2 = code_for("li"), code_for("zhao")
    assert {li2, zhao2}.isdisjoint({li, zhao})
    _answer(run, "zhao", zhao)  # last run's code
    with session_scope() as s:
        s.execute(
            update(m.ApprovalCode)
            .where(m.ApprovalCode.flow_run_id == str(run), m.ApprovalCode.approver == "zhao")
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        )
    _answer(_paused_run("pay nanning 2026-04", seen), "zhao", zhao2)  # expired
    assert _april_batches() == 0
    _answer(_paused_run("pay nanning 2026-04", seen), "li", li2.lower().replace("-", " "), comment="核对无误")
    thread.join(timeout=120)
    assert out and out[0]["approval"] == "approved" and out[0]["batches_created"] > 0
    assert _april_batches() == out[0]["batches_created"]
    assert _refusals()[4:] == [
        "gave a code that was already used",
        "gave a code that is not a code for this run's proposal",
        "gave a code that has expired",
    ]
    assert _audit("payment.approval")[-1][0] == "payment.approval.approve"
    digests = {d["proposal_sha256"] for _, d in _audit("payment.approval")}
    assert len(digests) == 1  # every answer was on the same proposal

    # Paid once: a third run finds nothing to pay and asks no one.
    assert pay_providers("nanning", APRIL, require_approval=True, started_by="wang")["batches_created"] == 0
    assert _april_batches() == out[0]["batches_created"]

    # The codes are nowhere in the record: hashed in approval_code, masked in the notices' copy.
    with session_scope() as s:
        kept = " ".join(
            [
                *s.scalars(select(m.ApprovalCode.code_hash)),
                *s.scalars(select(m.Notice.body)),
                *s.scalars(select(m.AuditEntry.detail)),
            ]
        )
        statuses = set(s.scalars(select(m.Notice.status).where(m.Notice.kind == "payout_approval")))
    assert statuses == {"sent"}
    for code in (li, zhao, li2, zhao2):
        assert code not in kept and code.replace("-", "") not in kept


@pytest.mark.usefixtures("prefect_server")
def test_no_approver_on_the_roster_pays_nothing(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTC_APPROVAL_POLL_SECONDS", "0.25")
    april_billed(7, DemoSize(insured=120, applicants=20, providers=2, agencies=1))
    with session_scope() as s:
        add_approver(s, "wang", "待遇审核科", own_outbox("wang"))  # only the person who starts the run
    out = pay_providers("nanning", APRIL, require_approval=True, started_by="wang")
    assert out["approval"] == "not given" and out["batches_created"] == 0 and _april_batches() == 0
    assert [a for a, _ in _audit("payment.approval")][-1] == "payment.approval.no_approver"


def test_an_approver_needs_a_channel_of_their_own(backend: str) -> None:
    """Codes never go where the person who starts a run can read them: no channel, or the shared file outbox, is
    refused when an approver is added."""
    from tasks.approval import RosterError

    shared = get_settings().default_notify_url
    with session_scope() as s:
        for channel in (None, "", shared, f"{shared}/"):
            with pytest.raises(RosterError):
                add_approver(s, "li", "基金财务科科长", channel)
        assert add_approver(s, "li", "基金财务科科长", "env:LI_MAIL").notify_url == "env:LI_MAIL"
