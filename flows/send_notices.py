"""Deliver the notices waiting in the outbox; name those that have failed for good, for an operator."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select

from storage.db import session_scope
from storage.models import Notice
from tasks.notices import deliver_pending


@task(cache_policy=NO_CACHE)
def deliver(limit: int) -> dict[str, int]:
    return deliver_pending(limit)


@task(cache_policy=NO_CACHE)
def failed_notices() -> list[dict[str, Any]]:
    """Notices that failed every attempt: number, kind, recipient (an internal id) and the last error."""
    with session_scope() as s:
        rows = s.execute(
            select(
                Notice.id, Notice.kind, Notice.recipient_type, Notice.recipient_id, Notice.attempts, Notice.last_error
            )
            .where(Notice.status == "failed")
            .order_by(Notice.id)
        ).all()
    return [
        {"notice": i, "kind": k, "recipient": f"{t}:{r}", "attempts": a, "last_error": (e or "")[:200]}
        for i, k, t, r, a, e in rows
    ]


@flow(name="send-notices", flow_run_name="send notices")
def send_notices(limit: int = 10000) -> dict[str, Any]:
    result: dict[str, Any] = dict(deliver(limit))
    failed = failed_notices()
    if failed:
        get_run_logger().error(
            "%d notice(s) failed every attempt and need an operator:\n%s",
            len(failed),
            "\n".join(f"  no. {f['notice']} {f['kind']} to {f['recipient']}: {f['last_error']}" for f in failed),
        )
    result["failed_for_good"] = len(failed)
    return result
