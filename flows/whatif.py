"""What would a proposal cost: a range of months billed again under the pack in force and under a variant, the fund
carried forward under stated assumptions, and a report. Nothing is written to the record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, unmapped

from flows.bill_month import persons_per_part
from flows.runners import billing_runner
from tasks.whatif import (
    load_scenario_variant,
    months_between,
    plan_replay,
    publish_scenario,
    replay_eligibility,
    replay_part,
    scenario_opening,
)


@flow(name="whatif", flow_run_name="whatif {jurisdiction} {start}..{end}", task_runner=billing_runner())
def whatif(
    jurisdiction: str,
    variant_file: str,
    start: str,
    end: str,
    years: int = 10,
    out_dir: str | None = None,
    part_persons: int | None = None,
) -> dict[str, Any]:
    """Replay `start`..`end` (YYYY-MM) on the record under the pack in force and the variant in `variant_file`,
    project `years` years on, and write the scenario (Parquet, CSV and an HTML report) under `out_dir` (default
    `$LTC_HOME/whatif/<jurisdiction>-<start>-<end>-<variant digest>`)."""
    variant = load_scenario_variant(variant_file, jurisdiction)
    months = months_between(start, end)
    parts = plan_replay(variant, months, part_persons or persons_per_part())
    decisions = replay_eligibility(variant)
    done = [f.result() for f in replay_part.map(unmapped(variant), unmapped(months), parts, unmapped(decisions))]
    opening = scenario_opening(jurisdiction, start)
    return publish_scenario(variant, months, done, decisions, opening, years, Path(out_dir) if out_dir else None)
