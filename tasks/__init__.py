"""Prefect tasks and the steps they run."""

import ltc  # noqa: F401  (masks ID numbers in every log record)
