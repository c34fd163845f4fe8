"""What a pack's `pack.yaml` says of its periods and payers, beside its document and dates of effect:

- `period`: `month`, `year`, or both (`[month, year]`): whether the pack's contributions are due by the month
  (`YYYY-MM`) or by the year (`YYYY`), `rules.inputs.PERIODS`. Billing is by the month in every pack.
- `payers`: each payer its document names (`rules.inputs.PAYERS`), in the document's words, with the clause.

A pack that does not say is taken as it is, with nothing checked against it; docs/policies.md shows it as not said.
"""

from __future__ import annotations

import functools
from typing import Any

import yaml

from rules.engine import PACKS_DIR, RulesError
from rules.inputs import PAYERS, PERIODS


@functools.cache
def _meta(pack_id: str) -> dict[str, Any]:
    f = PACKS_DIR / pack_id / "pack.yaml"
    if not f.exists():
        raise RulesError(f"no policy pack {pack_id!r}")
    data: dict[str, Any] = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
    return data


def periods(pack_id: str) -> tuple[str, ...] | None:
    """`("month",)`, `("year",)` or `("month", "year")`; None where the pack does not say."""
    value = _meta(pack_id).get("period")
    if value is None:
        return None
    given = [value] if isinstance(value, str) else list(value)
    if not given or any(v not in PERIODS for v in given):
        raise RulesError(f"pack {pack_id}: period must be month, year or [month, year], not {value!r}")
    return tuple(p for p in PERIODS if p in given)


def payers(pack_id: str) -> dict[str, str] | None:
    """Payer -> the document's words and clause; None where the pack does not say."""
    value = _meta(pack_id).get("payers")
    if value is None:
        return None
    unknown = sorted(set(value) - set(PAYERS))
    if unknown:
        raise RulesError(f"pack {pack_id}: payers {', '.join(unknown)} are not among {', '.join(PAYERS)}")
    return {p: " ".join(str(value[p]).split()) for p in PAYERS if p in value}
