"""Where a flow's partition tasks run: threads on this machine, or a Dask cluster.

`LTC_DASK_ADDRESS` (e.g. `tcp://10.0.0.5:8786`) sends them to that Dask scheduler through prefect-dask's
`DaskTaskRunner`; its workers need this project installed, the same `LTC_DATABASE_URL` and the rules overrides
the flow would see. Without it, `LTC_BILLING_WORKERS` threads (default 2) run the parts here.
"""

from __future__ import annotations

import os
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
