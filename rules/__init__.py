"""The policy packs and the engine that resolves their dated parameters.

Polars' engine for the project's queries: the in-memory engine unless the operator chose another
(POLARS_ENGINE_AFFINITY). Most of the project's frames are small (a part's claim lines, a month's decisions, the
checks pandera runs column by column), and the in-memory engine answers a small query in about a tenth of the time
of the streaming engine, polars' default (0.02 ms against 0.25 ms here). The few queries over a month's care rows
name the streaming engine, which is faster on them.
"""

import os
from typing import Final, Literal

import polars as pl

if not os.environ.get("POLARS_ENGINE_AFFINITY"):
    pl.Config.set_engine_affinity("in-memory")

ROWS_ENGINE: Final[Literal["streaming"]] = "streaming"
"""The engine of the queries over a month's care rows (millions of rows)."""
