"""Deliver the notices waiting in the outbox."""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from tasks.notices import deliver_pending


@task(cache_policy=NO_CACHE)
def deliver(limit: int) -> dict[str, int]:
    return deliver_pending(limit)


@flow(name="send-notices", flow_run_name="send notices")
def send_notices(limit: int = 10000) -> dict[str, int]:
    return deliver(limit)
