"""The production path, not the test harness: `prefect server start` on PostgreSQL, `ltc serve` registering the
deployments of prefect.yaml (read by the same code, with schedules moved to the next minute), the server's own
scheduler creating the runs, the served process executing them; billing publishes its report, notices go out,
and the payment run pauses for approval and pays once released."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from conftest import RealPrefectServer, stop_process_group
from sqlalchemy import func, select

from deployments.serve import PREFECT_YAML
from flows.bill_month import bill_month
from flows.naming import TIMEZONE, last_month
from ltc.demo import DemoSize, month_files
from ltc.pipeline import run_demo
from ltc.settings import get_settings
from storage import models as m
from storage.db import session_scope
from tasks.intake import load_file
from tasks.reports import artifact_key

ROOT = Path(__file__).resolve().parent.parent


def previous(period: str) -> str:
    first = dt.date.fromisoformat(f"{period}-01")
    return f"{first - dt.timedelta(days=1):%Y-%m}"


def next_minute() -> dt.datetime:
    """The next whole minute in China's time that leaves the served process time to register."""
    now = dt.datetime.now(TIMEZONE)
    at = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    return at + dt.timedelta(minutes=1) if (at - now).total_seconds() < 40 else at


def moved_deployments(tmp: Path, slugs: set[str], at: dt.datetime) -> Path:
    """prefect.yaml as it is, with the named schedules moved to `at` (the rest left as they are)."""
    doc = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    moved = set()
    for spec in doc["deployments"]:
        for sched in spec.get("schedules") or []:
            if sched["slug"] not in slugs:
                continue
            moved.add(sched["slug"])
            if "cron" in sched:
                sched["cron"] = f"{at.minute} {at.hour} {at.day} {at.month} *"
            else:
                sched["anchor_date"] = at.isoformat()
    assert moved == slugs
    path = tmp / "prefect.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def runs_of(client: Any, deployment: str) -> list[Any]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.exceptions import ObjectNotFound

    try:
        d = client.read_deployment_by_name(f"{deployment}/{deployment}")
    except ObjectNotFound:  # not registered yet
        return []
    return list(client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[d.id]))))


def wait_for(client: Any, deployment: str, state: str, timeout: float) -> Any:
    """The first run of the deployment that reaches `state` (a Prefect state type name)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for run in runs_of(client, deployment):
            if run.state is not None and run.state.type.value == state:
                return run
            if run.state is not None and run.state.type.value in ("FAILED", "CRASHED"):
                raise AssertionError(f"{deployment} run {run.name} ended {run.state.type.value}: {run.state.message}")
        time.sleep(1)
    raise AssertionError(f"no {state} run of {deployment} within {timeout} s")


def artifacts_of(client: Any, run_id: UUID) -> list[str]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    return sorted(a.key for a in found if a.key)


def batches(period: str) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(m.PaymentBatch).where(m.PaymentBatch.period == period)) or 0


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_servers_scheduler_runs_billing_notices_and_a_payment_that_waits_for_approval(
    backend: str, real_prefect_server: RealPrefectServer, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    period = last_month()  # what a scheduled run with no period bills and pays
    with temporary_settings({PREFECT_API_URL: real_prefect_server.url}):
        # The record: last month's care days billed, not yet paid (the month before paid in full).
        run_demo("nanning", previous(period), 8, DemoSize(insured=200, applicants=30, providers=3, agencies=2))
        month = month_files(get_settings().demo_dir / "nanning" / period, "nanning", period, 8)
        load_file("care_days", month["care_days"])
        bill_month("nanning", period)
    assert batches(period) == 0

    at = next_minute()
    moved = moved_deployments(
        tmp_path, {"nanning-bill-month", "nanning-pay-providers", "send-notices-every-5-minutes"}, at
    )
    env = {
        **os.environ,
        **real_prefect_server.env,
        "LTC_DEPLOYMENTS_FILE": str(moved),
        "LTC_ACTOR": "ops-wang",
        "LTC_APPROVAL_POLL_SECONDS": "1",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
    }
    served_log = tmp_path / "serve.log"
    with served_log.open("wb") as out:
        served = subprocess.Popen(
            [sys.executable, "-m", "ltc.cli", "serve"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with temporary_settings({PREFECT_API_URL: real_prefect_server.url}), get_client(sync_client=True) as client:
            wait = (at - dt.datetime.now(TIMEZONE)).total_seconds() + 120
            bill = wait_for(client, "bill-month", "COMPLETED", wait)
            notices = wait_for(client, "send-notices", "COMPLETED", wait)
            pay = wait_for(client, "pay-providers", "PAUSED", wait)
            for run in (bill, notices, pay):
                # Created by the server's scheduler from the deployment's schedule, at the moved minute.
                assert run.auto_scheduled, run.name
                assert run.expected_start_time == at, (run.name, run.expected_start_time, at)
            assert bill.name == f"bill nanning {period}"
            assert artifacts_of(client, bill.id) == [artifact_key("billing", "nanning", period)]
            assert artifact_key("payout-proposal", "nanning", period) in artifacts_of(client, pay.id)
            assert batches(period) == 0  # nothing is paid while the payout waits

            resume_flow_run(pay.id, run_input={"decision": "approve", "approver": "li", "comment": "核对无误"})
            paid = wait_for(client, "pay-providers", "COMPLETED", 120)
            assert paid.id == pay.id
            assert batches(period) > 0
            assert artifact_key("payment", "nanning", period) in artifacts_of(client, pay.id)
    finally:
        stop_process_group(served)
    log = real_prefect_server.log_text()
    assert not re.search(r"Traceback|InvalidRequestError|\| ERROR", log), log[-5000:]
