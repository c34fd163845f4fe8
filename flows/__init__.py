"""Prefect flows: each reads as a short script of task calls."""

import common  # noqa: F401  (masks ID numbers in every log record)
