"""Deliver the notices waiting in the outbox; name those that have failed for good or are quarantined (a template
that cannot render them), for an operator."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select

from storage.db import session_scope
from storage.models import Notice
from tasks.notices import QUARANTINED, deliver_pending


@task(cache_policy=NO_CACHE)
def deliver(limit: int) -> dict[str, int]:
    return deliver_pending(limit)


@task(cache_policy=NO_CACHE)
def notices_in(status: str) -> list[dict[str, Any]]:
    """Notices in a status ("failed": every attempt failed; "quarantined": not rendered): number, kind,
    recipient (an internal id) and the last error."""
    with session_scope() as s:
        rows = s.execute(
            select(
                Notice.id, Notice.kind, Notice.recipient_type, Notice.recipient_id, Notice.attempts, Notice.last_error
            )
            .where(Notice.status == status)
            .order_by(Notice.id)
        ).all()
    return [
        {"notice": i, "kind": k, "recipient": f"{t}:{r}", "attempts": a, "last_error": (e or "")[:200]}
        for i, k, t, r, a, e in rows
    ]


@flow(name="send-notices", flow_run_name="send notices")
def send_notices(limit: int = 10000) -> dict[str, Any]:
    result: dict[str, Any] = dict(deliver(limit))
    failed = notices_in("failed")
    quarantined = notices_in(QUARANTINED)
    for held, why in ((failed, "failed every attempt"), (quarantined, "could not be rendered (quarantined)")):
        if held:
            get_run_logger().error(
                "%d notice(s) %s and need an operator:\n%s",
                len(held),
                why,
                "\n".join(f"  no. {f['notice']} {f['kind']} to {f['recipient']}: {f['last_error']}" for f in held),
            )
    result["failed_for_good"] = len(failed)
    result["quarantined"] = len(quarantined)
    return result
