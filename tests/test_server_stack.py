"""The production path, not the test harness: `prefect server start` on PostgreSQL, `ltc serve` registering the
deployments of prefect.yaml (read by the same code, with schedules moved to 20 seconds ahead), the server's own
scheduler creating the runs, the served process executing them; billing publishes its report, notices go out,
and the payment run pauses for approval and pays once released with an approver's code. The operators'
Automations, set up twice, exist once each, and each fires once on the server: a payout waiting, a failed run,
a scheduled run that did not start (its wait shortened in a copy of automations.yaml read by the same code)."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from conftest import RealPrefectServer, free_port, stop_process_group
from sqlalchemy import func, select
from test_approval import code_for, own_outbox

from common.settings import get_settings
from deployments.automations import AUTOMATIONS_YAML
from deployments.serve import PREFECT_YAML, deployments
from flows.bill_month import bill_month
from flows.naming import TIMEZONE, last_month
from ltc.demo import DemoSize, month_files
from ltc.pipeline import run_demo
from rules.engine import RulesError
from storage import models as m
from storage.db import session_scope
from tasks.approval import add_approver
from tasks.intake import load_file
from tasks.reports import artifact_key

ROOT = Path(__file__).resolve().parent.parent


def previous(period: str) -> str:
    first = dt.date.fromisoformat(f"{period}-01")
    return f"{first - dt.timedelta(days=1):%Y-%m}"


SCHEDULE_LEAD_SECONDS = 20


def soon() -> dt.datetime:
    """A whole second in China's time, 20 seconds ahead: time for the served process to start and register its
    deployments (about 5 s here) and for the server's scheduler to create their runs (it looks at deployments
    changed in the last seconds every 5 s) before it comes."""
    now = dt.datetime.now(TIMEZONE).replace(microsecond=0)
    return now + dt.timedelta(seconds=SCHEDULE_LEAD_SECONDS)


def moved_deployments(tmp: Path, slugs: set[str], at: dt.datetime) -> Path:
    """prefect.yaml as it is, with the named schedules moved to `at` (the rest left as they are)."""
    doc = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    moved = set()
    for spec in doc["deployments"]:
        for sched in spec.get("schedules") or []:
            if sched["slug"] not in slugs:
                continue
            moved.add(sched["slug"])
            if "cron" in sched:  # croniter's sixth field: the second
                sched["cron"] = f"{at.minute} {at.hour} {at.day} {at.month} * {at.second}"
            else:
                sched["anchor_date"] = at.isoformat()
    assert moved == slugs
    path = tmp / "prefect.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


class Webhook:
    """A JSON webhook on loopback, as an operations channel would be (apprise's json:// posts to it)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers.get("content-length", 0)))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def titles(self, start: str) -> list[str]:
        return [m["title"] for m in self.received if m["title"].startswith(start)]

    def wait(self, start: str, timeout: float) -> list[str]:
        deadline = time.time() + timeout
        while time.time() < deadline and not self.titles(start):
            time.sleep(0.5)
        return self.titles(start)


def shortened_automations(tmp: Path, seconds: int) -> Path:
    doc = yaml.safe_load(AUTOMATIONS_YAML.read_text(encoding="utf-8"))
    for item in doc["automations"]:
        if "within_seconds" in item:
            item["within_seconds"] = seconds
    path = tmp / "automations.yaml"
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


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_servers_scheduler_runs_the_monthly_routine_and_operators_are_told_what_needs_them(
    backend: str, real_prefect_server: RealPrefectServer, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    period = last_month()  # what a scheduled run with no period bills and pays
    # The record: last month's care days billed, not yet paid (the month before paid in full). Made through the
    # test server, not the real one: the set-up's thousands of task-run events are not what this test is about.
    run_demo("nanning", previous(period), 8, DemoSize(insured=200, applicants=30, providers=3, agencies=2))
    month = month_files(get_settings().demo_dir / "nanning" / period, "nanning", period, 8)
    load_file("care_days", month["care_days"])
    bill_month("nanning", period)
    with session_scope() as s:
        add_approver(s, "li", "基金财务科科长", own_outbox("li"))  # her codes go to a file outbox of her own
    assert batches(period) == 0

    ops = Webhook()
    env = {
        **os.environ,
        **real_prefect_server.env,
        "LTC_AUTOMATIONS_FILE": str(shortened_automations(tmp_path, 10)),
        "LTC_OPS_NOTIFY_URL": f"json://127.0.0.1:{ops.port}/ops",
        "LTC_ACTOR": "ops-wang",
        "LTC_APPROVAL_POLL_SECONDS": "1",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
    }
    setup = subprocess.run(
        [sys.executable, "-m", "ltc.cli", "automations"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert setup.returncode == 0 and setup.stdout.count(": created") == 3, setup.stdout + setup.stderr
    at = soon()
    moved = moved_deployments(
        tmp_path, {"nanning-bill-month", "nanning-pay-providers", "send-notices-every-5-minutes"}, at
    )
    env["LTC_DEPLOYMENTS_FILE"] = str(moved)
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
                # Created by the server's scheduler from the deployment's schedule, at the moved time.
                assert run.auto_scheduled, run.name
                assert run.expected_start_time == at, (run.name, run.expected_start_time, at)
            assert bill.name == f"bill nanning {period}"
            assert artifacts_of(client, bill.id) == [artifact_key("billing", "nanning", period)]
            assert artifact_key("payout-proposal", "nanning", period) in artifacts_of(client, pay.id)
            assert batches(period) == 0  # nothing is paid while the payout waits
            got = ops.wait("【长护险】拨付待审批", 120)
            assert got == [f"【长护险】拨付待审批：nanning {period}"]

            code = code_for("li")
            resume_flow_run(
                pay.id, run_input={"decision": "approve", "approver": "li", "code": code, "comment": "核对无误"}
            )
            paid = wait_for(client, "pay-providers", "COMPLETED", 120)
            assert paid.id == pay.id
            assert batches(period) > 0
            assert artifact_key("payment", "nanning", period) in artifacts_of(client, pay.id)

            # `ltc serve` set the automations up again when it started: still one of each.
            names = [a.name for a in client.read_automations()]
            assert sorted(names) == ["ltc-flow-run-failed", "ltc-payout-waits-for-approval", "ltc-scheduled-run-late"]
    finally:
        stop_process_group(served)

    with temporary_settings({PREFECT_API_URL: real_prefect_server.url}):
        # A run that fails (started from the UI with a period outside the pack, say).
        with pytest.raises(RulesError):
            bill_month("nanning", "2029-07")
        assert ops.wait("【长护险】流程运行", 60) == ["【长护险】流程运行Failed：bill nanning 2029-07"]
        # A scheduled billing run that nothing starts (ltc serve is down).
        bill_deployment = next(d for d in deployments(moved) if d.name == "bill-month")
        late = None
        with get_client(sync_client=True) as client:
            from prefect.states import Scheduled

            late = client.create_flow_run_from_deployment(
                bill_deployment.apply(),
                state=Scheduled(scheduled_time=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)),
            )
        assert ops.wait("【长护险】定时运行未按时开始", 120) == [f"【长护险】定时运行未按时开始：{late.name}"]
    # Each automation fired once, for what it is about.
    assert len(ops.received) == 3, [m["title"] for m in ops.received]
    log = real_prefect_server.log_text()
    assert not re.search(r"Traceback|InvalidRequestError|\| ERROR", log), log[-5000:]
