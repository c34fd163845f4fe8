"""Billing's parts run on a Dask cluster (prefect-dask) when `LTC_DASK_ADDRESS` names one, and give the same
claim lines as the local runner, column for column."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, select

from flows.bill_month import bill_month
from flows.runners import billing_runner
from ltc.demo import DemoSize
from ltc.pipeline import run_demo
from storage import models as m
from storage.db import session_scope

SIZE = DemoSize(insured=240, applicants=60, providers=4, agencies=2)
PERIOD = "2026-03"


@pytest.fixture
def dask_cluster() -> Iterator[Any]:
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster


def _claims() -> list[tuple[Any, ...]]:
    cols = [c for c in m.ClaimLine.__table__.columns if c.name != "id"]
    with session_scope() as s:
        return sorted(tuple(r) for r in s.execute(select(*cols)).all())


@pytest.mark.usefixtures("prefect_server")
def test_two_worker_dask_cluster_bills_the_same_month(
    backend: str, dask_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LTC_BILLING_PART_PERSONS", "50")
    run_demo("nanning", PERIOD, 5, SIZE)  # billed on the local runner, in parts
    local = _claims()
    payable = [c.name for c in m.ClaimLine.__table__.columns if c.name != "id"].index("payable_fen")
    assert len(local) > 20 and sum(r[payable] for r in local) > 0
    with session_scope() as s:
        s.execute(delete(m.PaymentLine))
        s.execute(delete(m.PaymentBatch))
        s.execute(delete(m.ClaimLine))
    monkeypatch.setenv("LTC_DASK_ADDRESS", dask_cluster.scheduler_address)
    runner = billing_runner()
    assert type(runner).__name__ == "DaskTaskRunner"
    summary = bill_month.with_options(task_runner=runner)("nanning", PERIOD)
    assert summary["parts"] >= 4
    assert _claims() == local
    workers = set(dask_cluster.scheduler_info["workers"])
    assert len(workers) == 2
    pids = {w.split(":")[-1] for w in summary["workers"]}
    assert str(os.getpid()) not in pids  # the parts ran in the cluster's worker processes
