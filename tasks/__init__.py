"""Prefect tasks and the steps they run."""

import common  # noqa: F401  (masks ID numbers in every log record)
