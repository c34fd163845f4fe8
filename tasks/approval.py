"""Payout approval: before the month's batches are made, an operator approves or rejects what would be paid.

The proposal (every payee's lines and total) is published as a Prefect artifact and bound to a digest; the flow
pauses for a typed input in the Prefect UI (`PayoutApproval`). The approver cannot be the person who started the
run. Every decision, and every refused answer, is appended to the audit log with the proposal's digest; a
rejection pays nothing and keeps its reason there. Batches are made only for the proposal that was approved."""

from __future__ import annotations

from typing import Any, Literal

import polars as pl
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.input import RunInput

from ltc.formatting import yuan
from storage.db import session_scope
from tasks import audit
from tasks.reports import artifact_key, markdown_table


class PayoutApproval(RunInput):
    """The operator's decision on a month's payout."""

    decision: Literal["approve", "reject"]
    approver: str
    comment: str = ""


def proposal_sha256(lines: pl.DataFrame) -> str:
    """The digest of a payout proposal: every line (payee, claim line or adjustment, fen), in a fixed order."""
    columns = lines.select("provider_id", "claim_line_id", "adjustment_id", "payable_fen")
    return audit.content_sha256(
        sorted((str(p), int(c or 0), int(a or 0), int(f)) for p, c, a, f in columns.iter_rows())
    )


@task(cache_policy=NO_CACHE)
def publish_proposal(lines: pl.DataFrame, jurisdiction: str, period: str) -> str:
    """The proposal as an artifact for the approver: each payee's lines and total (internal ids only)."""
    by_payee = (
        lines.group_by("provider_id")
        .agg(pl.len().alias("lines"), pl.col("payable_fen").sum().alias("fen"))
        .sort("provider_id")
    )
    rows = [
        {"payee": r["provider_id"], "lines": r["lines"], "total (yuan)": yuan(int(r["fen"]))}
        for r in by_payee.iter_rows(named=True)
    ]
    total = int(lines["payable_fen"].sum()) if lines.height else 0
    key = artifact_key("payout-proposal", jurisdiction, period)
    create_markdown_artifact(
        f"# Payout proposal {jurisdiction} {period}\n\nTotal {yuan(total)} yuan to {len(rows)} payees, digest "
        f"`{proposal_sha256(lines)}`.\n\n{markdown_table(rows)}",
        key=key,
        description=f"payout awaiting approval: {jurisdiction} {period}",
    )
    return key


@task(cache_policy=NO_CACHE)
def record_approval(
    jurisdiction: str, period: str, outcome: str, answer: dict[str, Any] | None, started_by: str, digest: str
) -> None:
    """Append the decision (or a refused answer) to the audit log."""
    with session_scope() as s:
        audit.record(
            s,
            f"payment.approval.{outcome}",
            f"{jurisdiction} {period}",
            {"started_by": started_by, "proposal_sha256": digest, **(answer or {})},
        )
