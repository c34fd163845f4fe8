"""Pay providers: one payment batch per payee and period, then the bank file."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from tasks.payment import create_batch, payable_to, unpaid_claims, write_bank_file
from tasks.reports import publish_payment_report


@flow(name="pay-providers", flow_run_name="pay {jurisdiction} {period}")
def pay_providers(jurisdiction: str, period: str) -> dict[str, Any]:
    lines, withheld = payable_to(unpaid_claims(jurisdiction, period), jurisdiction, period)
    for r in withheld.iter_rows(named=True):
        get_run_logger().warning(
            "claim line %s (%s) not paid: the pack pays no individual carer", r["claim_line_id"], r["provider_id"]
        )
    groups = lines.partition_by("provider_id", as_dict=True, maintain_order=True)
    payees = [key[0] for key in groups]
    futures = create_batch.map(
        list(groups.values()), [str(p) for p in payees], jurisdiction=jurisdiction, period=period
    )
    created = [f.result() for f in futures]
    bank_file = write_bank_file(jurisdiction, period)
    new = [c for c in created if c]
    report = publish_payment_report(jurisdiction, period)
    return {"batches_created": len(new), "lines_withheld": withheld.height, "bank_file": bank_file, "report": report}
