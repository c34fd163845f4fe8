"""Deployments: every schedule of deployments/prefect.yaml is well formed for its flow, in China's time zone;
`ltc serve` registers every deployment with its schedules on a Prefect server, and a billing run started from
its deployment completes and publishes its report."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deployments.serve import FLOWS, deployment_specs, deployments
from flows.naming import last_month
from ltc.demo import DemoSize
from ltc.pipeline import run_demo
from rules.engine import pack_ids
from tasks.reports import artifact_key

ROOT = Path(__file__).resolve().parent.parent
SPECS = deployment_specs()


def test_last_month_in_china() -> None:
    assert last_month(dt.date(2026, 1, 5)) == "2025-12" and last_month(dt.date(2026, 3, 31)) == "2026-02"


@pytest.mark.parametrize("spec", SPECS, ids=[s["name"] for s in SPECS])
def test_each_schedule_is_named_in_china_time_and_fits_its_flow(spec: dict[str, object]) -> None:
    flow = {f.name: f for f in FLOWS}[str(spec["name"])]
    for schedule in spec.get("schedules") or []:  # type: ignore[attr-defined]
        assert schedule["slug"] and schedule["timezone"] == "Asia/Shanghai", schedule
        params = {**(spec.get("parameters") or {}), **(schedule.get("parameters") or {})}  # type: ignore[dict-item]
        flow.validate_parameters(params)  # every required parameter given, every value of its type
        if "jurisdiction" in params:
            assert params["jurisdiction"] in pack_ids()
            assert params["jurisdiction"] in schedule["slug"].replace("-", "_")


def test_slugs_are_unique_and_every_pack_is_scheduled() -> None:
    slugs = [s["slug"] for spec in SPECS for s in spec.get("schedules") or []]
    assert len(slugs) == len(set(slugs))
    billed = {
        s["parameters"]["jurisdiction"] for spec in SPECS if spec["name"] == "bill-month" for s in spec["schedules"]
    }
    assert billed == set(pack_ids())


def test_serve_builds_every_deployment_with_its_schedules() -> None:
    built = {d.name: d for d in deployments()}
    assert set(built) == {s["name"] for s in SPECS}
    for spec in SPECS:
        assert len(built[spec["name"]].schedules or []) == len(spec.get("schedules") or []), spec["name"]


@pytest.mark.usefixtures("prefect_server")
def test_ltc_serve_registers_every_deployment_and_runs_billing_from_one(backend: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
    served = subprocess.Popen(
        [sys.executable, "-m", "ltc.cli", "serve"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        # The month is made while the served process starts; it runs nothing until asked.
        run_demo("nanning", "2026-03", 4, DemoSize(insured=200, applicants=30, providers=3, agencies=2))
        with get_client(sync_client=True) as client:
            names: set[str] = set()
            for _ in range(120):
                names = {d.name for d in client.read_deployments()}
                if names >= {s["name"] for s in SPECS}:
                    break
                time.sleep(1)
            assert names >= {s["name"] for s in SPECS}
            for spec in SPECS:
                d = client.read_deployment_by_name(f"{spec['name']}/{spec['name']}")
                slugs = {s.slug for s in client.read_deployment_schedules(d.id)}
                assert slugs == {s["slug"] for s in spec.get("schedules") or []}, spec["name"]
        run = run_deployment(
            "bill-month/bill-month", parameters={"jurisdiction": "nanning", "period": "2026-03"}, timeout=600
        )
        assert run.state is not None and run.state.is_completed(), run.state
        assert run.name == "bill nanning 2026-03"
        with get_client(sync_client=True) as client:
            from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

            published = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
            )
        assert [a.key for a in published] == [artifact_key("billing", "nanning", "2026-03")]
    finally:
        served.terminate()
        try:
            served.wait(timeout=30)
        except subprocess.TimeoutExpired:
            served.kill()


@pytest.mark.usefixtures("prefect_server")
def test_intake_inbox_loads_files_in_dependency_order_and_moves_them(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_intake import CARE, PERSONS, PROVIDERS

    import flows.intake_inbox as inbox_flow

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    # Named so that alphabetical order would load care days before the persons and providers they name.
    (inbox / "care_days_2026-03.csv").write_text(CARE, encoding="utf-8")
    (inbox / "persons_register.csv").write_text(PERSONS, encoding="utf-8")
    (inbox / "providers.csv").write_text(PROVIDERS, encoding="utf-8")
    (inbox / "notes.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    monkeypatch.setattr(inbox_flow, "today", lambda: dt.date(2026, 10, 3))  # 国庆节: a day off
    assert inbox_flow.intake_inbox("nanning", str(inbox), working_days_only=True) == {
        "skipped": "2026-10-03 is not a working day"
    }
    monkeypatch.setattr(inbox_flow, "today", lambda: dt.date(2026, 10, 10))  # a make-up working Saturday
    out = inbox_flow.intake_inbox("nanning", str(inbox), working_days_only=True)
    assert [(r["kind"], r["received"], r["accepted"], r["quarantined"]) for r in out["loaded"]] == [
        ("persons", 2, 2, 0),
        ("providers", 1, 1, 0),
        ("care_days", 7, 3, 4),
    ]
    assert out["left"] == ["notes.csv"]
    assert sorted(p.name for p in inbox.glob("*.csv")) == ["notes.csv"]
    assert len(list((inbox / "loaded" / "2026-10-10").glob("*.csv"))) == 3
    assert inbox_flow.intake_inbox("nanning", str(inbox))["loaded"] == []
