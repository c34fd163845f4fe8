"""Pay providers: one payment batch per payee and period, then the bank file. Where the run requires it (as the
scheduled deployment does), the payout is first approved by an operator other than the one who started it."""

from __future__ import annotations

import os
from typing import Any

import polars as pl
from prefect import flow, get_run_logger
from prefect.flow_runs import pause_flow_run
from prefect.runtime import flow_run

from flows.naming import last_month, run_name
from tasks import audit
from tasks.approval import (
    PayoutApproval,
    announce_waiting,
    issue_codes,
    judge_answer,
    proposal_sha256,
    publish_proposal,
    record_approval,
)
from tasks.payment import create_batch, payable_to, unpaid_claims, write_bank_file
from tasks.reports import publish_payment_report

# How many answers a paused run takes (refused ones included) before it gives up and pays nothing.
MAX_ANSWERS = 5


def poll_seconds() -> float:
    """How often a payout waiting for approval looks whether it was answered (LTC_APPROVAL_POLL_SECONDS, 10)."""
    return float(os.environ.get("LTC_APPROVAL_POLL_SECONDS", "10"))


def approved(lines: pl.DataFrame, jurisdiction: str, period: str, started_by: str, timeout_hours: float) -> bool:
    """Send each approver on the roster their one-time code and pause for a decision; True once another person
    approves the proposal with their own valid code."""
    log = get_run_logger()
    digest = proposal_sha256(lines)
    publish_proposal(lines, jurisdiction, period)
    run_id = str(flow_run.get_id())
    codes = issue_codes(lines, jurisdiction, period, run_id, str(flow_run.get_name()), started_by, timeout_hours)
    for name, why in codes["failed"].items():
        log.error("the approval code for %s could not be delivered: %s", name, why)
    if not codes["issued"]:
        record_approval(jurisdiction, period, "no_approver", None, started_by, digest)
        log.error(
            "no approver on the roster other than %s: nothing paid (add one with `ltc approvers add`)", started_by
        )
        return False
    announce_waiting(codes)
    for _ in range(MAX_ANSWERS):
        log.warning(
            "payout %s %s (%s lines, digest %s) waits for approval by %s: resume this run in the Prefect UI with "
            "your name and the code you were sent",
            jurisdiction,
            period,
            lines.height,
            digest[:12],
            ", ".join(codes["issued"]),
        )
        # Prefect sleeps poll_interval with anyio, which takes any float, though it is annotated int.
        answer = pause_flow_run(  # type: ignore[call-overload]
            wait_for_input=PayoutApproval, timeout=int(timeout_hours * 3600), poll_interval=poll_seconds()
        )
        if answer is None:
            continue
        verdict = judge_answer(jurisdiction, period, run_id, digest, answer.model_dump(), started_by)
        if not verdict["accepted"]:
            log.error("answer refused: %s %s", answer.approver, verdict["reason"])
            continue
        if verdict["decision"] == "reject":
            log.error("payout %s %s rejected by %s: %s", jurisdiction, period, answer.approver, answer.comment)
        return bool(verdict["decision"] == "approve")
    log.error("payout %s %s: %s answers and none released it; nothing paid", jurisdiction, period, MAX_ANSWERS)
    return False


@flow(name="pay-providers", flow_run_name=run_name("pay {jurisdiction} {period}"))
def pay_providers(
    jurisdiction: str,
    period: str | None = None,
    require_approval: bool = False,
    started_by: str | None = None,
    approval_timeout_hours: float = 72,
) -> dict[str, Any]:
    """`require_approval`: pause for an operator's approval before any batch is made (the scheduled deployment
    sets it). `started_by` names who started the run (default `LTC_ACTOR`, else the OS user)."""
    period = period or last_month()
    lines, withheld = payable_to(unpaid_claims(jurisdiction, period), jurisdiction, period)
    for r in withheld.iter_rows(named=True):
        get_run_logger().warning(
            "claim line %s (%s) not paid: the pack pays no individual carer", r["claim_line_id"], r["provider_id"]
        )
    if require_approval and lines.height:
        who = started_by or audit.actor().split(" (flow run")[0]
        if not approved(lines, jurisdiction, period, who, approval_timeout_hours):
            return {"approval": "not given", "batches_created": 0, "lines_withheld": withheld.height}
        again, _ = payable_to(unpaid_claims(jurisdiction, period), jurisdiction, period)
        if proposal_sha256(again) != proposal_sha256(lines):
            get_run_logger().error("the payout changed while it waited for approval: nothing paid; run it again")
            return {"approval": "changed since", "batches_created": 0, "lines_withheld": withheld.height}
    groups = lines.partition_by("provider_id", as_dict=True, maintain_order=True)
    payees = [key[0] for key in groups]
    futures = create_batch.map(
        list(groups.values()), [str(p) for p in payees], jurisdiction=jurisdiction, period=period
    )
    created = [f.result() for f in futures]
    bank_file = write_bank_file(jurisdiction, period)
    new = [c for c in created if c]
    report = publish_payment_report(jurisdiction, period)
    return {
        "approval": "approved" if require_approval and lines.height else "not required",
        "batches_created": len(new),
        "lines_withheld": withheld.height,
        "bank_file": bank_file,
        "report": report,
    }
