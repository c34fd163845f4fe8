"""Where a flow's partition tasks run: threads on this machine, or a Dask cluster.

`LTC_DASK_ADDRESS` (e.g. `tcp://10.0.0.5:8786`) sends them to that Dask scheduler through prefect-dask's
`DaskTaskRunner`; its workers need this project installed, the same `LTC_DATABASE_URL` and the rules overrides
the flow would see. Without it, `LTC_BILLING_WORKERS` threads (default 2) run the parts here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

DASK_ADDRESS_ENV = "LTC_DASK_ADDRESS"
WORKERS_ENV = "LTC_BILLING_WORKERS"


def billing_runner(address: str | None = None) -> TaskRunner[Any]:
    address = address or os.environ.get(DASK_ADDRESS_ENV)
    if address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=address)
    return ThreadPoolTaskRunner(max_workers=int(os.environ.get(WORKERS_ENV) or 2))


@contextlib.contextmanager
def local_run_settings() -> Iterator[None]:
    """How a flow runs in-process on the local server started for one command (no PREFECT_API_URL): without
    flow-run heartbeats. The server ends with the command, so nothing could tell a crashed run by them, and Prefect
    joins the heartbeat thread for up to a second at the end of every flow run. Against an operator's server they
    are sent as Prefect's settings say, so that the server can tell a run that crashed."""
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
