"""When a failed task is tried again: a transient failure (a lost connection, a lock) is; a person's error
(`rules.errors.UserError`: a bad period, a file, a missing policy value) fails the same way every time, and is
not."""

from __future__ import annotations

import os
from typing import Any

from rules.errors import UserError

RETRY_DELAY_SECONDS = float(os.environ.get("LTC_RETRY_DELAY_SECONDS", "5"))
"""How long a task waits before it is tried again after a transient failure (a database connection cut, a lock
timeout): LTC_RETRY_DELAY_SECONDS, 5 s unless set."""


def transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's `retry_condition_fn`: retry unless the task failed on a person's error."""
    try:
        state.result()
    except UserError:
        return False
    except BaseException:
        return True
    return True


RETRY_TRANSIENT: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": RETRY_DELAY_SECONDS,
    "retry_condition_fn": transient_only,
}
"""The retry options of a task that reads or writes the record: `@task(cache_policy=NO_CACHE, **RETRY_TRANSIENT)`."""
