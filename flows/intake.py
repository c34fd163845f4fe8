"""Intake: load one inbound file; bad rows go to quarantine, good rows into the record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.intake import describe_errors, load_file


@task(cache_policy=NO_CACHE, task_run_name="load {kind}")
def load(kind: str, path: str, encoding: str = "utf-8") -> dict[str, Any]:
    report = load_file(kind, Path(path), encoding)
    if report.errors:
        get_run_logger().warning("%s rows quarantined:\n%s", report.quarantined, describe_errors(report))
    return report.__dict__


@flow(name="intake", flow_run_name="intake {kind} {path}")
def intake(kind: str, path: str, encoding: str = "utf-8") -> dict[str, Any]:
    """`encoding`: `utf-8` (the default; a UTF-8 byte-order mark is accepted) or `gb18030` (also GBK files)."""
    return load(kind, path, encoding)
